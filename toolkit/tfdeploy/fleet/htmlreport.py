"""`tfdeploy status --html FILE` (pure): the fleet matrix and each cell's recent history as one
self-contained page — inline CSS and script, nothing loaded from anywhere, so it can be kept as a
build artifact, mailed or opened from disk years later.

Everything shown comes from the ledger and is escaped here (a tag, a caller ARN or an error line
may carry `<`). The table and the histories are rendered in HTML, not built by the script: the
page reads the same without JavaScript; the script only filters rows and opens histories.

The page's state lives in the URL fragment, `#env=dev&team=research&cell=dev-us-east-1-research`:
the select boxes and a click on a cell write the fragment, and one function turns the fragment
into what is shown. So a link can point at a filtered view or an open history, and both paths are
the same code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from .ledger import SUMMARY_KEEP, Record
from .matrix import ABSENT, ABSENT_MEANING, LETTER_MEANINGS, NEVER, NEVER_MEANING, Matrix, build_matrix
from .status import CellStatus, _when, _who

# The one state a row is coloured by, most urgent first; "ok" when it carries no mark.
STATES = ("unverified", "failed", "interrupted", "drifted", "behind", "never-deployed", "destroyed", "ok")
STATE_LABELS = {
    "failed": "failed", "interrupted": "interrupted", "drifted": "drifted", "behind": "behind",
    "never-deployed": "never deployed", "destroyed": "destroyed", "ok": "succeeded", "unverified": "unverified record",
}
STATE_MEANINGS = {
    "ok": "last apply succeeded, newest version, no drift found",
    "failed": "the last apply or destroy failed",
    "interrupted": "a run was cut short (signal, crash); the state may hold part of its change",
    "drifted": "a drift check since the last apply found differences",
    "behind": "a newer version is tagged for the cell",
    "never-deployed": "set up or tagged, never applied",
    "destroyed": "the last successful change was a destroy",
    "unverified": "a ledger record is unsigned, badly signed or future-dated: left out (tfdeploy history says why)",
}


def row_state(row: CellStatus) -> str:
    """The state a row is coloured by: its most urgent mark, or "ok" (pure)."""
    return next((s for s in STATES if s in row.marks), "ok")


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _badge(state: str, text: str | None = None) -> str:
    return f'<span class="badge b-{_e(state)}">{_e(text or STATE_LABELS[state])}</span>'


def _mark_badges(row: CellStatus) -> str:
    badges = []
    for mark in row.marks:
        text = STATE_LABELS[mark]
        if mark == "behind" and row.newest_version:
            text = f"behind: {row.newest_version} tagged"
        badges.append(_badge(mark, text))
    return " ".join(badges) or _badge("ok")


def _last(row: CellStatus) -> str:
    last, deployed = row.last, row.deployed
    if last is None:
        return '<span class="none">-</span>'
    text = f"{last.action} {last.result}"
    if deployed is None or last.id != deployed.id:
        text += f" ({last.version}, {_when(last.finished_at)})"
    return f'<span title="{_e(last.tag)}">{_e(text)}</span>'


def _details(record: Record) -> str:
    """The record's error line and listed addresses (drift), short."""
    parts = []
    for key, value in sorted(record.details.items()):
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        parts.append(f"{key}: {value}")
    return "; ".join(parts)


def _history(row: CellStatus, records: Sequence[Record], columns: int) -> str:
    head = ("Finished", "Action", "Result", "Tag", "Commit", "+/~/-", "By", "Build", "Override / details")
    if records:
        body = []
        for r in records:
            notes = " ".join(x for x in (f"override: {r.override}" if r.override else "", _details(r)) if x)
            result_state = {"succeeded": "ok", "in-sync": "ok"}.get(r.result, r.result)
            result_state = result_state if result_state in STATES else "failed"
            body.append(
                "<tr>"
                f'<td title="{_e(r.finished_at)}">{_e(_when(r.finished_at))}</td>'
                f"<td>{_e(r.action)}</td>"
                f"<td>{_badge(result_state, r.result)}</td>"
                f"<td class=mono>{_e(r.tag)}</td>"
                f'<td class=mono title="{_e(r.commit)}">{_e(r.commit[:12])}</td>'
                f"<td class=num>+{_e(r.add)} ~{_e(r.change)} -{_e(r.destroy)}</td>"
                f'<td title="{_e(r.caller)}">{_e(_who(r.caller))}</td>'
                f"<td class=mono>{_e(r.build_id or '-')}</td>"
                f"<td>{_e(notes or '-')}</td>"
                "</tr>")
        table = (f'<table class="hist"><thead><tr>{"".join(f"<th>{h}</th>" for h in head)}</tr></thead>'
                 f'<tbody>{"".join(body)}</tbody></table>')
        more = (f"The newest {len(records)} records kept in the ledger summary; every record: "
                if len(records) >= SUMMARY_KEEP else "Every record: ")
        note = f'<p class="note">{_e(more)}<code>tfdeploy history --cell {_e(row.cell)}</code></p>'
    else:
        table, note = '<p class="note">No deployments recorded for this cell.</p>', ""
    return (f'<tr class="history" data-for="{_e(row.cell)}" hidden><td colspan="{columns}">'
            f'<div class="hist-title">History of <strong>{_e(row.cell)}</strong>, newest first</div>'
            f"{table}{note}</td></tr>")


HEAD = ("Team", "Env", "Scope", "Version", "Commit", "Deployed", "By", "Last apply/destroy", "Status")


def _row(row: CellStatus) -> str:
    d = row.deployed
    dash = '<span class="none">-</span>'
    state = row_state(row)
    cells = [
        _e(row.team), _e(row.env),
        (f'<button type="button" class="cell" aria-expanded="false" title="Show the history of {_e(row.cell)}">'
         f"{_e(row.scope)}</button>"),
        f"<strong>{_e(d.version)}</strong>" if d else dash,
        f'<span class="mono" title="{_e(d.commit)}">{_e(d.commit[:12])}</span>' if d else dash,
        f'<span title="{_e(d.finished_at)}">{_e(_when(d.finished_at))}</span>' if d else dash,
        f'<span title="{_e(d.caller)}">{_e(_who(d.caller))}</span>' if d else dash,
        _last(row), _mark_badges(row),
    ]
    return (f'<tr class="row st-{state}" data-cell="{_e(row.cell)}" data-env="{_e(row.env)}" '
            f'data-team="{_e(row.team)}" data-state="{state}" tabindex="-1">'
            + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")


def _matrix(matrix: Matrix, states: Mapping[str, str]) -> str:
    """The team x env by scope table: each cell its version and letters, coloured by its state
    (the letters say it in text too); a click opens the cell's history in the list below."""
    headers = matrix.headers
    head = "".join(f'<th scope="col" title="{_e(s)}">{_e(headers[s])}</th>' for s in matrix.columns)
    body = []
    for team, env in matrix.rows:
        cells = []
        for scope in matrix.columns:
            c = matrix.cell(team, env, scope)
            if c is None:
                cells.append(f'<td class="mx-absent" title="{_e(ABSENT_MEANING)}">{_e(ABSENT)}</td>')
                continue
            state = states[c.cell]
            cells.append(f'<td class="st-{state}" data-cell="{_e(c.cell)}"><button type="button" class="mcell" '
                         f'title="{_e(c.cell)}: {_e(STATE_LABELS[state])}">{_e(c.text)}</button></td>')
        body.append(f'<tr class="mrow" data-env="{_e(env)}" data-team="{_e(team)}"><th scope="row">{_e(team)}</th>'
                    f"<td>{_e(env)}</td>{''.join(cells)}</tr>")
    names = [f"<li><code>{_e(headers[s])}</code> {_e(s)}</li>" for s in matrix.columns if headers[s] != s]
    letters = [f"<li><code>{_e(x)}</code> {_e(LETTER_MEANINGS[x])}</li>" for x in LETTER_MEANINGS]
    letters += [f"<li><code>{_e(NEVER)}</code> {_e(NEVER_MEANING)}</li>",
                f"<li><code>{_e(ABSENT)}</code> {_e(ABSENT_MEANING)}</li>"]
    legend = f'<ul class="mx-legend">{"".join(letters)}</ul>'
    if names:
        legend += f'<ul class="mx-legend mx-names">{"".join(names)}</ul>'
    return (f'<div class="mx-wrap"><table class="mx"><thead><tr><th scope="col">Team</th><th scope="col">Env</th>'
            f'{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'
            f'<details class="legend" open><summary>Matrix legend</summary>{legend}'
            '<p class="note">A cell: the version of its last successful apply and a letter per mark; '
            "click it for its history in the list below.</p></details>")


def _options(values: Sequence[str], everything: str) -> str:
    return f'<option value="">{_e(everything)}</option>' + "".join(
        f'<option value="{_e(v)}">{_e(v)}</option>' for v in values)


def render_report(rows: Sequence[CellStatus], histories: Mapping[str, Sequence[Record]], *,
                  generated_at: str, environments: Sequence[str], title: str = "tfdeploy fleet status",
                  scope_note: str = "") -> str:
    """The whole page (pure). `histories`: cell -> its records, newest first (the ledger summary
    `latest` returns: no request beyond what `status` makes). `scope_note`: the filters the
    command ran with, e.g. "--env dev", shown under the title."""
    envs = [e for e in environments if any(r.env == e for r in rows)]
    envs += sorted({r.env for r in rows} - set(envs))
    teams = sorted({r.team for r in rows})
    # The same counts as the text output: a cell carries each of its marks (failed and behind, say).
    tally = {s: sum(s in r.marks if s != "ok" else not r.marks for r in rows) for s in STATES}
    summary = " ".join(f'<span class="count">{_badge(s)} {tally[s]}</span>' for s in STATES if tally[s])
    legend = "".join(f"<li>{_badge(s)} {_e(STATE_MEANINGS[s])}</li>" for s in STATES)
    body = "".join(_row(r) + _history(r, histories.get(r.cell, ()), len(HEAD)) for r in rows)
    grid = _matrix(build_matrix(rows), {r.cell: row_state(r) for r in rows}) if rows else ""
    if not rows:
        body = (f'<tr><td colspan="{len(HEAD)}" class="empty">No cells: no tags, no envs/ set up and no '
                "deployments recorded" + (" for these filters" if scope_note else "") + ".</td></tr>")
    generated = f"Generated at {_when(generated_at)} (UTC) by <code>tfdeploy status --html</code>"
    if scope_note:
        generated += f" with <code>{_e(scope_note)}</code>"
    return _top(title, generated_at, generated, script=True) + f"""<section class="bar">
<div class="summary"><strong id="total">{len(rows)} cells</strong> {summary}</div>
<div class="filters">
<label>Env <select id="f-env">{_options(envs, "all envs")}</select></label>
<label>Team <select id="f-team">{_options(teams, "all teams")}</select></label>
<span id="shown" aria-live="polite">showing {len(rows)} of {len(rows)}</span>
</div></section>
<section id="v-matrix" aria-labelledby="h-matrix"><h2 id="h-matrix">Matrix</h2>{grid}</section>
<section id="v-list" aria-labelledby="h-list"><h2 id="h-list">Cells</h2>
<table class="matrix"><thead><tr>{"".join(f"<th>{h}</th>" for h in HEAD)}</tr></thead>
<tbody>{body}</tbody></table>
<p id="nomatch" class="empty" hidden>No cell matches these filters.</p></section>
<details class="legend" open><summary>Legend</summary><ul>{legend}</ul>
<p class="note">Version, commit, deployed and by: the last successful apply. Click a scope for the cell's
history. Colours repeat the status badge's text.</p></details>
<script>{_JS}</script>
</body></html>
"""



def _top(title: str, generated_at: str, generated: str, *, script: bool) -> str:
    """The page up to its header (one look for every report); `generated` is HTML."""
    scripts = "; script-src 'unsafe-inline'" if script else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'{scripts}">
<title>{_e(title)}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{_e(title)}</h1><p class="generated" title="{_e(generated_at)}">{generated}</p></header>
"""


# A plan row's status -> the badge state it is coloured by.
_PLAN_STATES = {"succeeded": "ok", "failed": "failed", "skipped": "never-deployed"}


def render_plan_report(release: str, rows: Sequence[Mapping[str, object]], *, generated_at: str) -> str:
    """A release's plans as one self-contained page (pure): the approval's plan matrix, one row per
    cell (wave, tag, plan result, +/~/-, a link to the cell's plan build: its CodeBuild console page,
    named by its build id, or its log here; on CodeBuild the s3:// URI of the saved plan its apply
    build applies). The same look as the status page, so reviewers read one kind of report. `rows`:
    delivery/approval.py's plan rows."""
    body = []
    for row in rows:
        status = str(row.get("status", ""))
        plan = row.get("plan")
        counts = (f"+{plan['add']} ~{plan['change']} -{plan['destroy']}"  # type: ignore[index]
                  if isinstance(plan, Mapping) else "-")
        log = str(row.get("log") or "")
        text = str(row.get("build") or "plan log")
        link = f'<a href="{_e(log)}">{_e(text)}</a>' if log.startswith(("https://", "file:", "/")) else _e(log or "-")
        if row.get("artifact"):
            link += f'<br><span class="note">saved plan <code>{_e(row["artifact"])}</code></span>'
        state = _PLAN_STATES.get(status, "failed")
        body.append(f'<tr class="row st-{state}"><td>{_e(row.get("wave"))}</td><td>{_e(row.get("tag"))}</td>'
                    f"<td>{_badge(state, status)}</td><td>{_e(counts)}</td><td>{link}</td></tr>")
    changed = sum(1 for r in rows if isinstance(r.get("plan"), Mapping)
                  and any(r["plan"].get(k) for k in ("add", "change", "destroy")))  # type: ignore[union-attr]
    title = f"Plans of release {release}"
    generated = f"Generated at {_e(_when(generated_at))} (UTC) by the release's plan stage build, for the approval"
    return _top(title, generated_at, generated, script=False) + f"""<section class="bar"><div class="summary"><strong>{len(rows)} cells</strong>
<span class="count">{changed} with changes</span></div></section>
<table class="matrix"><thead><tr><th>Wave</th><th>Tag</th><th>Plan</th><th>+/~/-</th><th>Plan build</th></tr></thead>
<tbody>{"".join(body)}</tbody></table>
</body></html>
"""

_CSS = """
:root{--fg:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#fff;--head:#f6f8fa;
--ok:#1a7f37;--ok-bg:#dafbe1;--failed:#cf222e;--failed-bg:#ffebe9;--drifted:#8250df;--drifted-bg:#fbefff;
--behind:#9a6700;--behind-bg:#fff8c5;--never-deployed:#59636e;--never-deployed-bg:#eff2f5;
--destroyed:#0c2d6b;--destroyed-bg:#ddf4ff;--unverified:#bc4c00;--unverified-bg:#fff1e5}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
h1{font-size:22px;margin:0 0 2px}
.generated,.note{color:var(--muted);font-size:12.5px;margin:0}
.bar{display:flex;flex-wrap:wrap;gap:12px 24px;align-items:center;justify-content:space-between;margin:16px 0 10px}
.summary{display:flex;flex-wrap:wrap;gap:6px 14px;align-items:center}
.count{white-space:nowrap}
.filters{display:flex;gap:14px;align-items:center}
.filters label{color:var(--muted)}
select{font:inherit;padding:3px 6px;border:1px solid var(--line);border-radius:6px;background:#fff;margin-left:4px}
#shown{color:var(--muted);font-size:12.5px}
table{border-collapse:collapse;width:100%}
.matrix{border:1px solid var(--line);border-radius:8px}
.matrix>thead th{position:sticky;top:0;background:var(--head);text-align:left;font-weight:600;
padding:8px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
.matrix>tbody>tr.row>td{padding:7px 10px;border-bottom:1px solid var(--line);vertical-align:top}
.matrix>tbody>tr.row>td:nth-child(-n+6){white-space:nowrap}
.hist td:nth-child(-n+5){white-space:nowrap}
tr.row{cursor:pointer}
tr.row:hover{background:#f6f8fa}
tr.row>td:first-child{border-left:4px solid var(--st)}
tr.row.open{background:#f3f6fa}
.st-ok{--st:var(--ok)}.st-failed{--st:var(--failed)}.st-drifted{--st:var(--drifted)}
.st-behind{--st:var(--behind)}.st-never-deployed{--st:var(--never-deployed)}.st-destroyed{--st:var(--destroyed)}
.st-unverified{--st:var(--unverified)}.b-unverified{color:var(--unverified);background:var(--unverified-bg)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;white-space:nowrap;
border:1px solid currentColor}
.b-ok{color:var(--ok);background:var(--ok-bg)}.b-failed{color:var(--failed);background:var(--failed-bg)}
.b-interrupted{color:var(--failed);background:var(--failed-bg)}.b-drifted{color:var(--drifted);background:var(--drifted-bg)}.b-behind{color:var(--behind);background:var(--behind-bg)}
.b-never-deployed{color:var(--never-deployed);background:var(--never-deployed-bg)}
.b-destroyed{color:var(--destroyed);background:var(--destroyed-bg)}
.mono,code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.none{color:#afb8c1}
button.cell{font:inherit;color:#0969da;background:none;border:0;padding:0;cursor:pointer;text-decoration:underline;
text-underline-offset:2px}
tr.history>td{padding:6px 10px 14px 24px;background:#f6f8fa;border-bottom:1px solid var(--line)}
.hist-title{margin:4px 0 6px}
.hist{background:#fff;border:1px solid var(--line);font-size:13px}
.hist th,.hist td{padding:4px 8px;border-bottom:1px solid #eaeef2;text-align:left;vertical-align:top}
.hist th{background:var(--head);font-weight:600}
.num{white-space:nowrap;font-variant-numeric:tabular-nums}
.empty{color:var(--muted);padding:16px;text-align:center}
.legend{margin-top:18px}
.legend summary{cursor:pointer;font-weight:600}
h2{font-size:16px;margin:18px 0 8px}
.mx-wrap{overflow-x:auto}
.mx{width:auto;border:1px solid var(--line);font-size:13px}
.mx th,.mx td{padding:3px 6px;border:1px solid var(--line);white-space:nowrap;text-align:left}
.mx thead th{background:var(--head);font-weight:600}
.mx tbody th{font-weight:600}
.mx td[data-cell]{background:var(--st-bg);color:var(--st);font-weight:600}
.mx td.open{outline:2px solid #0969da;outline-offset:-2px}
.mx-absent{color:#afb8c1}
button.mcell{font:inherit;color:inherit;background:none;border:0;padding:0;cursor:pointer}
.st-ok{--st-bg:var(--ok-bg)}.st-failed,.st-interrupted{--st-bg:var(--failed-bg)}.st-drifted{--st-bg:var(--drifted-bg)}
.st-behind{--st-bg:var(--behind-bg)}.st-never-deployed{--st-bg:var(--never-deployed-bg)}
.st-destroyed{--st-bg:var(--destroyed-bg)}.st-unverified{--st-bg:var(--unverified-bg)}.st-interrupted{--st:var(--failed)}
.legend ul.mx-legend{display:flex;flex-wrap:wrap;gap:4px 18px}
.legend ul{list-style:none;padding:0;margin:8px 0;display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:6px 18px}
"""

# One path from the fragment to the view: controls only write the fragment.
_JS = """
(function(){
  var envSel = document.getElementById('f-env'), teamSel = document.getElementById('f-team');
  var rows = Array.prototype.slice.call(document.querySelectorAll('tr.row'));
  var mrows = Array.prototype.slice.call(document.querySelectorAll('tr.mrow'));
  function historyOf(row){ var h = row.nextElementSibling; return h && h.classList.contains('history') ? h : null; }
  function readState(){
    var p = new URLSearchParams(location.hash.replace(/^#/, ''));
    return {env: p.get('env') || '', team: p.get('team') || '', cell: p.get('cell') || ''};
  }
  function writeState(s){
    var p = new URLSearchParams();
    if (s.env) p.set('env', s.env);
    if (s.team) p.set('team', s.team);
    if (s.cell) p.set('cell', s.cell);
    var frag = p.toString();
    if (frag !== location.hash.replace(/^#/, '')) location.hash = frag;  // a link to this view; Back undoes it
    show();  // now, not on the (asynchronous) hashchange: that one repeats it, harmlessly
  }
  function hasOption(sel, v){ return Array.prototype.some.call(sel.options, function(o){ return o.value === v; }); }
  function show(){
    var s = readState(), shown = 0;
    envSel.value = hasOption(envSel, s.env) ? s.env : '';
    teamSel.value = hasOption(teamSel, s.team) ? s.team : '';
    rows.forEach(function(row){
      var match = (!envSel.value || row.dataset.env === envSel.value) &&
                  (!teamSel.value || row.dataset.team === teamSel.value);
      var open = match && s.cell !== '' && row.dataset.cell === s.cell;
      row.hidden = !match;
      row.classList.toggle('open', open);
      row.querySelector('button.cell').setAttribute('aria-expanded', open ? 'true' : 'false');
      var h = historyOf(row); if (h) h.hidden = !open;
      if (match) shown++;
    });
    mrows.forEach(function(m){
      m.hidden = !((!envSel.value || m.dataset.env === envSel.value) && (!teamSel.value || m.dataset.team === teamSel.value));
      Array.prototype.forEach.call(m.querySelectorAll('td[data-cell]'), function(td){
        td.classList.toggle('open', s.cell !== '' && td.dataset.cell === s.cell);
      });
    });
    document.getElementById('shown').textContent = 'showing ' + shown + ' of ' + rows.length;
    document.getElementById('nomatch').hidden = shown > 0 || rows.length === 0;
  }
  function onFilter(){ var s = readState(); s.env = envSel.value; s.team = teamSel.value; writeState(s); }
  envSel.addEventListener('change', onFilter);
  teamSel.addEventListener('change', onFilter);
  rows.forEach(function(row){
    row.addEventListener('click', function(ev){
      if (ev.target.closest('a')) return;
      var s = readState(); s.cell = (s.cell === row.dataset.cell) ? '' : row.dataset.cell; writeState(s);
    });
  });
  Array.prototype.forEach.call(document.querySelectorAll('button.mcell'), function(b){
    b.addEventListener('click', function(){
      var cell = b.parentNode.dataset.cell, s = readState();
      s.cell = cell; writeState(s);
      var row = document.querySelector('tr.row[data-cell="' + CSS.escape(cell) + '"]');
      if (row && !row.hidden) row.scrollIntoView({block: 'center'});
    });
  });
  window.addEventListener('hashchange', show);
  show();
})();
"""
