"""What a person sees (pure renderers): CI lines, the matrix, --json, exit codes, the live table."""

from __future__ import annotations

import io
import json

from tfdeploy.fleet.display import Event, LineDisplay, make_display, render_table
from tfdeploy.fleet.results import CellResult, document, exit_code, matrix


def results():
    return [CellResult("dev_global/research/1.1", "dev-global-research", "applied", 1, 0, 0, 2.04, "g.log"),
            CellResult("dev_us-east-1/research/1.1", "dev-us-east-1-research", "failed", 0, 0, 0, 3.0, "u.log",
                       error="terraform apply failed"),
            CellResult("dev_eu-central-1/research/1.1", "dev-eu-central-1-research", "skipped")]


def test_ci_lines_are_one_per_event_prefixed_and_show_the_failed_log_tail(tmp_path):
    log = tmp_path / "cell.log"
    log.write_text("".join(f"line {i}\n" for i in range(40)))
    out = io.StringIO()
    with LineDisplay(out) as display:
        display.add("dev-us-east-1-research", "dev_us-east-1/research/1.1")
        display.event(Event("dev-us-east-1-research", "dev_us-east-1/research/1.1", "running", log=str(log)))
        display.event(Event("dev-us-east-1-research", "t", "plan", (1, 0, 0), 3.2))
        display.event(Event("dev-us-east-1-research", "t", "failed", None, 4.0, "boom", str(log)))
    lines = out.getvalue().splitlines()
    assert lines[0] == f"[dev-us-east-1-research] start dev_us-east-1/research/1.1 (log: {log})"
    assert lines[1] == "[dev-us-east-1-research] plan +1 ~0 -0 (3.2s)"
    assert lines[2] == "[dev-us-east-1-research] failed (4.0s): boom"
    assert lines[-1] == "[dev-us-east-1-research] | line 39" and "line 19" not in out.getvalue()
    assert all(line.startswith("[dev-us-east-1-research] ") for line in lines)


def test_matrix_json_and_exit_codes():
    text = matrix(results())
    assert text.splitlines()[0].split() == ["CELL", "TAG", "RESULT", "+/~/-", "TIME", "LOG"]
    assert text.splitlines()[1].split() == ["dev-global-research", "dev_global/research/1.1", "applied",
                                            "+1", "~0", "-0", "2.0s", "g.log"]
    assert text.splitlines()[-1] == ("1 of 3 cells succeeded; not done: dev-us-east-1-research, "
                                     "dev-eu-central-1-research")
    doc = json.loads(json.dumps(document(results())))
    assert doc["ok"] is False
    assert list(doc["cells"][0]) == ["tag", "cell", "result", "add", "change", "destroy", "duration_s", "log"]
    assert exit_code(results(), detailed=True) == 1
    ok = results()[:1]
    assert exit_code(ok, detailed=False) == 0 and exit_code(ok, detailed=True) == 2
    assert exit_code(ok, detailed=True, signum=2) == 130


def test_live_table_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    display = make_display(Tty(), live=True)
    display.add("dev-global-research", "dev_global/research/1.1")
    display.board.apply(Event("dev-global-research", "dev_global/research/1.1", "running"), 0.0)
    display.board.apply(Event("dev-global-research", "dev_global/research/1.1", "plan", (1, 0, 0)), 1.0)
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120)
    console.print(render_table(display.board, 2.5))
    shown = console.file.getvalue()
    assert "dev-global-research" in shown and "applying" in shown and "2.5s" in shown and "+1 ~0 -0" in shown
    assert isinstance(make_display(io.StringIO()), LineDisplay)  # not a terminal: lines


def _tty_display(height: int):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    stream = Tty()
    display = make_display(stream, live=True)
    display.console.size = (140, height)
    return display, stream


def test_live_table_taller_than_the_terminal_keeps_failed_and_running_cells_in_view():
    """30 cells on a 12-line terminal: the table used to be cut at the bottom ("..."), hiding the
    running cells and a failure, which in schedule order come last."""
    display, stream = _tty_display(12)
    cells = [(f"dev-r{i:02d}-research", f"dev_r{i:02d}/research/1.1") for i in range(30)]
    with display:
        for cell, tag in cells:
            display.add(cell, tag)
        for cell, tag in cells[:20]:
            display.board.apply(Event(cell, tag, "running"), 0.0)
            display.board.apply(Event(cell, tag, "applied", (1, 0, 0), 1.0), 1.0)
        display.board.apply(Event(cells[25][0], cells[25][1], "running"), 0.0)
        display.board.apply(Event(cells[25][0], cells[25][1], "failed", None, 2.0, "boom"), 2.0)
        for cell, tag in cells[26:28]:
            display.board.apply(Event(cell, tag, "running"), 0.0)
        stream.seek(0)
        stream.truncate()
        display.tick()
        frame = stream.getvalue()
    drawn = [line for line in frame.splitlines() if line.strip()]
    assert len(drawn) <= 12, frame
    for cell, _ in (cells[25], cells[26], cells[27]):
        assert cell in frame, f"{cell} is not in view:\n{frame}"
    assert "20 applied" in frame and "queued" in frame, frame  # the hidden rows, counted


def test_live_table_that_fits_shows_every_cell_and_no_count():
    display, stream = _tty_display(40)
    with display:
        for i in range(5):
            display.add(f"dev-r{i}-research", f"dev_r{i}/research/1.1")
        stream.seek(0)
        stream.truncate()
        display.tick()
        frame = stream.getvalue()
    assert all(f"dev-r{i}-research" in frame for i in range(5)) and "more:" not in frame


def test_ci_lines_say_which_cells_still_run_when_nothing_was_said_for_a_minute():
    """Terraform alone prints "Still creating..." every 10 s; a fleet in CI keeps that in each
    cell's log. A 15-minute database create used to leave the CI log silent for 15 minutes, and
    CI services stop a job after 10 minutes without output (CircleCI's no_output_timeout)."""
    now = [0.0]
    out = io.StringIO()
    with LineDisplay(out, clock=lambda: now[0]) as display:
        for region in ("us-east-1", "eu-west-1", "ap-south-1"):
            display.add(f"dev-{region}-research", f"dev_{region}/research/1.1")
        display.event(Event("dev-us-east-1-research", "dev_us-east-1/research/1.1", "running"))
        now[0] = 5.0
        display.event(Event("dev-eu-west-1-research", "dev_eu-west-1/research/1.1", "running"))
        said = len(out.getvalue().splitlines())
        now[0] = 64.0
        display.tick()
        assert len(out.getvalue().splitlines()) == said  # a minute has not passed since the last line
        now[0] = 65.5
        display.tick()
        display.tick()  # once, not at every tick
        lines = out.getvalue().splitlines()[said:]
        assert lines == ["[fleet] still running: dev-us-east-1-research 1m05s, "
                         "dev-eu-west-1-research 1m00s; 1 queued"]
        now[0] = 125.5
        display.tick()
        assert out.getvalue().splitlines()[-1].startswith("[fleet] still running: dev-us-east-1-research 2m05s")
        display.event(Event("dev-us-east-1-research", "t", "failed", None, 130.0, "boom"))
        display.event(Event("dev-eu-west-1-research", "t", "applied", (1, 0, 0), 126.0))
        said = len(out.getvalue().splitlines())
        now[0] = 500.0
        display.tick()
        assert len(out.getvalue().splitlines()) == said  # nothing runs: nothing to say


def test_a_cells_latest_terraform_step_is_in_the_heartbeat_and_the_table_but_never_its_own_line():
    now = [0.0]
    out = io.StringIO()
    cell, tag = "dev-us-east-1-research", "dev_us-east-1/research/1.1"
    with LineDisplay(out, clock=lambda: now[0]) as display:
        display.add(cell, tag)
        display.event(Event(cell, tag, "running"))
        display.event(Event(cell, tag, "progress", detail="module.regional.aws_db_instance.main: Creating..."))
        display.event(Event(cell, tag, "progress",
                            detail="module.regional.aws_db_instance.main: Still creating... [10s elapsed]"))
        assert out.getvalue().splitlines() == [f"[{cell}] start {tag}"]
        assert display.board.rows[cell].state == "running"
        now[0] = 61.0
        display.tick()
        assert out.getvalue().splitlines()[-1] == (
            f"[fleet] still running: {cell} 1m01s (module.regional.aws_db_instance.main: Still creating... "
            "[10s elapsed])")
        from rich.console import Console

        console = Console(file=io.StringIO(), width=200)
        console.print(render_table(display.board, 61.0))
        assert "Still creating... [10s elapsed]" in console.file.getvalue()
        display.event(Event(cell, tag, "applied", (1, 0, 0), 70.0))
        assert display.board.rows[cell].doing == ""


def test_the_terraform_column_takes_only_the_width_left_and_is_dropped_when_none_is():
    from rich.console import Console

    from tfdeploy.fleet.display import Board

    board = Board()
    board.add("dev-us-east-1-research", "dev_us-east-1/research/1.1")
    board.apply(Event("dev-us-east-1-research", "t", "running"), 0.0)
    board.apply(Event("dev-us-east-1-research", "t", "progress", detail="aws_vpc.main: Creating..."), 1.0)
    short = Board()
    short.add("c", "t")
    short.apply(Event("c", "t", "progress", detail="x: Creating"), 0.0)
    printed = Console(file=io.StringIO(), width=300)
    printed.print(render_table(short, 1.0))
    assert "x: Creating" in printed.file.getvalue()  # a short step, no width given: shown

    def drawn(width):
        console = Console(file=io.StringIO(), width=300)
        console.print(render_table(board, 2.0, width=width))
        return console.file.getvalue()

    assert "aws_vpc.main: Creating..." in drawn(None)  # no width given: all of it
    assert "aws_vpc.main: Creating..." in drawn(200)
    narrow = drawn(95)  # the other columns and their gaps take 77: 18 are left
    assert "dev-us-east-1-research" in narrow and "running" in narrow and "2.0s" in narrow
    assert "aws_vpc.main: Cre…" in narrow and "Creating..." not in narrow
    assert "terraform" not in drawn(60) and "running" in drawn(60)  # no room: the column goes, not the others


def test_no_terraform_column_while_no_cell_has_a_step():
    from rich.console import Console

    from tfdeploy.fleet.display import Board

    board = Board()
    board.add("dev-us-east-1-research", "dev_us-east-1/research/1.1")
    board.apply(Event("dev-us-east-1-research", "t", "applied", (1, 0, 0), 1.0), 1.0)
    console = Console(file=io.StringIO(), width=200)
    console.print(render_table(board, 2.0, width=200))
    assert "terraform" not in console.file.getvalue() and "applied" in console.file.getvalue()


def test_a_plans_step_comes_from_its_progress_lines_never_from_its_diff():
    from tfdeploy.fleet.actions import plan_step

    ns = "module.regional"
    assert plan_step("module.regional.terraform_data.x: Refreshing state... [id=ab-1]\n", ns) == \
        "terraform_data.x: Refreshing state... [id=ab-1]"
    assert plan_step("module.regional.module.context.data.aws_region.current: Reading...\n", ns) == \
        "module.context.data.aws_region.current: Reading..."
    assert plan_step('module.global.data.aws_iam_policy_document.p["a b"]: Read complete after 1s [id=1]\n',
                     "module.global") == 'data.aws_iam_policy_document.p["a b"]: Read complete after 1s [id=1]'
    assert plan_step("module.regional.data.aws_vpc.this: Still reading... [10s elapsed]\n", ns) == \
        "data.aws_vpc.this: Still reading... [10s elapsed]"
    # The diff and the summary are not steps, whatever a value says.
    for line in ('      + description = "x: Reading..."\n', "  # module.regional.aws_vpc.this will be created\n",
                 "Plan: 1 to add, 0 to change, 0 to destroy.\n", "\n"):
        assert plan_step(line, ns) is None, line
