"""`coder serve`: run the HTTP API, the type-ahead page and the clerical page with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import socket

import click

from ..cli_options import UserError, echo_err, handle_errors, scheme_option
from ..decisions_commands import store_option
from ..schemes import SCHEMES, load_scheme

__all__ = ["COMMANDS", "serve"]


def _listen(host: str, port: int) -> socket.socket:
    """Bind and listen now, so a busy port is a one-line error before any model loads."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except (OSError, socket.gaierror) as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                        "choose another --port (or --host)") from None
    return sock


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but loopback exposes the service (it has no "
                   "authentication) to whoever can reach this machine.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port, printed at start-up).")
@scheme_option
@click.option("--schemes", "extra", default="", metavar="LIST",
              help="More schemes to load at start-up, comma-separated, or 'all' (each built first "
                   "if missing). Others load on their first request if built.")
@click.option("--model-dir", type=click.Path(file_okay=False), default=None,
              help="Where models are (default: models/ in a checkout, else a user cache).")
@click.option("--build-missing", is_flag=True,
              help="Build a scheme that is not built when first asked for, in the background "
                   "(minutes; requests get 503 until it is ready). Default: 503 naming `coder build`.")
@click.option("--no-build", is_flag=True,
              help="Fail, instead of building, when a model to load at start-up is missing or stale.")
@click.option("--access-log", is_flag=True,
              help="Log every request. Off by default: job titles in URLs may be personal data.")
@click.option("--executor", type=click.Choice(["inline", "thread"]), default="thread", hidden=True,
              help="Where engine calls run (see coder.service.app); for benchmarks.")
@click.option("--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@store_option
@click.option("--queue", "queue_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
              help="A referral file (coder code --refer) or coded file whose refer rows the clerical "
                   "page at /clerical serves as a queue; repeat for several. Files can also be "
                   "opened from the page.")
@click.option("--column", default=None, help="With --queue: the column of job titles [default: guessed].")
@click.option("--industry-column", default=None, help="With --queue: the industry column [default: guessed].")
@click.option("--description-column", default=None,
              help="With --queue: the column of what they mainly do [default: guessed].")
@handle_errors
def serve(host: str, port: int, scheme: str, extra: str, model_dir: str | None, build_missing: bool,
          no_build: bool, access_log: bool, executor: str, quiet: bool, store_path: str | None,
          queue_files: tuple[str, ...], column: str | None, industry_column: str | None,
          description_column: str | None) -> None:
    """Serve the coding API (docs at /docs), a type-ahead coding page at / and the clerical
    coding page at /clerical.

    Decisions (from the pages, POST /decisions or coder learn) are kept in the decision store
    and used at once: an answer decided before comes back with method "learned".
    """
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise UserError(f"the service needs FastAPI and uvicorn ({exc}); "
                        "install them with: pip install 'coder[serve]'") from None
    from ..decisions_commands import open_store
    from ..engine import Coder
    from .queue import QueueStore

    if not queue_files and (column or industry_column or description_column):
        raise UserError("--column, --industry-column and --description-column go with --queue FILE")
    store = open_store(store_path, model_dir)
    default = load_scheme(scheme).name
    names = [s.strip() for s in extra.split(",") if s.strip()]
    names = list(SCHEMES) if "all" in names else [load_scheme(s).name for s in names]
    sock = _listen(host, port)
    progress = None if quiet else echo_err
    queues = QueueStore(store)
    opened = [queues.open_file(path, column=column, industry_column=industry_column,
                               description_column=description_column, default_scheme=default)
              for path in queue_files]
    coders = [Coder.load(name, model_dir=model_dir, build=not no_build, progress=progress, decisions=store)
              for name in dict.fromkeys([default, *names])]
    app = create_app(coders, model_dir=model_dir, build_missing=build_missing,
                     executor=executor, decisions=store)  # type: ignore[arg-type]

    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not _is_loopback(host):
        echo_err(f"warning: listening on {host}: anyone who can reach this machine can use the "
                 "service; it has no authentication")
    if not quiet:
        echo_err(f"serving {', '.join(c.scheme_name for c in coders)} at http://{shown}:{bound_port}/ "
                 f"(API docs at /docs); press Ctrl+C to stop")
        echo_err(f"decisions: {store.path}; clerical page at http://{shown}:{bound_port}/clerical")
        for info in opened:
            p = info.progress
            echo_err(f"queue {info.name}: {p.items:,} answers ({p.rows:,} rows), {p.open:,} open, titles from "
                     f"{info.title_column!r} at http://{shown}:{bound_port}/clerical?queue={info.id}")
        logging.getLogger("coder.service").setLevel(logging.INFO)
    if not logging.getLogger("coder.service").handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("coder.service: %(message)s"))
        logging.getLogger("coder.service").addHandler(handler)
    config = uvicorn.Config(app, log_level="warning" if quiet else "info", access_log=access_log,
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after a clean shutdown: not an error here
        pass


COMMANDS = [serve]
