"""`coder serve`: run the HTTP API, the type-ahead page and the clerical page with uvicorn.

Worker processes
----------------
One process runs one engine call at a time (`coder.service.app` serialises its engine), so
it uses one core; ``--workers N`` runs N uvicorn worker processes on one port, to use N. The
parent binds the port, builds any model that is missing or stale (once), opens the
``--queue`` files into the decision store, then starts the workers and only supervises them
(uvicorn restarts one that dies; one that fails to start stops the service). Each worker is
a fresh process (uvicorn spawns them) that imports `worker_app` and loads the models itself,
without building them: each holds its own copy (about 500 MB for soc2000; see
benchmarks/results/service.md) and its own result cache, so a repeated suggestion is a cache
hit in whichever worker has seen it. Each worker listens on a socket of its own (SO_REUSEPORT),
so the kernel spreads connections evenly over them (see `_run_workers`).

Every serving process (one, or each worker) limits its numeric libraries (BLAS, OpenMP) and
its typo search (rapidfuzz) to one thread: its engine runs one call at a time, and on the
small matrices of a few titles more threads mostly spin. One process on 2 cores with 200
type-ahead clients served as many suggestions with 2 threads as with 1, at twice the CPU (3.0
against 1.5 ms each: the other core's time, which another worker or process then lacks;
benchmarks/results/service.md). Two workers whose typo search still started a thread per core
had a closed-loop p99 of 89-96 ms; at one thread each, 77-87 ms.

What the workers share lives in the decision store's SQLite file, which several processes
may use at once: decisions (each suggestion looks its answer up there, so a decision made
through one worker comes back ``learned`` from every worker at once) and the clerical
queues with their leases (a queue's state is all in the file, so two clerks served by
different workers never get the same item). One thing stays per worker until a restart: a
decision's weight as evidence for *similar* answers (the model's learned stage), which only
the worker that took the decision has; the others get it when they next start.
"""

from __future__ import annotations

import inspect
import ipaddress
import json
import logging
import os
import socket
from collections.abc import Callable

import click

from ..cli_options import UserError, echo_err, handle_errors, scheme_option
from ..decisions_commands import store_option
from ..schemes import SCHEMES, load_scheme

__all__ = ["COMMANDS", "serve", "worker_app"]

WORKER_ENV = "CODER_SERVE_WORKER"  # the parent's settings for its workers (JSON)
WORKER_START_SECONDS = 600  # how long the parent waits for a worker to load its models
_BLAS_THREADS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """Bind and listen now, so a busy port is a one-line error before any model loads.
    ``reuse_port``: with SO_REUSEPORT, so that more sockets can listen on the same port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)
    except (OSError, socket.gaierror) as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                        "choose another --port (or --host)") from None
    return sock


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _workers(ctx: click.Context, param: click.Parameter, value: str) -> int:
    text = str(value).strip().lower()
    if text == "auto":
        return _cores()
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{value!r}: give a number of processes (1 or more) or 'auto'")
    return number


def _log_setup(quiet: bool) -> None:
    logger = logging.getLogger("coder.service")
    if not quiet:
        logger.setLevel(logging.INFO)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("coder.service: %(message)s"))
        logger.addHandler(handler)


def _engine_threads(threads: int) -> None:
    """The typo search's threads (rapidfuzz's, which the BLAS settings do not reach) for a
    serving process: as many as its numeric libraries may use."""
    from ..stages import fuzzy

    fuzzy.THREADS = threads


class _WorkerHeader:
    """Names the worker process that answered (``X-Coder-Worker: <pid>``) on every response."""

    def __init__(self, app) -> None:
        self.app = app
        self.header = (b"x-coder-worker", str(os.getpid()).encode())

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def named(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.header]}
            await send(message)

        await self.app(scope, receive, named)


def worker_app():
    """The application of one worker process of ``coder serve --workers N``: uvicorn imports
    and calls this in each worker, which reads its settings from the parent
    (``$CODER_SERVE_WORKER``) and loads its models at start-up, never building them (the
    parent did). A model that does not load fails the worker's start-up, which stops the
    service."""
    from .app import create_app

    settings = json.loads(os.environ[WORKER_ENV])
    _log_setup(settings["quiet"])
    _engine_threads(settings["engine_threads"])
    app = create_app(settings["model_dir"], scheme=settings["default"], preload=settings["schemes"],
                     build=False, build_missing=settings["build_missing"], executor=settings["executor"],
                     decisions=settings["store"], warm_up=True)
    return _WorkerHeader(app)  # outside the app, so that its short way to /suggest is named too


def _run_workers(config, sockets: list[socket.socket], announce: Callable[[], None]) -> None:
    """Run ``config.workers`` uvicorn worker processes until Ctrl+C or SIGTERM; ``announce``
    once they all answer.

    Given one socket per worker (SO_REUSEPORT on one port), worker i listens on socket i, and
    the kernel spreads new connections evenly over the workers. On one shared socket, the
    worker that wakes first takes every connection waiting, and a burst of clients (each
    keeping its connection, as browsers do) can leave one worker with most of them. A
    worker restarted after a crash listens on every socket.
    """
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    try:
        from uvicorn.supervisors.multiprocess import Process
    except ImportError:  # older uvicorn: every worker on every socket
        Process = None

    class Supervisor(Multiprocess):
        def init_processes(self) -> None:
            if (Process is None or "target" in inspect.signature(Process).parameters
                    or len(self.sockets) != self.processes_num):
                super().init_processes()
            else:
                for own in self.sockets:
                    process = Process(self.config, [own])
                    process.start()
                    self.processes.append(process)
            for process in self.processes:
                ready = getattr(process, "wait_until_ready", None)
                if ready is not None and not ready(WORKER_START_SECONDS, self.should_exit):
                    return  # it failed to start (its error is in the log) or we are stopping
            announce()

    extra = {}
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn: target=Server.run
        import uvicorn

        extra["target"] = uvicorn.Server(config).run
    if not hasattr(Multiprocess, "init_processes"):
        announce()
    supervisor = Supervisor(config, sockets=sockets, **extra)
    supervisor.run()
    if any(getattr(p, "exitcode", None) == STARTUP_FAILURE for p in getattr(supervisor, "processes", ())):
        raise UserError("a worker process could not start (its error is above); the service stopped")


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
                   "(about half a minute; requests get 503 until it is ready). "
                   "Default: 503 naming `coder build`.")
@click.option("--no-build", is_flag=True,
              help="Fail, instead of building, when a model to load at start-up is missing or stale.")
@click.option("--access-log", is_flag=True,
              help="Log every request. Off by default: job titles in URLs may be personal data.")
@click.option("--workers", default="1", show_default=True, metavar="N|auto", callback=_workers,
              help="Worker processes, each coding one suggestion at a time: N suggestions are coded "
                   "at once, on N cores; 'auto': one per CPU core. Each worker holds its own copy of "
                   "the model (about 500 MB for soc2000).")
@click.option("--executor", type=click.Choice(["inline", "thread"]), default="thread", hidden=True,
              help="Where engine calls run (see coder.service.app); for benchmarks.")
@click.option("--engine-threads", type=click.IntRange(1), default=1, hidden=True,
              help="Threads each serving process's numeric libraries (BLAS, OpenMP) and typo search "
                   "(rapidfuzz) may use; for benchmarks.")
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
          no_build: bool, access_log: bool, workers: int, executor: str, engine_threads: int,
          quiet: bool, store_path: str | None,
          queue_files: tuple[str, ...], column: str | None, industry_column: str | None,
          description_column: str | None) -> None:
    """Serve the coding API (docs at /docs), a type-ahead coding page at / and the clerical
    coding page at /clerical.

    Decisions (from the pages, POST /decisions or coder learn) are kept in the decision store
    and used at once: an answer decided before comes back with method "learned".

    With --workers N, N processes share the work (and the decision store and queues); each
    answers with an X-Coder-Worker header naming it.
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
    reuse_port = workers > 1 and hasattr(socket, "SO_REUSEPORT")
    sock = _listen(host, port, reuse_port=reuse_port)
    progress = None if quiet else echo_err
    queues = QueueStore(store)
    opened = [queues.open_file(path, column=column, industry_column=industry_column,
                               description_column=description_column, default_scheme=default)
              for path in queue_files]
    schemes = list(dict.fromkeys([default, *names]))
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host

    def announce() -> None:
        if not _is_loopback(host):
            echo_err(f"warning: listening on {host}: anyone who can reach this machine can use the "
                     "service; it has no authentication")
        if not quiet:
            processes = f" with {workers} worker processes" if workers > 1 else ""
            echo_err(f"serving {', '.join(schemes)}{processes} at http://{shown}:{bound_port}/ "
                     f"(API docs at /docs); press Ctrl+C to stop")
            echo_err(f"decisions: {store.path}; clerical page at http://{shown}:{bound_port}/clerical")
            for info in opened:
                p = info.progress
                echo_err(f"queue {info.name}: {p.items:,} answers ({p.rows:,} rows), {p.open:,} open, titles "
                         f"from {info.title_column!r} at http://{shown}:{bound_port}/clerical?queue={info.id}")

    _log_setup(quiet)
    options = dict(log_level="warning" if quiet else "info", access_log=access_log, timeout_graceful_shutdown=5)
    if workers > 1:
        from .registry import check_model

        for name in schemes:  # built (once, here) and whole, before any worker loads it
            check_model(name, model_dir, build=not no_build, progress=progress)
        os.environ[WORKER_ENV] = json.dumps({
            "default": default, "schemes": schemes, "model_dir": model_dir, "build_missing": build_missing,
            "executor": executor, "store": str(store.path), "quiet": quiet, "engine_threads": engine_threads})
        for var in _BLAS_THREADS:  # read by the numeric libraries as each worker imports them
            os.environ[var] = str(engine_threads)
        config = uvicorn.Config(f"{__name__}:worker_app", factory=True, workers=workers, **options)
        sockets = [sock] + [_listen(bound_host, bound_port, reuse_port=True) for _ in range(workers - 1)
                            if reuse_port]
        _run_workers(config, sockets, announce)
        return

    coders = [Coder.load(name, model_dir=model_dir, build=not no_build, progress=progress, decisions=store)
              for name in schemes]
    app = create_app(coders, model_dir=model_dir, build_missing=build_missing,
                     executor=executor, decisions=store, warm_up=True)  # type: ignore[arg-type]
    from threadpoolctl import threadpool_limits

    threadpool_limits(engine_threads)  # the libraries the models loaded; ...
    _engine_threads(engine_threads)
    for var in _BLAS_THREADS:  # ... and any loaded later (another scheme's model)
        os.environ[var] = str(engine_threads)
    announce()
    config = uvicorn.Config(app, **options)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C after a clean shutdown: not an error here
        pass


COMMANDS = [serve]
