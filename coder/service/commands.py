"""`coder serve`: run the HTTP API and the type-ahead page with uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import socket

import click

from ..cli_options import UserError, echo_err, handle_errors, scheme_option
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
@handle_errors
def serve(host: str, port: int, scheme: str, extra: str, model_dir: str | None, build_missing: bool,
          no_build: bool, access_log: bool, executor: str, quiet: bool) -> None:
    """Serve the coding API (docs at /docs) and a type-ahead coding page at /."""
    try:
        import uvicorn

        from .app import create_app
    except ImportError as exc:
        raise UserError(f"the service needs FastAPI and uvicorn ({exc}); "
                        "install them with: pip install 'coder[serve]'") from None
    from ..engine import Coder

    default = load_scheme(scheme).name
    names = [s.strip() for s in extra.split(",") if s.strip()]
    names = list(SCHEMES) if "all" in names else [load_scheme(s).name for s in names]
    sock = _listen(host, port)
    progress = None if quiet else echo_err
    coders = [Coder.load(name, model_dir=model_dir, build=not no_build, progress=progress)
              for name in dict.fromkeys([default, *names])]
    app = create_app(coders, model_dir=model_dir, build_missing=build_missing, executor=executor)  # type: ignore[arg-type]

    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    if not _is_loopback(host):
        echo_err(f"warning: listening on {host}: anyone who can reach this machine can use the "
                 "service; it has no authentication")
    if not quiet:
        echo_err(f"serving {', '.join(c.scheme_name for c in coders)} at http://{shown}:{bound_port}/ "
                 f"(API docs at /docs); press Ctrl+C to stop")
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
