"""``edgefm diff``."""

from __future__ import annotations

from pathlib import Path

import click

from edgefm.cli.options import BudgetType, RegressionType


@click.command("diff")
@click.argument("old", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.argument("new", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--max-regression", "max_regression", type=RegressionType(), default=None,
              help="Fail if NEW is worse than OLD, e.g. accuracy=0.3pt,size=5%,latency=10%.")
@click.option("--max-size", "max_size", multiple=True, type=BudgetType("size"), metavar="NAME=SIZE", help="e.g. tflite_int8=256KiB.")
@click.option("--max-latency", "max_latency", multiple=True, type=BudgetType("latency"), metavar="NAME=TIME", help="e.g. tflite_int8=2ms.")
@click.option("--junit", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Also write NEW and the gates as JUnit XML.")
@click.option("--summary", type=click.Path(path_type=Path, dir_okay=False), default=None, metavar="FILE",
              help="Also write NEW and the gates as Markdown.")
@click.option("--json", "as_json", is_flag=True, help="Print the diff as JSON.")
def diff_cmd(old: Path, new: Path, max_regression: dict[str, float] | None, max_size: tuple[tuple[str, float], ...],
             max_latency: tuple[tuple[str, float], ...], junit: Path | None, summary: Path | None, as_json: bool) -> None:
    """What changed between two saved verify reports, per artifact: every metric, size, batch-1 latency.

    Nothing runs again: both files are read. Exit status 1 when a gate fails.

    \\b
    Examples:
      edgefm diff v1/verify-report.json artifacts/verify-report.json
      edgefm diff OLD.json NEW.json --max-regression accuracy=0.3pt,size=5%,latency=10%
    """
    from edgefm.cli.console import echo_json
    from edgefm.core.errors import ParityError
    from runtime_check.verify.baseline import Gates, format_diff, release_diff
    from runtime_check.verify.report import ParityReport
    from runtime_check.verify.views import write_views

    before, after = ParityReport.load(old, images=False), ParityReport.load(new, images=False)
    diff = release_diff(before, after, Gates(max_regression or {}, dict(max_size), dict(max_latency)))
    write_views(after, junit=junit, summary=summary, diff=diff)
    if as_json:
        echo_json(diff.to_dict())
    else:
        click.echo(format_diff(diff))
    if not diff.passed:
        raise ParityError(diff.summary())
