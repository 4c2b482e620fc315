"""The command line: a thin skin over the library.

User mistakes (`CoderError`) become one line on stderr and exit code 2, never a traceback.
Commands that live beside the code they drive (batch coding, the service, evaluation) are
listed by name in `_LAZY_COMMANDS` and their module is imported only when one of them runs or
help lists them, so `coder suggest` pays for none of them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module

import click

from . import __version__
from .cli_options import echo_err, handle_errors, scheme_option
from .decisions_commands import open_store, store_option
from .schemes import SCHEMES

__all__ = ["main", "cli"]

# Command name -> "module:attribute". Each module imports from `coder.cli_options`, never from
# here, so importing one on demand cannot cycle back.
_LAZY_COMMANDS = {
    "code": "coder.batch.commands:code",
    "codebook": "coder.batch.commands:codebook",
    "crosswalk": "coder.crosswalk_commands:crosswalk",
    "evaluate": "coder.evaluate_commands:evaluate",
    "serve": "coder.service.commands:serve",
}


class _LazyGroup(click.Group):
    """A group that imports a command's module when the command is first looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in _LAZY_COMMANDS:
            module, attribute = _LAZY_COMMANDS[cmd_name].split(":")
            command = getattr(import_module(module), attribute)
            self.add_command(command, cmd_name)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="coder")
def cli() -> None:
    """Code free-text job titles to UK SOC2000 (and SOC90, SOC2010, SOC2020, ISCO-08)."""


def _progress(quiet: bool) -> Callable[[str], None] | None:
    """Build progress: nothing when quiet; a bar (`coder.progress.StepBar`) with lines above it
    when stderr is a terminal; else plain lines (logs, pipes)."""
    if quiet:
        return None
    from .progress import build_progress

    return build_progress(echo_err, bar=sys.stderr.isatty())


@cli.command()
@click.argument("title")
@click.option("--industry", default=None, help="Employer or industry, if known.")
@click.option("--description", default=None, help='What they mainly do in the job, if known.')
@click.option("-k", "--top-k", "k", default=5, show_default=True, type=click.IntRange(1, 50),
              help="How many candidates to show.")
@scheme_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
@handle_errors
def suggest(title: str, industry: str | None, description: str | None, k: int, scheme: str, as_json: bool,
            store_path: str | None) -> None:
    """Show the top candidate codes for one TITLE (answers decided before: their decided code)."""
    from .engine import Coder

    coder = Coder.load(scheme, progress=echo_err, decisions=open_store(store_path))
    result = coder.code(title, industry, description, k=k)
    if as_json:
        import json

        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    head = (f"{title!r}" + (f"  [industry: {industry}]" if industry else "")
            + (f"  [does: {description}]" if description else ""))
    reason = f" - {result.reason}" if result.reason else ""
    click.echo(f"{head}\nstatus: {result.status}{reason}")
    if not result.candidates:
        return
    rows = [(c.code, f"{c.confidence:.3f}", c.method, c.title, c.matched_entry) for c in result.candidates]
    header = ("code", "conf", "method", f"{scheme} title", "matched index entry")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    widths[3] = min(widths[3], 48)
    for row in [header, *rows]:
        cells = [str(cell)[: widths[i]].ljust(widths[i]) for i, cell in enumerate(row)]
        click.echo("  ".join(cells).rstrip())


@cli.command()
@click.option("--scheme", "schemes", multiple=True, default=("soc2000",), show_default=True,
              help="Scheme(s) to build; repeat the option, or use 'all'.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Where to write models (default: $CODER_MODEL_DIR, else a per-user cache).")
@click.option("--quiet", is_flag=True, help="No progress messages.")
@click.option("--jobs", type=click.IntRange(min=1), default=None,
              help="Processes to build in (default: one per core); the model is the same for any number.")
@click.option("--full", is_flag=True,
              help="Cross-fit the ranker and calibration here instead of taking the shipped ones "
                   "(the same model, ~5x longer).")
@click.option("--export-rankers", type=click.Path(file_okay=False), default=None,
              help="Also write each model's ranker, thresholds and probe results here (implies --full); "
                   "the shipped ones are in coder/rankers.")
@handle_errors
def build(schemes: tuple[str, ...], model_dir: str | None, quiet: bool, jobs: int | None, full: bool,
          export_rankers: str | None) -> None:
    """(Re)build model files from the shipped data, with a manifest beside each.

    The ranker and calibration come from a full build shipped with the package when they
    match this data and code (the stages are then the only fit); --full cross-fits them."""
    import time

    from .build import default_model
    from .schemes import load_scheme
    from .store import build_lock, save_model

    names = SCHEMES if "all" in schemes else tuple(load_scheme(s).name for s in schemes)
    for name in names:
        with build_lock(name, model_dir):
            started = time.perf_counter()
            progress = _progress(quiet)
            try:
                model, provenance = default_model(name, full=full or export_rankers is not None, progress=progress,
                                                  jobs=jobs)
            finally:
                close = getattr(progress, "close", None)  # a bar: gone, whether the build ended or failed
                if close is not None:
                    close()
            path = save_model(model, model_dir, build_seconds=round(time.perf_counter() - started, 1),
                              provenance=provenance)
        cal = model.info["calibration"]
        basis = cal[cal["threshold_chosen_on"]]
        source = "shipped ranker" if provenance["ranker"] == "shipped" else "ranker cross-fitted here"
        click.echo(
            f"{name}: wrote {path.parent} in {time.perf_counter() - started:.0f}s ({source}; auto threshold "
            f"{cal['threshold']:.3f}: on out-of-fold {cal['threshold_chosen_on']} queries, top-1 {basis['top1']:.3f}, "
            f"auto {basis['auto_coverage']:.1%} at precision {basis['auto_precision'] or 0:.3f})"
        )
        if export_rankers is not None:
            from .shipped import export_ranker

            files = export_ranker(model, export_rankers)
            click.echo(f"{name}: exported {', '.join(str(f) for f in files)}")


# `learn` lives in the module `suggest` already needs (its --store option), so it costs nothing.
from .decisions_commands import learn  # noqa: E402

cli.add_command(learn)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv, prog_name="coder")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
