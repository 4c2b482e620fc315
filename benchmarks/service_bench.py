"""Latency of the HTTP service on loopback, with a naive baseline measured in the same run.

    python -m benchmarks.service_bench            # full run: about 8-10 minutes once the model is built
    python -m benchmarks.service_bench --quick    # fewer requests, for a smoke test
    python -m benchmarks.service_bench --typeahead-only   # only the type-ahead runs (step 4)

What it does
------------
1. Loads the full soc2000 model (``Coder.load("soc2000")``; builds it first if missing or
   stale, which takes minutes).
2. For each executor (``thread``: one dedicated engine thread, the default; ``inline``: engine
   calls on the event loop), starts ``python -m coder serve --port 0`` in a subprocess and
   drives ``GET /suggest`` with 1, 10 and 50 concurrent closed-loop clients (asyncio, one
   keep-alive connection each, through a minimal HTTP/1.1 client so that the load generator
   stays cheap), each for two mixes:

   * ``uncached``: titles the server has not seen (survey answers from
     ``benchmarks/survey_answers.csv`` with messy variants from `benchmarks.messy`: typos,
     abbreviations, case, noise), distinct after normalisation, so every request runs the
     engine; each concurrency level gets its own slice;
   * ``cached``: 100 titles sent once to warm the engine's cache, then repeated: the cost
     of the HTTP layer plus a cache hit (what a type-ahead user retyping gets).

3. Times ``POST /code`` with 1,000 unseen titles in one request.
4. Type-ahead at load: 200 clients, 15 requests each, typing random index titles (the
   natural-order titles of the codable index entries): a client types one title after
   another and sends a request at each pause (from the third character, every 1-4
   characters, and the whole title), as the type-ahead page does. Run against ``coder serve
   --workers 1`` and ``--workers 2`` (``--typeahead-workers``; ``NxT``: N workers with T
   engine threads each, ``--engine-threads``), each on a fresh server (cold
   caches), both closed-loop (each client sends its next request as soon as it has an
   answer: the worst case) and paced (a pause of 150-450 ms first: someone typing, with the
   page's 150 ms debounce). Reports latency, req/s, errors, the CPU time each server process
   used, how many requests each worker answered (``X-Coder-Worker``) and each process's
   memory. Target (the speed issue): p99 <= 100 ms and 0 errors at 200 clients.
5. In-process references on the same titles: the engine alone (``Coder.code``, no HTTP) and
   the naive baseline, ``rapidfuzz.process.extractOne`` (WRatio, default processor) over the
   natural-order titles of the codable index entries, timed per query; plus top-1 accuracy of
   both on the hand-checked survey answers (the same as the service's, which runs that engine).

Targets (issue 5): p99 <= 10 ms at 10 clients, 0 errors at 50; type-ahead at load: p99 <= 100 ms,
0 errors with 200 clients. Results go to
``benchmarks/results/service.json`` and ``service.md``. The client runs on the same machine
as the server and shares its cores; load averages before and after are recorded, because
other work on the machine moves tail latencies.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import queue
import random
import re
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import httpx

from benchmarks._common import PeakRSS, git_commit, git_state, latency_summary, load_average

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SURVEY = HERE / "survey_answers.csv"
RESULTS = HERE / "results"


# ------------------------------------------------------------------ data
def survey() -> list[dict[str, str]]:
    with SURVEY.open(encoding="utf-8", newline="") as f:
        return [r for r in csv.DictReader(f) if r["answer"].strip()]


def query_pool(rows: list[dict[str, str]], seeds: int, rng: random.Random) -> list[tuple[str, str | None]]:
    """Distinct (title, industry) pairs: the answers and messy variants, unique after normalisation."""
    from benchmarks.messy import make_messy
    from coder.normalise import normalise

    answers = [r["answer"] for r in rows]
    pairs: list[tuple[str, str | None]] = [(r["answer"], r["industry"] or None) for r in rows]
    for seed in range(seeds):
        for row, messy in zip(rows, make_messy(answers, seed=seed)):
            industry = row["industry"] or None
            pairs.append((messy, industry if seed % 3 else None))  # a third without industry
    seen, out = set(), []
    for title, industry in pairs:
        key = (normalise(title), normalise(industry or ""))
        if key[0] and key not in seen:
            seen.add(key)
            out.append((title, industry))
    rng.shuffle(out)
    return out


# ------------------------------------------------------------------ stats
def summary(seconds: list[float], errors: int = 0, wall: float | None = None) -> dict:
    out = {**latency_summary(seconds), "errors": int(errors)}
    if wall:
        out["requests_per_s"] = round(len(seconds) / wall, 1)
    return out


# ------------------------------------------------------------------ server
class Server:
    """``python -m coder serve --port 0`` in a subprocess; stderr drained in a thread."""

    def __init__(self, executor: str, startup_timeout: float, workers: int = 1, extra: tuple[str, ...] = ()) -> None:
        cmd = [sys.executable, "-m", "coder", "serve", "--port", "0", "--executor", executor]
        if workers != 1:
            cmd += ["--workers", str(workers)]
        cmd += list(extra)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()
        self.url = self._wait_for_url(startup_timeout)
        try:
            import psutil

            self._ps = psutil.Process(self.proc.pid)
            self.memory: PeakRSS | None = PeakRSS(self.proc.pid, interval=0.05).__enter__()
        except ImportError:  # psutil is optional: no CPU or memory accounting then
            self._ps = self.memory = None
        self.peak_rss: dict | None = None

    def cpu_seconds(self) -> float | None:
        """User + system CPU time the server's processes (with its workers) have used so far."""
        if self._ps is None:
            return None
        return sum(self.cpu_by_process().values())

    def processes(self) -> dict[str, object]:
        """The server's processes by role: ``main`` (the server, or with workers the parent
        supervising them) and ``worker <pid>`` (uvicorn's multiprocessing helpers left out)."""
        out: dict[str, object] = {"main": self._ps}
        for child in self._ps.children(recursive=True):
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    out[f"worker {child.pid}"] = child
            except Exception:  # it has gone
                continue
        return out

    def _by_process(self, read) -> dict[str, object]:
        """``read(process)`` for each of the server's processes still running, by role."""
        out = {}
        for role, proc in self.processes().items():
            try:
                out[role] = read(proc)
            except Exception:  # it has gone
                continue
        return out

    def cpu_by_process(self) -> dict[str, float]:
        def cpu(proc) -> float:
            times = proc.cpu_times()
            return times.user + times.system

        return self._by_process(cpu)

    def memory_by_process(self) -> dict[str, dict[str, float]]:
        """RSS, and USS and PSS (what the process alone holds, and its share of what it shares
        with others) in MB, now."""
        def memory(proc) -> dict[str, float]:
            m = proc.memory_full_info()
            return {k: round(getattr(m, k) / 2**20, 1) for k in ("rss", "uss", "pss") if hasattr(m, k)}

        return self._by_process(memory)

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                line = self.lines.get(timeout=1)
            except queue.Empty:
                continue
            self.log.append(line)
            if "building" in line:
                print(f"  server: {line.strip()}", file=sys.stderr)
            found = re.search(r"at (http://[\d.]+:\d+)/", line)
            if found:
                url = found.group(1)
                for _ in range(600):
                    try:
                        if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                            return url
                    except httpx.TransportError:
                        time.sleep(0.1)
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(self.log))

    def stop(self) -> None:
        if getattr(self, "memory", None) is not None and self.peak_rss is None:
            self.peak_rss = self.memory.report()  # before it exits: VmHWM goes with the process
            self.memory.__exit__()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# ------------------------------------------------------------------ load
def measure(server: Server, queries: list[tuple[str, str | None]], clients: int) -> dict:
    """`drive` plus the server's CPU time per request (robust to other load on the machine)."""
    before = server.cpu_seconds()
    out = asyncio.run(drive(server.url, queries, clients))
    after = server.cpu_seconds()
    if before is not None and after is not None and out["n"]:
        out["server_cpu_ms_per_request"] = round((after - before) * 1000 / out["n"], 3)
    return out


class Connection:
    """A minimal keep-alive HTTP/1.1 client for GETs: a few microseconds of client CPU per
    request, so on a small machine the load generator does not starve the server it measures
    (httpx costs about a millisecond of CPU per request)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.worker = ""  # the X-Coder-Worker of the last answer (coder serve --workers N)

    async def get(self, target: str) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(f"GET {target} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
        if length is None:
            raise RuntimeError(f"no Content-Length in {head[:200]!r}")
        body = await self.reader.readexactly(int(length.group(1)))
        worker = re.search(rb"(?i)\r\nx-coder-worker:\s*(\d+)", head)
        self.worker = worker.group(1).decode() if worker else ""
        if re.search(rb"(?i)\r\nconnection:\s*close", head):
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


async def timed_get(conn: Connection, target: str, latencies: list[float], errors: list[str]) -> bool:
    """GET ``target``, recording its latency and any error; False when no response came back."""
    t0 = time.perf_counter()
    answered = False
    try:
        status, body = await conn.get(target)
        answered = True
        detail = "" if status == 200 else f"{status} {body[:100]!r}"
    except (OSError, asyncio.IncompleteReadError, RuntimeError, ValueError) as exc:
        detail = repr(exc)
        await conn.close()
    latencies.append(time.perf_counter() - t0)
    if detail:
        errors.append(detail)
    return answered


async def drive(url: str, queries: list[tuple[str, str | None]], clients: int) -> dict:
    """``clients`` closed-loop clients, one keep-alive connection each, share ``queries``."""
    from urllib.parse import urlencode, urlsplit

    parts = urlsplit(url)
    connections = [Connection(parts.hostname or "127.0.0.1", parts.port or 80) for _ in range(clients)]
    await asyncio.gather(*(c.get("/health") for c in connections))  # connect before timing
    latencies: list[float] = []
    errors: list[str] = []
    work = iter(queries)

    async def one_client(conn: Connection) -> None:
        for title, industry in work:
            params = {"q": title} if industry is None else {"q": title, "industry": industry}
            target = "/suggest?" + urlencode(params)
            await timed_get(conn, target, latencies, errors)

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c) for c in connections))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(c.close() for c in connections))
    out = summary(latencies, len(errors), wall)
    if errors:
        out["first_errors"] = errors[:3]
    return out


# ------------------------------------------------------------------ type-ahead at load
def index_titles() -> list[str]:
    """The natural-order titles of the codable soc2000 index entries, once each."""
    from coder.index import load_index

    entries, _ = load_index()
    return sorted({e.natural for e in entries if e.code("soc2000") and len(e.natural) >= 3})


def typing_sessions(titles: list[str], clients: int, requests: int, rng: random.Random,
                    first: int = 3) -> list[list[str]]:
    """Per client, the ``requests`` prefixes it sends: it types random titles one after
    another, sending a request at each pause: from the ``first`` character on, every 1-4
    characters, and at the whole title."""
    sessions = []
    for _ in range(clients):
        sent: list[str] = []
        while len(sent) < requests:
            title = rng.choice(titles)
            n = min(first, len(title))
            while len(sent) < requests:
                sent.append(title[:n])
                if n >= len(title):
                    break
                n = min(len(title), n + rng.randint(1, 4))
        sessions.append(sent)
    return sessions


async def drive_sessions(url: str, sessions: list[list[str]], pause: tuple[float, float] | None,
                         seed: int) -> dict:
    """One client per session on its own keep-alive connection, all at once; each sends its
    prefixes in turn (after a random pause in ``pause`` seconds, if given)."""
    from collections import Counter
    from urllib.parse import urlencode, urlsplit

    parts = urlsplit(url)
    connections = [Connection(parts.hostname or "127.0.0.1", parts.port or 80) for _ in sessions]
    await asyncio.gather(*(c.get("/health") for c in connections))  # connect before timing
    latencies: list[float] = []
    errors: list[str] = []
    by_worker: Counter[str] = Counter()
    rng = random.Random(seed)
    pauses = [[rng.uniform(*pause) if pause else 0.0 for _ in s] for s in sessions]

    async def one_client(conn: Connection, prefixes: list[str], waits: list[float]) -> None:
        for prefix, wait in zip(prefixes, waits):
            if wait:
                await asyncio.sleep(wait)
            target = "/suggest?" + urlencode({"q": prefix, "k": 5})
            if await timed_get(conn, target, latencies, errors):
                by_worker[conn.worker or "main"] += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(one_client(c, s, w) for c, s, w in zip(connections, sessions, pauses)))
    wall = time.perf_counter() - t0
    await asyncio.gather(*(c.close() for c in connections))
    out = summary(latencies, len(errors), wall)
    out["wall_s"] = round(wall, 2)
    out["requests_by_worker"] = dict(sorted(by_worker.items()))
    if errors:
        out["first_errors"] = errors[:3]
    return out


def typeahead_run(sessions: list[list[str]], workers: int, engine_threads: int | None,
                  pause: tuple[float, float] | None, seed: int, startup_timeout: float) -> dict:
    """A fresh ``coder serve --workers N`` (cold caches) driven by ``sessions``."""
    extra = ("--engine-threads", str(engine_threads)) if engine_threads else ()
    server = Server("thread", startup_timeout, workers=workers, extra=extra)
    try:
        before, client = server.cpu_by_process(), time.process_time()
        out = asyncio.run(drive_sessions(server.url, sessions, pause, seed))
        after, client = server.cpu_by_process(), time.process_time() - client
        out["memory_mb"] = server.memory_by_process()
    finally:
        server.stop()
    cpu = {role: round(after[role] - before.get(role, 0.0), 2) for role in after}
    out["server_cpu_s_by_process"] = cpu
    if out["n"]:
        out["server_cpu_ms_per_request"] = round(sum(cpu.values()) * 1000 / out["n"], 3)
        out["client_cpu_ms_per_request"] = round(client * 1000 / out["n"], 3)  # the load generator's
    return out


def post_batch(url: str, items: list[tuple[str, str | None]]) -> dict:
    body = {"items": [{"title": t, "industry": i} for t, i in items]}
    t0 = time.perf_counter()
    r = httpx.post(f"{url}/code", json=body, timeout=300)
    seconds = time.perf_counter() - t0
    return {"items": len(items), "status": r.status_code, "seconds": round(seconds, 3),
            "ms_per_item": round(seconds * 1000 / len(items), 3)}


# ------------------------------------------------------------------ in-process references
def engine_latency(model, queries: list[tuple[str, str | None]]) -> dict:
    from coder import Coder

    coder = Coder(model)  # fresh cache
    times = []
    for title, industry in queries:
        t0 = time.perf_counter()
        coder.code(title, industry)
        times.append(time.perf_counter() - t0)
    cached = []
    for title, industry in queries[:100]:
        t0 = time.perf_counter()
        coder.code(title, industry)
        cached.append(time.perf_counter() - t0)
    return {"uncached": summary(times), "cached": summary(cached)}


class NaiveBaseline:
    """``extractOne`` over the natural-order titles of the codable index entries."""

    def __init__(self) -> None:
        from coder.index import load_index

        from rapidfuzz import utils

        entries, _ = load_index()
        codable = [e for e in entries if e.code("soc2000")]
        # Processed once, as benchmarks.baselines.FuzzyBaseline does; each query per call.
        self.titles = [utils.default_process(e.natural) for e in codable]
        self.codes = [e.code("soc2000") for e in codable]

    def code(self, title: str) -> str | None:
        from rapidfuzz import fuzz, process, utils

        hit = process.extractOne(utils.default_process(title), self.titles, scorer=fuzz.WRatio,
                                 processor=None)
        return self.codes[hit[2]] if hit else None


def baseline_latency(baseline: NaiveBaseline, queries: list[tuple[str, str | None]]) -> dict:
    times = []
    for title, _ in queries:
        t0 = time.perf_counter()
        baseline.code(title)
        times.append(time.perf_counter() - t0)
    return summary(times)


def accuracy(model, baseline: NaiveBaseline, rows: list[dict[str, str]]) -> dict:
    from coder import Coder

    rows = [r for r in rows if r["soc2000"]]  # answers with a code (the rest should be referred)
    gold = [r["soc2000"] for r in rows]
    results = Coder(model).code_many([r["answer"] for r in rows], [r["industry"] or None for r in rows])
    ours = sum(r.code == g for r, g in zip(results, gold))
    naive = sum(baseline.code(r["answer"]) == g for r, g in zip(rows, gold))
    n = len(rows)
    return {"answers": n, "coder_top1": round(ours / n, 3), "naive_top1": round(naive / n, 3)}


# ------------------------------------------------------------------ report
def environment() -> dict:
    versions = {}
    for lib in ("fastapi", "starlette", "uvicorn", "httpx", "pydantic", "rapidfuzz", "scikit-learn", "numpy"):
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            versions[lib] = None
    git = git_state(ROOT)
    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "commit": git["commit"] or "unknown (not a git checkout)", "dirty": git["dirty"],
            "versions": versions}


def server_stack() -> str:
    """What uvicorn's "auto" picks: httptools and uvloop when installed, else h11 and asyncio."""
    import importlib.util

    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop}"


def write_markdown(report: dict, path: Path) -> None:
    env, ref = report["environment"], report["in_process"]
    lines = [
        "# Service latency (`GET /suggest` on loopback)",
        "",
        f"Run {report['started']} with `{report['command']}`; {env['cpus']} CPUs ({env['machine']}), "
        f"Python {env['python']}, commit {env['commit']}{' (with uncommitted changes)' if env['dirty'] else ''}; "
        f"load average {report['load_before']} before, {report['load_after']} after. soc2000 model of "
        f"{report['model']['entries']} index entries (built {report['model']['built_at']}) from "
        f"{report['model']['directory']}; server: uvicorn with {report['server_stack']}. "
        "Client and server share the machine.",
        "",
        "Latency in ms per request, closed-loop clients with keep-alive.",
        "",
        "| executor | mix | clients | requests | p50 | p90 | p99 | max | req/s | server CPU ms/req | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for executor, runs in report["service"].items():
        for mix in ("uncached", "cached"):
            for clients, s in runs[mix].items():
                lines.append(f"| {executor} | {mix} | {clients} | {s['n']} | {s['p50']:.2f} | {s['p90']:.2f} | "
                             f"{s['p99']:.2f} | {s['max']:.2f} | {s['requests_per_s']:.0f} | "
                             f"{s.get('server_cpu_ms_per_request', float('nan')):.2f} | {s['errors']} |")
    lines += ["", "`POST /code`, 1,000 unseen titles in one request:", ""]
    for executor, runs in report["service"].items():
        b = runs["batch_1000"]
        lines.append(f"- {executor}: HTTP {b['status']}, {b['seconds']:.2f} s ({b['ms_per_item']:.2f} ms per title)")
    peaks = {e: r["server_peak_rss_mb"] for e, r in report["service"].items() if r.get("server_peak_rss_mb")}
    if peaks:
        lines += ["", "Server peak RSS over its run (psutil every 50 ms and the kernel's VmHWM): " +
                  ", ".join(f"{e} {mb:,.0f} MB" for e, mb in peaks.items()) + "."]
    u, c, n = ref["engine"]["uncached"], ref["engine"]["cached"], ref["naive_extractone"]
    acc = report["accuracy"]
    lines += [
        "",
        "In-process references on the same uncached titles (no HTTP), ms per query:",
        "",
        "| what | p50 | p90 | p99 |",
        "| --- | ---: | ---: | ---: |",
        f"| engine, `Coder.code`, uncached | {u['p50']:.2f} | {u['p90']:.2f} | {u['p99']:.2f} |",
        f"| engine, `Coder.code`, cached | {c['p50']:.3f} | {c['p90']:.3f} | {c['p99']:.3f} |",
        f"| naive baseline, rapidfuzz `extractOne` (WRatio) over {ref['naive_titles']:,} index titles | "
        f"{n['p50']:.2f} | {n['p90']:.2f} | {n['p99']:.2f} |",
        "",
        f"Ratios (p50): service at 1 client, uncached / naive = {report['ratios']['service_1_uncached_vs_naive']:.2f}; "
        f"engine alone / naive = {report['ratios']['engine_vs_naive']:.2f}; HTTP layer at 1 client, cached: "
        f"{report['ratios']['http_overhead_ms']:.2f} ms.",
        "",
        f"Top-1 accuracy on the {acc['answers']} hand-checked survey answers that have a code: coder {acc['coder_top1']:.1%}, "
        f"naive baseline {acc['naive_top1']:.1%}.",
        "",
        "## Targets",
        "",
    ]
    for line in report["targets"]:
        lines.append(f"- {line}")
    if report.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    if report.get("typeahead"):
        lines += [""] + typeahead_markdown(report["typeahead"])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def typeahead_markdown(t: dict) -> list[str]:
    lo, hi = t["pause_ms"]
    lines = [
        "## Type-ahead at load",
        "",
        f"Run {t['started']} with `{t['command']}`, commit {t['commit']}; load average {t['load_before']} before, "
        f"{t['load_after']} after. {t['clients']} clients at once, {t['requests']} requests each "
        f"({t['clients'] * t['requests']:,} in all), one keep-alive connection each, typing random index titles "
        f"(of {t['titles']:,}): a request at each pause, from the third character on every 1-4 characters and at "
        f"the whole title, `k=5` as the page sends. {t['distinct']:,} of the requests are distinct "
        f"({t['distinct'] / (t['clients'] * t['requests']):.0%}): the rest repeat a prefix sent before (short "
        "prefixes of common words above all), cache hits in a worker that has seen it. Each row is a fresh server "
        f"(cold caches). *closed*: each client sends its next request as soon as it has an answer; *paced*: after "
        f"a pause of {lo}-{hi} ms (typing, with the page's 150 ms debounce). Engine threads: the numeric libraries' "
        "(BLAS, OpenMP) threads per serving process (`coder serve --engine-threads`, default 1).",
        "",
        "| workers | engine threads | pacing | requests | p50 | p90 | p99 | max | req/s | errors | server CPU ms/req "
        "| CPU s by process | requests by worker | client CPU ms/req |",
        "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for name, runs in t["runs"].items():
        for pacing, r in runs["pacing"].items():
            cpu = ", ".join(f"{role} {sec:.1f}" for role, sec in r["server_cpu_s_by_process"].items())
            served = ", ".join(str(n) for n in r["requests_by_worker"].values())
            lines.append(f"| {runs['workers']} | {runs['engine_threads']} | {pacing} | {r['n']} | {r['p50']:.1f} | "
                         f"{r['p90']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['requests_per_s']:.0f} | "
                         f"{r['errors']} | {r.get('server_cpu_ms_per_request', float('nan')):.2f} | {cpu} | {served} | "
                         f"{r.get('client_cpu_ms_per_request', float('nan')):.2f} |")
    lines += ["", "Client CPU: the load generator's (one Python process on the same 2 cores). Memory of each "
                  "server process at the end of its closed-loop run, MB (RSS; USS: its own alone; PSS: its own plus "
                  "its share of what it shares with other processes, libraries above all):", ""]
    for name, runs in t["runs"].items():
        mem = next(iter(runs["pacing"].values())).get("memory_mb", {})
        lines.append(f"- {name}: " + "; ".join(
            f"{role} RSS {m.get('rss', 0):,.0f}, USS {m.get('uss', 0):,.0f}, PSS {m.get('pss', 0):,.0f}"
            for role, m in mem.items()))
    lines += ["", "Targets: p99 <= 100 ms and 0 errors with 200 clients.", ""]
    lines += [f"- {line}" for line in typeahead_targets(t)]
    if t.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in t["notes"]]
    return lines


def typeahead_targets(t: dict) -> list[str]:
    out = []
    for name, runs in t["runs"].items():
        for pacing, r in runs["pacing"].items():
            ok = r["p99"] <= 100 and r["errors"] == 0
            out.append(f"{name}, {pacing}: p99 {r['p99']:.0f} ms, {r['errors']} errors - "
                       f"{'met' if ok else 'NOT met'} (target p99 <= 100 ms, 0 errors)")
    return out


def typeahead_notes(t: dict, cpus: int) -> list[str]:
    """What the type-ahead figures say, computed from them."""
    out = []
    total = t["clients"] * t["requests"]
    for name, runs in t["runs"].items():
        closed = runs["pacing"].get("closed")
        if not closed or not closed.get("server_cpu_ms_per_request"):
            continue
        cpu = closed["server_cpu_ms_per_request"]
        # A process runs one engine call at a time: about one core per engine thread at most.
        cores = min(cpus, runs["workers"] * runs["engine_threads"])
        client = closed.get("client_cpu_ms_per_request") or 0.0
        capacity = min(1000 * cores / cpu, 1000 * cpus / (cpu + client))
        out.append(f"{name}: {cpu:.1f} ms of server CPU per request on average ({t['distinct'] / total:.0%} "
                   f"distinct requests, closed-loop), so at most ~{capacity:.0f} requests/s on {cores} "
                   f"core{'s' * (cores > 1)} of the {cpus} shared with the load generator ({client:.2f} ms "
                   f"per request); {t['clients']} closed-loop clients then wait at least "
                   f"~{t['clients'] / capacity * 1000:.0f} ms each on average (Little's law), however the work "
                   "is scheduled.")
    return out


def typeahead(args: argparse.Namespace, command: str, cpus: int) -> dict:
    """Step 4: the type-ahead runs, one fresh server each."""
    rng = random.Random(args.seed)
    titles = index_titles()
    sessions = typing_sessions(titles, args.typeahead_clients, args.typeahead_requests, rng)
    from coder.normalise import normalise

    distinct = len({normalise(p) for s in sessions for p in s})
    pause = (0.15, 0.45)
    out: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "command": command,
                 "commit": git_commit(ROOT), "load_before": load_average(), "clients": args.typeahead_clients,
                 "requests": args.typeahead_requests, "titles": len(titles), "distinct": distinct,
                 "pause_ms": [int(pause[0] * 1000), int(pause[1] * 1000)], "runs": {}}
    for spec in [x.strip() for x in args.typeahead_workers.split(",") if x.strip()]:
        workers, _, threads = spec.partition("x")
        n, t = int(workers), int(threads) if threads else None
        name = f"{n} worker{'s' if n > 1 else ''}" + (f", {t} engine thread{'s' if t > 1 else ''}" if t else "")
        runs = {"workers": n, "engine_threads": t or 1, "pacing": {}}
        for pacing in [x.strip() for x in args.typeahead_pacing.split(",") if x.strip()]:
            print(f"type-ahead: {name}, {pacing}...", file=sys.stderr)
            runs["pacing"][pacing] = typeahead_run(sessions, n, t, pause if pacing == "paced" else None,
                                                   args.seed, args.startup_timeout)
            print(f"  {runs['pacing'][pacing]}", file=sys.stderr)
        out["runs"][name] = runs
    out["load_after"] = load_average()
    out["notes"] = typeahead_notes(out, cpus)
    return out


def targets(report: dict) -> list[str]:
    out = []
    for executor, runs in report["service"].items():
        for mix in ("uncached", "cached"):
            p99 = runs[mix]["10"]["p99"]
            out.append(f"{executor}, {mix}: p99 at 10 clients {p99:.2f} ms - "
                       f"{'met' if p99 <= 10 else 'NOT met'} (target <= 10 ms)")
        errors = sum(runs[mix]["50"]["errors"] for mix in ("uncached", "cached"))
        out.append(f"{executor}: errors at 50 clients {errors} - {'met' if errors == 0 else 'NOT met'} (target 0)")
    return out


def notes(report: dict) -> list[str]:
    """What the figures say, computed from them (so a rerun keeps them true)."""
    out = []
    cpus = report["environment"]["cpus"] or 1
    busiest = max(report["load_before"][0], report["load_after"][0])
    if busiest > cpus:
        out.append(f"The machine was busy with other work (load average up to {busiest:.1f} on {cpus} CPUs): "
                   "wall-clock latencies, tails above all, are inflated; server CPU per request is the "
                   "steadier figure.")
    for executor, runs in report["service"].items():
        cpu = runs["uncached"]["1"].get("server_cpu_ms_per_request")
        loaded = runs["uncached"]["50"].get("server_cpu_ms_per_request")
        if cpu and loaded:
            out.append(f"{executor}: an uncached suggestion coded alone costs the server {cpu:.1f} ms of CPU, almost "
                       f"all of it in the engine (in-process p50 {report['in_process']['engine']['uncached']['p50']:.1f} "
                       f"ms); with 50 clients, suggestions waiting for the engine are coded together and cost "
                       f"{loaded:.1f} ms each, so one process (one engine thread) serves up to ~{1000 / loaded:.0f} "
                       "uncached requests/s; more takes more processes (`--workers`, see \"Type-ahead at load\").")
    return out


# ------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (a smoke test)")
    parser.add_argument("--executors", default="thread,inline", help="comma-separated: thread, inline")
    parser.add_argument("--out", type=Path, default=RESULTS / "service", help="path stem for .json and .md")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--note", action="append", default=[],
                        help="a line for the report's notes (e.g. which tree was measured); repeatable")
    parser.add_argument("--startup-timeout", type=float, default=1800, help="seconds to wait for a server")
    parser.add_argument("--typeahead-workers", default="1,2",
                        help="type-ahead runs, comma-separated: N workers, or NxT for N workers with T engine "
                             "threads each (coder serve --engine-threads; default 1)")
    parser.add_argument("--typeahead-clients", type=int, default=200)
    parser.add_argument("--typeahead-requests", type=int, default=15, help="requests per client")
    parser.add_argument("--typeahead-pacing", default="closed,paced", help="comma-separated: closed, paced")
    parser.add_argument("--typeahead-only", action="store_true",
                        help="only the type-ahead runs, replacing that section of an existing report at --out "
                             "(its other rows are kept as they were)")
    args = parser.parse_args(argv)
    command = " ".join(["python -m benchmarks.service_bench", *(argv if argv is not None else sys.argv[1:])])
    if args.typeahead_only:
        path = args.out.with_suffix(".json")
        if not path.is_file():
            raise SystemExit(f"--typeahead-only replaces the type-ahead section of an existing report, and there is "
                             f"none at {path}: run the full benchmark first, or point --out at a report")
        report = json.loads(path.read_text(encoding="utf-8"))
        report["typeahead"] = typeahead(args, command, report["environment"]["cpus"] or 1)
        report["targets"] = targets(report)
        path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        write_markdown(report, args.out.with_suffix(".md"))
        print("\n".join(typeahead_markdown(report["typeahead"])))
        return 0

    from coder import Coder
    from coder._paths import model_dir
    from coder.store import read_manifest

    rng = random.Random(args.seed)
    levels = (1, 10, 50)
    per_level = {1: 100, 10: 300, 50: 500} if args.quick else {1: 300, 10: 1000, 50: 1500}
    cached_repeats = {1: 200, 10: 1000, 50: 2000} if args.quick else {1: 500, 10: 3000, 50: 5000}
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_before = load_average()

    t0 = time.perf_counter()
    print("loading the full soc2000 model (builds it if missing or stale)...", file=sys.stderr)
    coder = Coder.load("soc2000", progress=lambda m: print(f"  {m}", file=sys.stderr))
    load_seconds = time.perf_counter() - t0
    manifest = read_manifest("soc2000") or {}

    rows = survey()
    pool = query_pool(rows, seeds=80, rng=rng)
    batch_size = 1000
    need = sum(per_level.values()) + 100 + batch_size
    if len(pool) < need:
        raise SystemExit(f"only {len(pool)} distinct queries; need {need}")
    slices, start = {}, 0
    for level in levels:
        slices[level] = pool[start:start + per_level[level]]
        start += per_level[level]
    hot = pool[start:start + 100]
    start += 100
    batch = pool[start:start + batch_size]

    service: dict[str, dict] = {}
    for executor in [e.strip() for e in args.executors.split(",") if e.strip()]:
        print(f"starting the server (executor={executor})...", file=sys.stderr)
        server = Server(executor, args.startup_timeout)
        try:
            runs: dict[str, dict] = {"uncached": {}, "cached": {}}
            for level in levels:
                runs["uncached"][str(level)] = measure(server, slices[level], level)
                print(f"  {executor} uncached x{level}: {runs['uncached'][str(level)]}", file=sys.stderr)
            asyncio.run(drive(server.url, hot, 1))  # warm the cache
            for level in levels:
                repeated = [hot[rng.randrange(len(hot))] for _ in range(cached_repeats[level])]
                runs["cached"][str(level)] = measure(server, repeated, level)
                print(f"  {executor} cached x{level}: {runs['cached'][str(level)]}", file=sys.stderr)
            runs["batch_1000"] = post_batch(server.url, batch)
            print(f"  {executor} POST /code x{batch_size}: {runs['batch_1000']}", file=sys.stderr)
        finally:
            server.stop()
        if server.peak_rss:
            runs["server_peak_rss_mb"] = server.peak_rss["peak_rss_mb"]
        service[executor] = runs

    print("in-process references...", file=sys.stderr)
    baseline = NaiveBaseline()
    reference_queries = slices[10][:300]
    in_process = {
        "engine": engine_latency(coder.model, reference_queries),
        "naive_extractone": baseline_latency(baseline, reference_queries),
        "naive_titles": len(baseline.titles),
        "queries": len(reference_queries),
    }
    first = next(iter(service.values()))
    typeahead_report = typeahead(args, command, os.cpu_count() or 1)
    report = {
        "started": started,
        "command": command,
        "environment": environment(),
        "load_before": load_before,
        "server_stack": server_stack(),
        "model": {"scheme": "soc2000", "built_at": manifest.get("built_at"),
                  "entries": manifest.get("info", {}).get("entries"), "directory": str(model_dir()),
                  "load_or_build_seconds": round(load_seconds, 1),
                  "calibration": manifest.get("info", {}).get("calibration")},
        "queries": {"distinct_pool": len(pool), "per_level_uncached": per_level,
                    "cached_set": len(hot), "cached_requests": cached_repeats},
        "service": service,
        "in_process": in_process,
        "accuracy": accuracy(coder.model, baseline, rows),
        "typeahead": typeahead_report,
    }
    naive_p50 = in_process["naive_extractone"]["p50"]
    report["ratios"] = {
        "service_1_uncached_vs_naive": round(first["uncached"]["1"]["p50"] / naive_p50, 3),
        "engine_vs_naive": round(in_process["engine"]["uncached"]["p50"] / naive_p50, 3),
        "http_overhead_ms": round(first["cached"]["1"]["p50"] - in_process["engine"]["cached"]["p50"], 3),
    }
    report["load_after"] = load_average()
    report["targets"] = targets(report)
    report["notes"] = args.note + notes(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    write_markdown(report, args.out.with_suffix(".md"))
    print(args.out.with_suffix(".md").read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
