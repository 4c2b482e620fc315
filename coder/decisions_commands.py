"""`coder learn`: teach the coder a team's decisions, and look after the decision store."""

from __future__ import annotations

import os
from pathlib import Path

import click

from .cli_options import UserError, echo_err, handle_errors, scheme_option

__all__ = ["COMMANDS", "learn", "store_option", "open_store"]

store_option = click.option(
    "--store", "store_path", type=click.Path(dir_okay=False), default=None, envvar="CODER_STORE",
    show_envvar=True,
    help="The decision store (SQLite) [default: decisions.sqlite next to the model folder].")


def open_store(store_path: str | os.PathLike | None, model_dir: str | os.PathLike | None = None):
    """The `DecisionStore` at ``store_path``, else the default one (beside ``model_dir``)."""
    from .decisions import DecisionStore, default_store_path

    path = Path(store_path) if store_path else default_store_path(model_dir)
    if path.is_dir():
        raise UserError(f"--store {path} is a folder; give the store's file name (e.g. {path / 'decisions.sqlite'})")
    return DecisionStore(path)


def _answer(title: str, industry: str | None, description: str | None) -> str:
    return repr(title) + "".join(f" [{label}: {value}]" for label, value in
                                 (("industry", industry), ("does", description)) if value)


@click.command("learn")
@click.argument("file", metavar="[FILE]", required=False, type=click.Path(dir_okay=False))
@click.option("--column", default=None, help="Column holding the job titles (with FILE).")
@click.option("--code-column", default=None, help="Column holding the codes the team gave (with FILE).")
@click.option("--industry-column", default=None, help="Column with the employer's industry, if any.")
@click.option("--description-column", default=None,
              help="Column with what the person mainly does in the job, if any.")
@scheme_option
@store_option
@click.option("--who", default=None, help="Whose decisions these are [default: your user name].")
@click.option("--encoding", default=None, help="Text file encoding (default: sniffed, as `coder code` does).")
@click.option("--again", is_flag=True, help="Import FILE even if this very file was imported before.")
@click.option("--list", "list_", is_flag=True, help="List the stored decisions of --scheme, oldest first.")
@click.option("--conflicts", is_flag=True, help="List the answers coders gave different codes.")
@click.option("--limit", type=click.IntRange(1), default=None, help="With --list: only the newest N.")
@click.option("--forget", "forget", type=int, multiple=True, metavar="ID",
              help="Remove the decision with this id (see --list); repeat for several.")
@click.option("--export", "export", type=click.Path(dir_okay=False), default=None, metavar="OUT.csv",
              help="Write every decision of --scheme to a CSV file.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Folder of built models; the default store is next to it.")
@handle_errors
def learn(file: str | None, column: str | None, code_column: str | None, industry_column: str | None,
          description_column: str | None, scheme: str, store_path: str | None, who: str | None,
          encoding: str | None, again: bool, list_: bool, conflicts: bool, limit: int | None,
          forget: tuple[int, ...], export: str | None, model_dir: str | None) -> None:
    """Learn a team's coded answers from FILE, or list, forget and export decisions.

    FILE holds answers a team coded (read as `coder code` reads its input: .csv, .tsv, .txt,
    .xlsx, .parquet, .dta or .sav).
    Each row with a title and a unit-group code becomes a decision in the store; from then
    on `coder code`, `coder suggest`, the API and the clerical page give an answer seen
    before its decided code (method "learned") and weigh the decisions for similar answers.
    Answers given different codes are all kept: the majority decides, and without a
    majority the answer is referred. The shipped index is never changed.

    \b
    Examples:
      coder learn coded_by_team.csv --column job_title --code-column soc2000 \\
          --industry-column industry --description-column what_they_do
      coder learn --list
      coder learn --forget 12
      coder learn --export decisions.csv
    """
    from .schemes import load_scheme

    scheme = load_scheme(scheme).name
    actions = [name for name, on in (("FILE", file is not None), ("--list", list_), ("--conflicts", conflicts),
                                     ("--forget", bool(forget)), ("--export", export is not None)) if on]
    if not actions:
        raise UserError("give a FILE of coded answers to learn, or --list, --conflicts, --forget ID or "
                        "--export OUT.csv (see coder learn --help)")
    if len(actions) > 1:
        raise UserError(f"{actions[0]} and {actions[1]} cannot be used together; do one at a time")
    if file is None and (column or code_column or industry_column or description_column):
        raise UserError("--column, --code-column, --industry-column and --description-column go with a FILE to learn")
    if limit is not None and not list_:
        raise UserError("--limit goes with --list")
    store = open_store(store_path, model_dir)

    if file is not None:
        if not column or not code_column:
            raise UserError("name the columns: --column (the job titles) and --code-column (the codes)")
        if not Path(file).is_file():
            raise UserError(f"{file}: no such file")
        report = store.import_file(file, column, code_column, industry_column=industry_column,
                                   description_column=description_column, scheme=scheme,
                                   who=who if who is not None else _user(), encoding=encoding, again=again)
        for line in report.lines():
            click.echo(line)
        click.echo(f"store: {store.path}")
        return

    if list_:
        decisions = store.list(scheme, limit=limit, newest_first=limit is not None)
        if limit is not None:
            decisions.reverse()
        if not decisions:
            click.echo(f"no {scheme} decisions in {store.path}")
            return
        rows = [(str(d.id), d.when, d.who or "-", d.source, d.code, _answer(d.title, d.industry, d.description))
                for d in decisions]
        header = ("id", "when (UTC)", "who", "source", scheme, "answer")
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
        for row in [header, *rows]:
            click.echo("  ".join([c.ljust(w) for c, w in zip(row, widths)] + [row[-1]]))
        total = store.count(scheme)
        shown = f"{len(decisions):,} of {total:,}" if len(decisions) != total else f"{total:,}"
        echo_err(f"{shown} {scheme} decisions in {store.path}")
        return

    if conflicts:
        found = store.conflicts(scheme)
        if not found:
            click.echo(f"no conflicting {scheme} decisions in {store.path}")
            return
        for conflict in found:
            click.echo(conflict.describe())
        echo_err(f"{len(found):,} answers with conflicting decisions "
                 f"({sum(c.majority is None for c in found):,} with no majority)")
        return

    if forget:
        missing = []
        for decision_id in forget:
            gone = store.forget(decision_id)
            if not gone:
                missing.append(decision_id)
                continue
            d = gone[0]
            click.echo(f"forgot decision {d.id}: {_answer(d.title, d.industry, d.description)} -> "
                       f"{d.scheme} {d.code} ({d.source}, {d.who or 'unknown'}, {d.when})")
        if missing:
            raise UserError(f"no decision with id {', '.join(map(str, missing))} in {store.path} "
                            "(coder learn --list shows the ids)")
        return

    assert export is not None
    rows = store.export(export, scheme)
    click.echo(f"wrote {rows:,} {scheme} decisions to {export}")


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (ImportError, KeyError, OSError):
        return ""


COMMANDS = [learn]
