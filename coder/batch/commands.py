"""`coder code` and `coder codebook`: thin click wrappers over `coder.batch`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from ..cli_options import UserError, echo_err, handle_errors, scheme_option
from ..decisions_commands import open_store, store_option

if TYPE_CHECKING:
    from .runner import RunSummary

__all__ = ["COMMANDS", "code", "codebook", "summary_line"]

_FORMATS = ".csv, .tsv, .txt, .xlsx, .parquet, .dta or .sav"


@click.command("code")
@click.argument("input", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help=f"Coded file to write ({_FORMATS}; format from the extension).")
@click.option("--column", required=True, help="Column holding the job titles.")
@click.option("--industry-column", default=None, help="Column with the employer's industry, if any.")
@click.option("--description-column", default=None,
              help="Column with what the person mainly does in the job, if any.")
@click.option("--scheme", default="soc2000", show_default=True,
              help="Classification(s) to code to. Several, comma-separated (or 'all'), come from one "
                   "coding in the first: each further scheme adds its code, title, confidence and "
                   "status columns, derived through the matched index entries.")
@click.option("--top-k", "k", default=None, type=click.IntRange(1, 50),
              help="Show this many candidates per title in a 'candidates' column (code:confidence|..., "
                   "best first); 1 adds no column unless --candidates. [default: no candidates column]")
@click.option("--candidates", is_flag=True,
              help="Add the 'candidates' column (5 per title unless --top-k says otherwise).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=None,
              help="Confidence needed to auto-code (default: the model's calibrated threshold).")
@click.option("--missing-code", default="-9", show_default=True, help="Code written for uncodable rows.")
@click.option("--encoding", default=None,
              help="Text file encoding, used strictly. Default: a byte-order mark or UTF-16 decides, "
                   "else UTF-8 with cells that are not UTF-8 read as cp1252 (counted and reported).")
@click.option("--chunk-size", default=100_000, show_default=True, type=click.IntRange(1),
              help="Rows read, coded and written at a time.")
@click.option("--jobs", type=click.IntRange(1), default=None,
              help="Processes to code with [default: all CPUs; small inputs use one].")
@click.option("--quiet", is_flag=True, help="No progress bar or messages.")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run of the same command from its last finished chunk.")
@click.option("--codebook", type=click.Path(dir_okay=False), default=None,
              help="Also write a table of value, label, count with auto/refer shares "
                   "(.csv, .tsv, .xlsx; .txt or .md as a 'value | label | count' text table).")
@click.option("--refer", type=click.Path(dir_okay=False), default=None,
              help="Also write the rows to check clerically (status refer) with their candidates.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of built models (default: models/ in a checkout, else a user cache). "
                   "Model files are pickles: use only folders of models you built or trust.")
@click.option("--engine", type=click.Choice(["local", "dask"]), default="local", show_default=True,
              help="Code with local processes, or on a Dask cluster.")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Dask scheduler address (with --engine dask; default: a local cluster).")
@store_option
@click.option("--no-decisions", is_flag=True, help="Code with the model alone, ignoring the decision store.")
@handle_errors
def code(input: str, output: str, column: str, industry_column: str | None, description_column: str | None,
         scheme: str, k: int | None, candidates: bool, threshold: float | None, missing_code: str,
         encoding: str | None, chunk_size: int,
         jobs: int | None, quiet: bool, resume: bool, codebook: str | None, refer: str | None,
         model_dir: str | None, engine: str, scheduler: str | None, store_path: str | None,
         no_decisions: bool) -> None:
    """Code the job titles in column --column of INPUT into OUTPUT.

    Every row and column of INPUT goes to OUTPUT, in order, with the columns SCHEME,
    SCHEME_title, confidence, status (auto, refer, uncodable), method, matched_entry and
    reason added (plus candidates with --candidates or --top-k > 1). Each distinct
    (title, industry, description) is coded once.

    Uncodable rows (empty, missing, not text, too long) get the missing code and a reason.
    OUTPUT appears only when the run is complete and its row count checked; an interrupted
    run can be continued with --resume. In CSV/TSV/Excel output, text cells that a
    spreadsheet would run as a formula (starting = + - @) get a leading ' (plain numbers
    such as -9 are left alone).

    \b
    Example:
      coder code examples/job_titles.csv -o coded.csv --column job_title \\
          --industry-column industry --codebook codebook.csv --refer refer.csv
    """
    from .runner import code_file

    if scheduler and engine != "dask":
        raise UserError("--scheduler needs --engine dask")
    say = (lambda message: None) if quiet else echo_err
    summary = code_file(
        input, output, column, industry_column=industry_column, description_column=description_column,
        scheme=scheme, k=k, candidates=candidates, threshold=threshold, missing_code=missing_code,
        encoding=encoding, chunk_size=chunk_size, jobs=jobs, resume=resume, codebook=codebook, refer=refer,
        model_dir=model_dir, engine=engine, scheduler=scheduler,
        progress=not quiet and sys.stderr.isatty(), log=say,
        decisions=None if no_decisions else open_store(store_path, model_dir),
    )
    say(summary_line(summary))


def summary_line(summary: RunSummary) -> str:
    """The line `coder code` ends with: rows and the rate over coding time only, then the
    time loading (or building) the model took, then the statuses and the files written."""
    st = summary.statuses
    coding = summary.seconds if summary.coding_seconds is None else summary.coding_seconds
    resumed = f"{summary.resumed_from:,} of them before resuming; " if summary.resumed_from else ""
    model = "building and loading the model" if summary.model_built else "loading the model"
    return (
        f"coded {summary.rows:,} rows ({resumed}{summary.distinct_coded:,} distinct answers coded) in "
        f"{coding:.1f}s, {summary.rows_per_second:,.0f} rows/s, after {summary.load_seconds:.1f}s "
        f"{model}: {st.get('auto', 0):,} auto, "
        f"{st.get('refer', 0):,} refer, {st.get('uncodable', 0):,} uncodable -> {summary.output}"
        + (f"; codebook {summary.codebook}" if summary.codebook else "")
        + (f"; {summary.refer_rows:,} rows to refer in {summary.refer}" if summary.refer else "")
    )


@click.command("codebook")
@click.argument("coded_file", metavar="CODED_FILE", type=click.Path(dir_okay=False))
@scheme_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Where to write the codebook: .csv, .tsv or .xlsx (a table), .txt or .md "
                   "(text). Default: print it as text.")
@click.option("--column", default=None, help="Column holding the codes [default: the scheme's name].")
@click.option("--missing-code", default="-9", show_default=True, help="Code used for uncodable rows.")
@click.option("--encoding", default=None, help="Text file encoding (default: sniffed).")
@handle_errors
def codebook(coded_file: str, scheme: str, output: str | None, column: str | None, missing_code: str,
             encoding: str | None) -> None:
    """Count the codes in CODED_FILE as a value | label | count table.

    One row per unit group of the scheme (zeros included) and one for the missing code, with
    the auto / refer shares when the file has a status column."""
    from .codebook import codebook_format, count_codes, format_codebook, write_codebook

    if output is not None:
        codebook_format(output)
    found = count_codes(coded_file, scheme, column=column, missing_code=missing_code, encoding=encoding)
    if output is None:
        click.echo(format_codebook(found.counts, scheme, statuses=found.statuses, missing_code=missing_code),
                   nl=False)
        return
    write_codebook(output, found.counts, scheme, statuses=found.statuses, by_status=found.by_status,
                   missing_code=missing_code)
    echo_err(f"wrote {output}: {found.rows:,} rows")


COMMANDS = [code, codebook]

