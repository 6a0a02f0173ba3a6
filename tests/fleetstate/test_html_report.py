"""`tfdeploy status --html FILE`: the pure renderer (escaping, marks -> colours and badges, the
filters), then the page the real CLI writes from a real ledger in moto, opened in headless
Chromium: what a person sees after the scripts ran (`--dump-dom` with a URL fragment), and a
real click and a filter change driven through the Chrome DevTools Protocol."""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.request import ProxyHandler, build_opener

import pytest
from tfdeploy.fleet.htmlreport import STATES, render_report, row_state
from tfdeploy.fleet.ledger import Record, append, record_for
from tfdeploy.fleet.status import MARKS, cell_status, fleet_matrix
from tfdeploy.model.settings import Settings
from tfdeploy.model.tags import parse_tag

from tests.e2e.conftest import tag, tfdeploy

SETTINGS = Settings(backend_prefix="demo-tfstate", environments=("dev", "qa"), lock="dynamodb")
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
HEADLESS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
            "--disable-extensions", "--disable-sync", "--no-default-browser-check", "--window-size=1400,1000"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium (Debian's `chromium` package; .ci/run "
                                    "installs it with apt-get)")
HOSTILE_CALLER = 'arn:aws:sts::123456789012:assumed-role/Ops<img src=x onerror=alert(1)>/"me"'
HOSTILE_ERROR = "</script><script>alert('x')</script> & more"
_clock = itertools.count(1)


def rec(tag_name: str, action: str = "apply", result: str = "succeeded", commit: str = "a" * 40,
        **extra) -> Record:
    n = next(_clock)
    values = {"commit": commit, "action": action, "result": result, "add": 2, "change": 1, "destroy": 0,
              "caller": "arn:aws:sts::123456789012:assumed-role/InfraBuildRole/INFRA_BUILD",
              "started_at": f"2026-11-20T10:{n:02d}:00.000Z", "finished_at": f"2026-11-20T10:{n:02d}:30.000Z",
              "plan_sha256": "0" * 64, "tfdeploy_version": "0.1.0", "build_id": ""}
    return record_for(parse_tag(tag_name), **{**values, **extra})


class _Tags(HTMLParser):
    """Every start tag with its attributes, to check structure rather than grep text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, name, attrs):
        self.tags.append((name, dict(attrs)))


def tags_of(page: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(page)
    return parser.tags


# --- the renderer (pure) ------------------------------------------------------------------------

def test_every_mark_has_a_colour_and_the_most_urgent_wins():
    assert set(STATES) == set(MARKS) | {"ok"}
    dev = ("dev", "us-east-1", "research")
    ok = cell_status(dev, [rec("dev_us-east-1/research/1.1")], "dev_us-east-1/research/1.1")
    failed_behind = cell_status(dev, [rec("dev_us-east-1/research/1.0"),
                                      rec("dev_us-east-1/research/1.1", result="failed")],
                                "dev_us-east-1/research/1.1")
    never = cell_status(("qa", "us-east-1", "research"), [], None)
    assert [row_state(r) for r in (ok, failed_behind, never)] == ["ok", "failed", "never-deployed"]
    page = render_report([ok, failed_behind, never], {}, generated_at="2026-11-21T08:00:00.000Z",
                         environments=["dev", "qa"])
    rows = [a for name, a in tags_of(page) if name == "tr" and "row" in (a.get("class") or "").split()]
    assert [(r["data-cell"], r["data-state"], r["class"]) for r in rows] == [
        ("dev-us-east-1-research", "ok", "row st-ok"),
        ("dev-us-east-1-research", "failed", "row st-failed"),
        ("qa-us-east-1-research", "never-deployed", "row st-never-deployed")]
    # Not by colour alone: each state has its text badge, and the legend names all six.
    assert 'class="badge b-failed">failed</span> <span class="badge b-behind">behind: 1.1 tagged</span>' in page
    assert '<span class="badge b-never-deployed">never deployed</span>' in page
    legend = page[page.index('class="legend"'):]
    for label in ("succeeded", "failed", "drifted", "behind", "never deployed", "destroyed"):
        assert f">{label}</span>" in legend
    assert "Generated at 2026-11-21 08:00Z (UTC)" in page


def test_everything_from_the_ledger_is_escaped():
    hostile = rec("dev_us-east-1/research/1.0", result="failed", caller=HOSTILE_CALLER,
                  override='"><b>bold</b>', details={"error": HOSTILE_ERROR}, build_id="<build>")
    row = cell_status(("dev", "us-east-1", "research"), [hostile], None)
    row_env = ("dev<x>", "us-east-1", "te<am")  # not a valid env or team, but never trusted either
    odd = cell_status(row_env, [], None)
    page = render_report([row, odd], {row.cell: [hostile]}, generated_at="2026-11-21T08:00:00.000Z",
                         environments=["dev"], scope_note="--team <t>")
    for raw in (HOSTILE_CALLER, HOSTILE_ERROR, '"><b>bold</b>', "<build>", "dev<x>", "te<am", "<t>", "<img"):
        assert raw not in page
    assert "override: &quot;&gt;&lt;b&gt;bold&lt;/b&gt;" in page
    assert "&lt;/script&gt;&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    names = [name for name, _ in tags_of(page)]
    assert names.count("script") == 1 and "img" not in names and "b" not in names
    # The env and team of the odd row reach the filters as escaped option values.
    options = [a["value"] for name, a in tags_of(page) if name == "option"]
    assert options == ["", "dev", "dev<x>", "", "research", "te<am"]


def test_the_page_is_self_contained_with_both_filters():
    rows = fleet_matrix({}, [("dev", "global", "research"), ("qa", "us-east-1", "risk")], [], ["dev", "qa"])
    page = render_report(rows, {}, generated_at="2026-11-21T08:00:00.000Z", environments=["qa", "dev"])
    tags = tags_of(page)
    assert [(a.get("id"), [o["value"] for n, o in tags if n == "option"]) for n, a in tags if n == "select"] == [
        ("f-env", ["", "qa", "dev", "", "research", "risk"]), ("f-team", ["", "qa", "dev", "", "research", "risk"])]
    # Nothing loaded from anywhere: no src/href attributes, no CSS imports or url(), a CSP saying so.
    assert not [a for _n, a in tags if "src" in a or "href" in a]
    assert "url(" not in page and "@import" not in page and "http" not in page.replace("http-equiv", "")
    assert "default-src 'none'" in page


# --- the real page in a real browser ------------------------------------------------------------

def seed_fleet(repo: Path) -> None:
    for name in ("dev_us-east-1/research/1.0", "dev_global/research/1.0", "dev_eu-central-1/research/1.0",
                 "dev_us-east-1/research/1.1", "dev_global/research/1.1", "dev_eu-central-1/research/1.1",
                 "dev_us-east-1/risk/2.0"):
        tag(repo, name)
    tfdeploy(repo, "bootstrap", "--env", "dev")
    environ = dict(os.environ)
    for record in (
        rec("dev_us-east-1/research/1.0"), rec("dev_us-east-1/research/1.1", commit="b" * 40),
        rec("dev_global/research/1.0"),
        rec("dev_eu-central-1/research/1.0"),
        rec("dev_eu-central-1/research/1.1", result="failed", details={"error": HOSTILE_ERROR}),
        rec("dev_us-east-1/risk/2.0", caller=HOSTILE_CALLER, override="hotfix <approved> by CAB"),
        rec("dev_us-east-1/risk/2.0", action="drift", result="drifted",
            details={"resources": ["aws_s3_bucket.data", "aws_iam_role.app"]}),
    ):
        append(record, SETTINGS, environ)


def dump_dom(url: str, profile: Path) -> str:
    proc = subprocess.run([CHROMIUM, *HEADLESS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def visible_rows(dom: str) -> list[str]:
    """The cells of the matrix rows without the `hidden` attribute, as the DOM has them after the scripts."""
    return [a["data-cell"] for n, a in tags_of(dom)
            if n == "tr" and "row" in (a.get("class") or "").split() and "hidden" not in a]


class DevTools:
    """A page in headless Chromium driven over the DevTools Protocol (127.0.0.1 only). `ready`: a
    JavaScript expression that is true once the page is usable (tests/docs reuses this for the
    docs site, served over http on 127.0.0.1)."""

    def __init__(self, url: str, profile: Path, ready: str = "!!document.getElementById('shown')") -> None:
        import websocket

        self.proc = subprocess.Popen([CHROMIUM, *HEADLESS, f"--user-data-dir={profile}",
                                      "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", url],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file, deadline = profile / "DevToolsActivePort", time.monotonic() + 60
            scheme = url.split(":", 1)[0] + ":"
            while not (port_file.is_file() and port_file.read_text().count("\n") >= 1):
                assert self.proc.poll() is None and time.monotonic() < deadline, "chromium did not start DevTools"
                time.sleep(0.05)
            port = int(port_file.read_text().split()[0])
            opener = build_opener(ProxyHandler({}))  # loopback: never through a proxy
            while True:
                pages = [t for t in json.load(opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10))
                         if t["type"] == "page" and t["url"].startswith(scheme)]
                if pages:
                    break
                assert time.monotonic() < deadline, "the page never opened"
                time.sleep(0.05)
            self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30,
                                                  suppress_origin=True)
            self.ids = itertools.count(1)
            # The target can be listed while the browser is still leaving about:blank.
            while not self.js(f"location.protocol === '{scheme}' && document.readyState === 'complete' && "
                              f"({ready})"):
                assert time.monotonic() < deadline, "the page never loaded"
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, **params):
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                assert "error" not in reply, reply
                return reply["result"]

    def js(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        box = self.js(f"(function(){{var e=document.querySelector({json.dumps(selector)});e.scrollIntoView();"
                      "var r=e.getBoundingClientRect();return [r.x+r.width/2,r.y+r.height/2];})()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@needs_chromium
def test_status_html_in_chromium_shows_the_matrix_filters_and_a_history_on_click(repo, tmp_path):
    seed_fleet(repo)
    report = tmp_path / "out" / "fleet.html"
    done = tfdeploy(repo, "status", "--html", str(report))
    assert done.stderr.strip().splitlines()[-1] == f"tfdeploy: fleet report written to {report} (9 cells)"
    assert done.stdout.splitlines()[-1] == "9 cells: 1 failed, 1 drifted, 2 behind, 5 never-deployed"
    assert sorted(p.name for p in report.parent.iterdir()) == ["fleet.html"]  # no temp file left
    page = report.read_text(encoding="utf-8")
    assert HOSTILE_CALLER not in page and "&lt;img src=x onerror=alert(1)&gt;" in page

    # The fragment sets the filters and opens a history exactly as the controls do.
    dom = dump_dom(report.as_uri() + "#env=dev&team=research&cell=dev-eu-central-1-research", tmp_path / "p1")
    assert visible_rows(dom) == ["dev-global-research", "dev-eu-central-1-research", "dev-us-east-1-research"]
    assert 'id="shown" aria-live="polite">showing 3 of 9</span>' in dom
    opened = [a["data-for"] for n, a in tags_of(dom) if n == "tr" and a.get("class") == "history" and "hidden" not in a]
    assert opened == ["dev-eu-central-1-research"]
    assert re.search(r'<option value="dev" selected="">|<select id="f-env">', dom)

    view = DevTools(report.as_uri(), tmp_path / "p2")
    try:
        text = view.js("document.body.innerText")
        # What a person sees: every row with its badge, no history yet, the generated line.
        assert "Generated at " in text and "9 cells" in text and "showing 9 of 9" in text
        assert re.search(r"apply failed \(1\.1, 2026-11-20 10:\d\dZ\)\s+failed\s+behind: 1\.1 tagged", text)
        # The counts agree with the text output (a cell counts under each of its marks).
        assert " ".join(view.js("document.querySelector('.summary').innerText").split()) == (
            "9 cells failed 1 drifted 1 behind 2 never deployed 5 succeeded 1")
        assert text.count("never deployed") >= 5 and "drifted" in text
        assert "History of" not in text
        assert view.js("getComputedStyle(document.querySelector('tr[data-cell=\"dev-eu-central-1-research\"] td'))"
                       ".borderLeftColor") == "rgb(207, 34, 46)"  # the failed red

        # A real click on the risk cell's scope opens its history, newest first, escaped.
        view.click('tr[data-cell="dev-us-east-1-risk"] button.cell')
        assert view.js("location.hash") == "#cell=dev-us-east-1-risk"
        history = view.js("document.querySelector('tr.history[data-for=\"dev-us-east-1-risk\"]').innerText")
        assert "History of dev-us-east-1-risk, newest first" in history
        lines = [line for line in history.splitlines() if "dev_us-east-1/risk/2.0" in line]
        assert len(lines) == 2 and "drift" in lines[0] and "drifted" in lines[0] and "apply" in lines[1]
        assert "resources: aws_s3_bucket.data, aws_iam_role.app" in lines[0]
        assert "override: hotfix <approved> by CAB" in lines[1] and 'Ops<img src=x onerror=alert(1)>/"me"' in lines[1]
        assert "+2 ~1 -0" in lines[1]
        assert view.js("document.images.length") == 0  # the ARN stayed text
        shot = view.call("Page.captureScreenshot", format="png")
        (tmp_path / "report.png").write_bytes(base64.b64decode(shot["data"]))

        # The team filter as a person uses it: choose an option, the browser fires `change`.
        view.js("var s=document.getElementById('f-team');s.value='risk';s.dispatchEvent(new Event('change'))")
        assert view.js("location.hash") == "#team=risk&cell=dev-us-east-1-risk"
        shown = view.js("Array.from(document.querySelectorAll('tr.row')).filter(r=>r.offsetParent!==null)"
                        ".map(r=>r.dataset.cell)")
        assert shown == ["dev-eu-central-1-risk", "dev-us-east-1-risk", "qa-eu-central-1-risk", "qa-us-east-1-risk"]
        view.js("var s=document.getElementById('f-env');s.value='qa';s.dispatchEvent(new Event('change'))")
        text = view.js("document.body.innerText")
        assert "showing 2 of 9" in text and "History of" not in text and "research" not in text.split("Team\tEnv")[-1]
        # Clicking the open cell again closes it.
        view.js("location.hash='#cell=dev-us-east-1-risk'")
        view.click('tr[data-cell="dev-us-east-1-risk"] button.cell')
        assert view.js("location.hash") == "" and "History of" not in view.js("document.body.innerText")
    finally:
        view.close()
    shutil.copy(tmp_path / "report.png", os.environ.get("TFDEPLOY_REPORT_SHOT", tmp_path / "kept.png"))

    # A path that cannot be a file: one line, and the report written before is untouched.
    before = report.read_bytes()
    bad = tfdeploy(repo, "status", "--html", str(report.parent), check=False)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        (f"tfdeploy: error: Invalid value for '--html': File '{report.parent}' is a directory; "
         "see tfdeploy status --help")]
    bad = tfdeploy(repo, "status", "--html", str(report / "x.html"), check=False)
    assert bad.returncode == 1 and bad.stderr.strip().splitlines() == [
        (f"tfdeploy: error: cannot write the HTML report to {report / 'x.html'}: File exists ({report}); "
         "give a writable file path to --html")]
    assert report.read_bytes() == before and sorted(p.name for p in report.parent.iterdir()) == ["fleet.html"]


@needs_chromium
def test_the_matrix_of_ten_envs_by_twenty_regions_fits_the_page_and_opens_a_history(tmp_path):
    """The matrix section as a person sees it at 1400 px: every column without scrolling sideways,
    Regions by their short names (full names on hover and in the legend), a failed cell red with
    its letters, and a click on a cell opening that cell's history in the list."""
    from tests.fleetstate.test_matrix import ENVS, REGIONS
    from tests.fleetstate.test_matrix import rec  # its own clock: 400 records, all in the past

    rows, histories = [], {}
    for n, (env, scope) in enumerate((env, scope) for env in ENVS for scope in ("global", *REGIONS)):
        records = [rec(f"{env}_{scope}/research/1.10")]
        if n % 7 == 0:
            records.append(rec(f"{env}_{scope}/research/1.11", result="failed"))
        row = cell_status((env, scope, "research"), records, f"{env}_{scope}/research/1.1{n % 7 == 0:d}")
        rows.append(row)
        histories[row.cell] = records[::-1]
    page = tmp_path / "fleet.html"
    page.write_text(render_report(rows, histories, generated_at="2026-11-21T08:00:00.000Z", environments=ENVS),
                    encoding="utf-8")
    view = DevTools(page.as_uri(), tmp_path / "p")
    try:
        assert view.js("(function(){var w=document.querySelector('.mx-wrap');return w.scrollWidth<=w.clientWidth})()")
        assert view.js("document.documentElement.scrollWidth <= window.innerWidth")
        heads = view.js("Array.from(document.querySelectorAll('table.mx thead th')).map(h=>[h.innerText,h.title])")
        assert heads[:4] == [["Team", ""], ["Env", ""], ["global", "global"], ["apne1", "ap-northeast-1"]]
        assert len(heads) == 23 and ["use1", "us-east-1"] in heads
        grid = view.js("document.querySelector('table.mx').innerText")
        assert grid.splitlines()[1].split("\t")[:4] == ["research", "e0", "1.10 FB", "1.10"]
        assert view.js("document.querySelectorAll('table.mx tbody tr').length") == 10
        failed = 'td[data-cell="e0-global-research"]'
        assert view.js(f"getComputedStyle(document.querySelector('{failed}')).backgroundColor") == "rgb(255, 235, 233)"
        legend = view.js("document.querySelector('#v-matrix .legend').innerText")
        assert "F failed" in legend and "B behind" in legend and "use1 us-east-1" in legend

        view.click('td[data-cell="e3-us-east-1-research"] button.mcell')
        assert view.js("location.hash") == "#cell=e3-us-east-1-research"
        history = view.js("document.querySelector('tr.history[data-for=\"e3-us-east-1-research\"]').innerText")
        assert "History of e3-us-east-1-research, newest first" in history and "e3_us-east-1/research/1.10" in history
        assert view.js("document.querySelector('td[data-cell=\"e3-us-east-1-research\"]').classList.contains('open')")

        # The env filter narrows the matrix as it narrows the list.
        view.js("var s=document.getElementById('f-env');s.value='e5';s.dispatchEvent(new Event('change'))")
        shown = view.js("Array.from(document.querySelectorAll('tr.mrow')).filter(r=>r.offsetParent!==null)"
                        ".map(r=>r.dataset.env)")
        assert shown == ["e5"] and "showing 21 of 210" in view.js("document.body.innerText")
    finally:
        view.close()
