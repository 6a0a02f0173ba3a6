"""The documentation site: `mkdocs build --strict` of mkdocs.yml + docs/ (a broken link or a page
missing from the tree fails it), every command in the generated CLI reference, and the built site
opened in headless Chromium as a reader would: a search box that finds a page, and a generated
command page with its options. Also the README that points into it: short, every link alive."""

from __future__ import annotations

import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.fleetstate.test_html_report import DevTools, needs_chromium

REPO_ROOT = Path(__file__).resolve().parents[2]


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    """What CI runs, with this tree's toolkit first on the path (mkdocs-click imports it)."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT / "toolkit"), os.environ.get("PYTHONPATH")]))}
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: pip install -e '.[docs]' (.ci/run does)")
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("docs") / "site"
    proc = mkdocs_build(REPO_ROOT / "mkdocs.yml", out)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


def docs_copy(tmp_path: Path) -> Path:
    """mkdocs.yml and docs/ copied, to break on purpose."""
    shutil.copy(REPO_ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO_ROOT / "docs", tmp_path / "docs")
    return tmp_path / "mkdocs.yml"


def test_the_site_builds_strictly_with_every_command_in_the_cli_reference(site):
    assert (site / "index.html").is_file() and (site / "getting-started.html").is_file()
    assert 'class="md-search__input"' in (site / "index.html").read_text(encoding="utf-8")
    from tfdeploy.cli.reference import cli

    page = (site / "reference" / "cli.html").read_text(encoding="utf-8")
    ids = set(re.findall(r'<h4 id="(tfdeploy-[a-z-]+)"', page))
    missing = [name for name in cli.commands if f"tfdeploy-{name}" not in ids]
    assert not missing, f"the CLI reference lacks {missing}"
    subcommands = set(re.findall(r'<h5 id="(tfdeploy-[a-z-]+)"', page))
    for group in ("state", "sandbox", "buildspec", "tags", "events", "tools"):
        assert any(i.startswith(f"tfdeploy-{group}-") for i in subcommands), group
    # A command's section is its --help: usage and every option.
    text = html.unescape(re.sub(r"<[^>]+>", "", page[page.index('<h4 id="tfdeploy-apply"'):
                                                      page.index('<h4 id="tfdeploy-bootstrap"')]))
    assert "tfdeploy apply [OPTIONS]" in text
    for option in ("--tag", "--auto-approve", "--parallel", "--only-failed", "--skip-promotion-check"):
        assert option in text, option


@pytest.mark.parametrize("breakage, named", [
    (lambda docs: (docs / "concepts" / "tags.md").open("a").write("\nSee [the cells](cellz.md).\n"), "cellz.md"),
    (lambda docs: (docs / "concepts" / "tags.md").open("a").write("\nSee [locks](cells.md#no-such-part).\n"),
     "no-such-part"),
    (lambda docs: (docs / "how-to" / "drift.md").unlink(), "how-to/drift.md"),
])
def test_a_broken_link_or_a_missing_page_fails_the_build(tmp_path, breakage, named):
    config = docs_copy(tmp_path)
    breakage(tmp_path / "docs")
    proc = mkdocs_build(config, tmp_path / "site")
    assert proc.returncode != 0
    assert named in proc.stderr, proc.stderr[-3000:]


def test_the_cli_reference_module_loads_lazy_commands_and_the_cli_never_imports_it():
    code = ("import sys, click\n"
            "from tfdeploy.cli import cli\n"
            "from mkdocs_click._docs import _get_sub_commands\n"
            "before = len(_get_sub_commands(cli, click.Context(cli)))\n"
            "loaded = 'tfdeploy.cli.reference' in sys.modules\n"
            "from tfdeploy.cli.reference import cli as everything\n"
            "with click.Context(everything) as ctx:\n"
            "    listed = everything.list_commands(ctx)\n"
            "seen = sorted(c.name for c in _get_sub_commands(everything, click.Context(everything)))\n"
            "print(before, loaded, seen == sorted(listed), len(seen))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "toolkit")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    before, loaded, same, count = proc.stdout.split()
    # mkdocs-click reads group.commands: the lazy group alone shows it only the eager commands.
    assert int(before) < 5 and loaded == "False" and same == "True" and int(count) >= 30


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # no line per request in the test output
        pass


@pytest.fixture
def served(site):
    """The built site over http on 127.0.0.1 (search loads its index with fetch, as on a docs host)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def wait_for(view: DevTools, expression: str, what: str, seconds: float = 30):
    import time

    deadline = time.monotonic() + seconds
    while True:
        value = view.js(expression)
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} never appeared"
        time.sleep(0.1)


@needs_chromium
def test_the_built_site_in_chromium_has_search_and_a_generated_command_page(served, tmp_path):
    view = DevTools(f"{served}/index.html", tmp_path / "profile", ready="!!document.querySelector('.md-search__input')")
    try:
        # The home page as a reader sees it: the title, the two commands, the sections in the nav.
        text = view.js("document.body.innerText")
        assert "Deploy versioned Terraform to many AWS accounts and Regions from git tags." in text
        assert ".venv/bin/tfdeploy demo" in text and "bash .ci/run" in text
        nav = view.js("Array.from(document.querySelectorAll('.md-nav--primary > .md-nav__list > .md-nav__item'))"
                      ".map(e => e.innerText.split('\\n')[0].trim())")
        for section in ("Getting started", "Concepts", "How-to guides", "Reference", "Benchmarks", "Trust"):
            assert section in nav, nav
        # A search box that searches: type into it, results come from the site's own index.
        assert view.js("document.querySelector('.md-search__input').getAttribute('placeholder')") == "Search"
        view.click(".md-search__input")
        for key in "rollback":  # real key presses: the theme searches on keyup
            view.call("Input.dispatchKeyEvent", type="keyDown", key=key, text=key)
            view.call("Input.dispatchKeyEvent", type="keyUp", key=key)
        results = wait_for(view, "Array.from(document.querySelectorAll('.md-search-result__item'))"
                                 ".map(e => e.querySelector('a').getAttribute('href'))", "a search result")
        assert any("roll-back.html" in href for href in results), results

        # The generated command page: `tfdeploy apply` with its options, from the click command.
        view.call("Page.navigate", url=f"{served}/reference/cli.html#tfdeploy-apply")
        wait_for(view, "location.pathname.endsWith('/reference/cli.html') && document.readyState === 'complete'"
                       " && !!document.getElementById('tfdeploy-apply')", "the CLI page")
        section = view.js("(function(){var h=document.getElementById('tfdeploy-apply'), out=[h.innerText];"
                          "for (var e=h.nextElementSibling; e && !/^H[1-4]$/.test(e.tagName); e=e.nextElementSibling)"
                          " out.push(e.innerText); return out.join('\\n');})()")
        assert section.startswith("tfdeploy apply")
        assert "Usage:" in section and "tfdeploy apply [OPTIONS]" in section
        for option in ("--tag", "--auto-approve", "--parallel", "--only-failed", "--skip-promotion-check"):
            assert option in section, option
        # Lazily loaded commands are there too, each under its own heading.
        headings = view.js("Array.from(document.querySelectorAll('h4[id^=\"tfdeploy-\"]')).map(h => h.id)")
        assert {"tfdeploy-rollback", "tfdeploy-drift", "tfdeploy-status", "tfdeploy-resolve"} <= set(headings)
    finally:
        view.close()


# --- the README: short, and everything it links to exists -----------------------------------------

def test_the_readme_is_short_and_its_links_resolve():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme) <= 10_000, len(readme)
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert local and all((REPO_ROOT / link).is_file() for link in local), \
        [link for link in local if not (REPO_ROOT / link).is_file()]
    nav = json.dumps(_nav())
    unlisted = [link for link in local if link.startswith("docs/") and link.removeprefix("docs/") not in nav]
    assert not unlisted, f"README links to pages missing from mkdocs.yml's nav: {unlisted}"


def _nav() -> list:
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    return yaml.load((REPO_ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)["nav"]
