"""`coder evaluate`: score a coder against a file of titles with known codes.

Added to the main CLI group by `coder.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_options import echo_err, handle_errors, scheme_option
from .errors import CoderError

__all__ = ["COMMANDS", "evaluate"]


def _split_columns(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str]:
    names = [v.strip() for v in (value or "").split(",")]
    if any(not n for n in names) and len(names) > 1:
        raise click.BadParameter(f"empty column name in {value!r}; give COL or COL,COL")
    return [n for n in names if n]


@click.command()
@click.argument("gold_file", metavar="GOLD.csv", type=click.Path(dir_okay=False))
@click.option("--column", required=True, help="Column holding the job titles.")
@click.option("--gold", "gold_column", required=True,
              help="Column holding the true codes; empty or -9 means no code (reported apart).")
@click.option("--industry-column", default=None, help="Column holding employer/industry text, if any.")
@click.option("--description-column", default=None,
              help="Column holding what the person mainly does in the job, if any.")
@click.option("--accept-columns", "accept_columns", default="", metavar="COL[,COL]", callback=_split_columns,
              help="Columns whose codes also count as right (e.g. two coders' codes before adjudication): "
                   "a row is right if its code is the --gold code or any code in these columns.")
@click.option("--encoding", default=None,
              help="Encoding of a CSV/TSV/TXT file [default: sniffed, as for `coder code`].")
@scheme_option
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Use the model in this directory (never built there on the fly).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for metrics.json, predictions.csv and the two PNG plots "
                   "[default: ./<GOLD>-evaluation].")
@click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
              help="Auto-coding threshold to evaluate [default: the model's calibrated one].")
@click.option("--target-precision", type=click.FloatRange(0.5, 1.0), default=0.92, show_default=True,
              help="Report the lowest threshold whose auto-coded titles reach this precision.")
@click.option("--bins", type=click.IntRange(5, 50), default=10, show_default=True,
              help="Equal-width confidence bins for the calibration error and reliability diagram.")
@click.option("--top", "top_confusions", type=click.IntRange(1, 1000), default=15, show_default=True,
              help="How many of the most frequent confusions to list.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG plots (no matplotlib needed).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON instead of a text report.")
@click.option("--quiet", is_flag=True, help="No progress messages.")
@handle_errors
def evaluate(gold_file: str, column: str, gold_column: str, industry_column: str | None,
             description_column: str | None, accept_columns: list[str], encoding: str | None, scheme: str,
             model_dir: str | None, out_dir: str | None, threshold: float | None, target_precision: float,
             bins: int, top_confusions: int, no_plots: bool, as_json: bool, quiet: bool) -> None:
    """Score the coder on GOLD.csv, a file of titles with their true codes (CSV, TSV, TXT,
    Excel, Parquet, Stata or SPSS, read as `coder code` reads them).

    Prints top-1/top-5 accuracy at unit, minor, sub-major and major group level, precision and
    coverage of auto-coding, the threshold that reaches --target-precision (with a note when
    fewer than 200 rows propose it), the calibration error and the most frequent confusions;
    saves them as JSON with a reliability diagram and a precision-coverage plot, and every row
    as predictions.csv (spreadsheet formulas escaped).
    """
    from .engine import Coder
    from .evaluate import evaluate_frame, format_report, read_gold, require_columns, write_report

    if not no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise CoderError("plots need matplotlib: `pip install 'coder[eval]'`, or pass --no-plots") from None
    data = read_gold(gold_file, encoding=encoding)
    for note in data.attrs.get("notes", []):
        echo_err(f"note: {note}")
    # Check the columns before a possibly slow model load.
    require_columns(data, gold_file, title=column, gold=gold_column, industry=industry_column,
                    description=description_column,
                    **{f"accepted codes ({i + 1})": c for i, c in enumerate(accept_columns)})
    progress = None if quiet else echo_err
    # A named model directory is used as is: building there would silently train on the
    # titles being evaluated (e.g. a held-out dev model).
    coder = Coder.load(scheme, model_dir=model_dir, threshold=threshold, build=model_dir is None,
                       progress=progress)
    if progress:
        progress(f"coding {len(data):,} rows of {gold_file}")
    report, predictions = evaluate_frame(
        coder, data, column=column, gold=gold_column, industry_column=industry_column,
        description_column=description_column, accept_columns=accept_columns, source=Path(gold_file).name, bins=bins, target_precision=target_precision,
        top_confusions=top_confusions,
    )
    out = Path(out_dir) if out_dir else Path(f"{Path(gold_file).stem}-evaluation")
    paths = write_report(report, predictions, out, plots=not no_plots)
    click.echo(json.dumps(report, indent=2) if as_json else format_report(report))
    if progress:
        progress("wrote " + ", ".join(str(p) for p in paths.values()))


COMMANDS = [evaluate]
