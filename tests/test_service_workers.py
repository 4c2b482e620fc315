"""`coder serve --workers N`: several worker processes on one port, sharing the decision store
and the clerical queues; a clean stop; a worker that cannot start stops the service."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

import httpx  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from coder.batch.runner import code_file  # noqa: E402
from coder.cli import cli  # noqa: E402
from coder.service.commands import _cores  # noqa: E402
from coder.store import model_files  # noqa: E402


class Served:
    def __init__(self, proc: subprocess.Popen, lines: queue.Queue[str]) -> None:
        self.proc, self.lines, self.seen = proc, lines, []
        self.url = ""

    def wait_for(self, pattern: str, timeout: float = 180) -> re.Match | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return None
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        return None

    def log(self) -> str:
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return "".join(self.seen)


@contextmanager
def serve(*args: str) -> Iterator[Served]:
    """``coder serve --port 0 ARGS`` in a subprocess, stopped with Ctrl+C (SIGINT) at the end."""
    cmd = [sys.executable, "-m", "coder", "serve", "--port", "0", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    served = Served(proc, lines)
    try:
        yield served
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def started(served: Served, workers: int = 2) -> str:
    found = served.wait_for(rf"with {workers} worker processes at (http://127\.0\.0\.1:\d+/)")
    assert found, "no start-up line:\n" + served.log()
    return found.group(1)


def from_each_worker(url: str, method: str, path: str, want: int = 2, **kwargs) -> dict[str, httpx.Response]:
    """One response per worker: each request on a new connection (the kernel spreads new
    connections over the workers' sockets) until ``want`` workers have answered."""
    answers: dict[str, httpx.Response] = {}
    for _ in range(200):
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.request(method, path, **kwargs)
        answers.setdefault(r.headers["x-coder-worker"], r)
        if len(answers) == want:
            return answers
    raise AssertionError(f"only workers {sorted(answers)} answered 200 new connections")


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


# ---------------------------------------------------------------------------- options
def test_workers_option():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert "--workers" in result.output and "auto" in result.output
    for bad in ("0", "-1", "two"):
        result = CliRunner().invoke(cli, ["serve", "--port", "0", "--workers", bad])
        assert result.exit_code == 2 and "--workers" in result.output and "auto" in result.output, result.output
    assert _cores() >= 1


# ---------------------------------------------------------------------------- suggestions in batches
class FakeCoder:
    """Stands in for a `Coder`: records the batches it is given; fails on "boom"."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    def code_many(self, titles, industries, descriptions, *, k):
        self.batches.append(list(titles))
        if "boom" in titles:
            raise ValueError("boom")
        return [f"{t}/{i}/{d}/{k}" for t, i, d in zip(titles, industries, descriptions)]

    def code(self, title, industry, description, *, k):
        if title == "boom":
            raise ValueError("boom")
        return f"{title}/{industry}/{description}/{k}"


@pytest.mark.parametrize("executor", ["thread", "inline"])
def test_waiting_suggestions_are_coded_together(executor):
    from coder.service.app import _Engine, _Suggestions

    fake, engine = FakeCoder(), _Engine(executor)
    suggestions = _Suggestions(engine, limit=3)

    async def run(asks):
        return await asyncio.gather(*(suggestions.code(fake, t, i, None, k) for t, i, k in asks),
                                    return_exceptions=True)

    try:
        asks = [("a", None, 5), ("b", "pub", 5), ("c", None, 3), ("d", None, 5), ("e", None, 5), ("f", None, 5)]
        assert asyncio.run(run(asks)) == [f"{t}/{i}/None/{k}" for t, i, k in asks]
        # Those waiting together are coded together, at most `limit` at a time, one k per batch.
        assert fake.batches == [["a", "b", "d"], ["c"], ["e", "f"]]
        fake.batches.clear()
        assert asyncio.run(run([("x", None, 5)])) == ["x/None/None/5"] and fake.batches == [["x"]]  # alone
        # An answer the engine fails on fails alone.
        out = asyncio.run(run([("ok", None, 5), ("boom", None, 5), ("fine", None, 5)]))
        assert out[0] == "ok/None/None/5" and out[2] == "fine/None/None/5"
        assert isinstance(out[1], ValueError)
    finally:
        engine.close()


# ---------------------------------------------------------------------------- two workers
def test_two_workers_answer_and_stop_cleanly(small_model_dir, small_coder, tmp_path):
    expected = small_coder.code("nurse")
    with serve("--workers", "2", "--no-build", "--model-dir", str(small_model_dir),
               "--store", str(tmp_path / "decisions.sqlite")) as served:
        url = started(served)
        answers = from_each_worker(url, "GET", "/suggest", params={"q": "nurse"})
        pids = [int(pid) for pid in answers]
        assert os.getpid() not in pids and served.proc.pid not in pids  # worker processes answer
        for r in answers.values():
            assert r.status_code == 200
            body = r.json()
            assert body["code"] == expected.code and body["status"] == expected.status
            assert [c["code"] for c in body["candidates"]] == [c.code for c in expected.candidates]
        for r in from_each_worker(url, "GET", "/suggest", params={"q": " "}).values():
            assert r.status_code == 422 and r.json()["error"] == "invalid_request"
        for r in from_each_worker(url, "GET", "/health").values():
            assert r.json()["loaded"] == ["soc2000"]
        served.proc.send_signal(signal.SIGINT)
        assert served.proc.wait(timeout=30) == 0, served.log()
    deadline = time.monotonic() + 10
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in pids), "a worker outlived the service"
    log = served.log()
    assert "Traceback" not in log and "GET /suggest" not in log  # no access log without --access-log


def test_a_worker_that_cannot_load_its_model_stops_the_service(small_model_dir, tmp_path):
    model, _ = model_files("soc2000", tmp_path)
    shutil.copytree(model_files("soc2000", small_model_dir)[0].parent, model.parent)
    with open(model, "r+b") as fh:  # one byte changed: built and current, but fails its checksum
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    with serve("--workers", "2", "--no-build", "--model-dir", str(tmp_path),
               "--store", str(tmp_path / "decisions.sqlite")) as served:
        assert served.proc.wait(timeout=120) == 2  # stopped, not restarting workers for ever
        log = served.log()
    assert "checksum" in log and "a worker process could not start" in log


# ---------------------------------------------------------------------------- queues and decisions
ANSWERS = pd.DataFrame({
    "id": [f"R{i:02d}" for i in range(8)],
    "job_title": ["manager", "sparky", "teacher", "manager", "engineer", "chief bottle washer", "director",
                  "assistant"],
    "industry": ["hotel", "", "", "", "", "", "small firm", ""],
})


@pytest.fixture
def referral_file(tmp_path, small_coder) -> Path:
    ANSWERS.to_csv(tmp_path / "answers.csv", index=False)
    code_file(tmp_path / "answers.csv", tmp_path / "coded.csv", "job_title", industry_column="industry",
              refer=tmp_path / "refer.csv", coder=small_coder, jobs=1)
    refer = pd.read_csv(tmp_path / "refer.csv", dtype=str, keep_default_na=False)
    assert len(refer) >= 3, "the small model should refer most of these answers"
    return tmp_path / "refer.csv"


def test_queue_and_decisions_are_shared_by_the_workers(small_model_dir, referral_file, tmp_path):
    with serve("--workers", "2", "--no-build", "--model-dir", str(small_model_dir),
               "--store", str(tmp_path / "decisions.sqlite"), "--queue", str(referral_file)) as served:
        url = started(served)
        found = served.wait_for(r"/clerical\?queue=(\w+)", timeout=10)
        assert found, served.log()
        qid = found.group(1)
        # The queue the parent opened is every worker's.
        queues = from_each_worker(url, "GET", f"/queues/{qid}")
        assert all(r.status_code == 200 for r in queues.values())
        items = next(iter(queues.values())).json()["progress"]["items"]
        assert items >= 2
        # Two clerks served by different workers never get the same answer: the lease is in the store.
        ann, bob = {"who": "ann", "session": "ann-session-1"}, {"who": "bob", "session": "bob-session-1"}
        worker_a, worker_b = from_each_worker(url, "GET", "/health")
        claimed: dict[str, dict] = {}
        for clerk, worker in ((ann, worker_a), (bob, worker_b)):
            for _ in range(200):
                with httpx.Client(base_url=url, timeout=30) as client:
                    r = client.post(f"/queues/{qid}/next", json=clerk)
                    if r.headers["x-coder-worker"] == worker:
                        break
                    client.post(f"/queues/{qid}/items/{r.json()['item']['item']}/skip", json=clerk)
            assert r.status_code == 200 and r.headers["x-coder-worker"] == worker, r.text
            claimed[clerk["who"]] = r.json()["item"]
        assert claimed["ann"]["item"] != claimed["bob"]["item"]
        # Ann decides through one worker; the other worker sees it decided, and refuses Bob.
        item = claimed["ann"]
        with httpx.Client(base_url=url, timeout=30) as client:
            r = client.post(f"/queues/{qid}/items/{item['item']}/decide", json={**ann, "code": "1221"})
        assert r.status_code == 200, r.text
        decided_by = r.headers["x-coder-worker"]
        for worker, r in from_each_worker(url, "POST", f"/queues/{qid}/items/{item['item']}/decide",
                                          json={**bob, "code": "9233"}).items():
            assert r.status_code == 409, (worker, r.text)
        for r in from_each_worker(url, "GET", f"/queues/{qid}").values():
            assert r.json()["progress"]["decided"] == 1
        # Every worker now answers that answer with the decision (each looks it up in the store).
        params = {"q": item["title"], **({"industry": item["industry"]} if item["industry"] else {})}
        answers = from_each_worker(url, "GET", "/suggest", params=params)
        assert decided_by in answers
        for worker, r in answers.items():
            first = r.json()["candidates"][0]
            assert (first["code"], first["method"]) == ("1221", "learned"), (worker, r.json())
