"""`coder crosswalk`: convert codes, a column of codes, or a frequency table between schemes.

A thin click wrapper over `coder.crosswalk`; added to the main CLI group by `coder.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from .cli_options import UserError, echo_err, handle_errors
from .schemes import SCHEMES

__all__ = ["COMMANDS", "crosswalk"]

_SCHEMES = ", ".join(SCHEMES)


@click.command("crosswalk")
@click.argument("args", metavar="CODE... | FILE", nargs=-1)
@click.option("--from", "source", default="soc90", show_default=True, help=f"Scheme of the codes given: {_SCHEMES}.")
@click.option("--to", "target", default="soc2000", show_default=True, help=f"Scheme to convert to: {_SCHEMES}.")
@click.option("--column", default=None,
              help="Recode this column of FILE (a .csv, .tsv or .txt file) into -o OUT.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="File to write: the recoded FILE (.csv, .tsv, .txt) or the converted --codebook "
                   "(.txt/.md as value | label | count text, .csv as a CSV; without -o it is printed).")
@click.option("--codebook", "codebook_in", type=click.Path(dir_okay=False), default=None,
              help="Convert this frequency table (value | label | count text, or a CSV with value and "
                   "count columns; -9 missing) into the --to scheme's table of expected counts.")
@click.option("--decimals", type=click.IntRange(0, 6), default=2, show_default=True,
              help="Decimal places of the expected counts in the converted codebook (0: whole numbers); "
                   "rounded so they still add up to the input total.")
@click.option("--missing-code", default="-9", show_default=True,
              help="Code written for missing, invalid or unconvertible codes.")
@click.option("--encoding", default=None, help="Text file encoding (default: sniffed).")
@click.option("--json", "as_json", is_flag=True, help="With CODE...: print JSON instead of tables.")
@click.option("--quiet", is_flag=True, help="With FILE: no summary on stderr.")
@handle_errors
def crosswalk(args: tuple[str, ...], source: str, target: str, column: str | None, output: str | None,
              codebook_in: str | None, decimals: int, missing_code: str, encoding: str | None,
              as_json: bool, quiet: bool) -> None:
    """Convert codes from one classification to another, weighted by the ONS coding index.

    A code's weights are the shares of its coding-index entries that carry each target code;
    they sum to 1. Three uses:

    \b
      coder crosswalk --from soc90 --to soc2000 719 100
          the target codes of each CODE with weights, index entries and titles
      coder crosswalk --from soc90 --to soc2000 FILE --column C -o OUT
          every row and column of FILE, in order, plus TO, TO_title, TO_weight,
          TO_alternatives (code:weight|...) and TO_reason; missing (blank, -9),
          invalid and unconvertible codes get --missing-code and a reason
      coder crosswalk --codebook IN -o OUT [--from soc90 --to soc2000]
          a frequency table converted to the target's expected counts (each
          count shared out by the weights; the total is kept exactly), with
          how much moved with certainty and how much was split
    """
    from .crosswalk import Crosswalk, crosswalk_lookup, read_codebook, recode_file

    if codebook_in is not None:
        if args or column:
            raise UserError("--codebook takes no CODE, FILE or --column")
        xw = Crosswalk.from_index(source, target)
        conversion = xw.convert_codebook(read_codebook(codebook_in, encoding=encoding),
                                         decimals=decimals, missing_code=missing_code)
        if output is None:
            click.echo(conversion.format(), nl=False)
            echo_err(conversion.summary())
            return
        conversion.write(output)
        click.echo(f"{conversion.summary()} -> {output}")
        return

    if column is not None:
        if len(args) != 1:
            raise UserError(f"--column recodes one FILE; got {len(args)} arguments")
        if output is None:
            raise UserError("recoding FILE needs -o OUT")
        xw = Crosswalk.from_index(source, target)
        s = recode_file(xw, args[0], output, column=column, encoding=encoding, missing_code=missing_code)
        if not quiet:
            echo_err(f"recoded {s.rows:,} rows of {args[0]} from {xw.source} to {xw.target}: "
                     f"{s.certain:,} with certainty (weight 1), {s.split:,} split (most likely code written, "
                     f"alternatives listed), {s.missing:,} missing, {s.not_recoded:,} not {xw.source} codes "
                     f"or without a {xw.target} code -> {s.output}")
        return

    if not args:
        raise UserError("give CODE..., FILE --column C -o OUT, or --codebook IN -o OUT; see --help")
    if output is not None:
        raise UserError("-o is for FILE --column C or --codebook IN; with CODE... the weights are printed")
    result = crosswalk_lookup(source, target, args)
    # A code the source scheme lacks (or a missing value) is a mistake in the command; a real
    # unit group that the index never codes to the target is an answer, printed below.
    bad = [(arg, item["reason"]) for arg, item in zip(args, result["codes"])
           if item["reason"].startswith(("not a ", "missing "))]
    if bad:
        arg, reason = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        if Path(arg).is_file():
            raise UserError(f"{arg!r} is a file, not a {result['from']} code; to recode a column of it, "
                            "give --column C and -o OUT")
        raise UserError(f"{arg!r}: {reason}{more}; give {result['from']} unit-group codes, "
                        "or choose the scheme with --from")
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    for i, item in enumerate(result["codes"]):
        if i:
            click.echo("")
        head = f"{result['from']} {item['code']} {item['title']}".rstrip()
        if not item["targets"]:
            click.echo(f"{head}: {item['reason']}")
            continue
        click.echo(f"{head} -> {result['to']} ({item['entries']:,} index entries)")
        rows = [(t["code"], f"{t['weight']:.3f}", str(t["entries"]), t["title"]) for t in item["targets"]]
        header = ("code", "weight", "entries", f"{result['to']} title")
        widths = [max(len(r[c]) for r in [header, *rows]) for c in range(3)]
        for row in [header, *rows]:
            click.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3])


COMMANDS = [crosswalk]
