"""`coder serve`: options, one-line errors, and a real server in a subprocess."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("uvicorn", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

import httpx  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from coder.cli import cli  # noqa: E402
from coder.service.commands import _is_loopback  # noqa: E402


def test_serve_is_registered_with_its_options():
    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--scheme", "--schemes", "--model-dir", "--build-missing",
                   "--no-build", "--access-log"):
        assert option in result.output
    assert "127.0.0.1" in result.output


def test_busy_port_is_a_one_line_error(small_model_dir):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(cli, ["serve", "--port", str(port), "--model-dir", str(small_model_dir)])
    assert result.exit_code == 2
    assert "cannot listen on 127.0.0.1" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("args", [["--scheme", "soc1066"], ["--schemes", "soc2000,nope"]])
def test_unknown_scheme_is_a_one_line_error(args):
    result = CliRunner().invoke(cli, ["serve", "--port", "0", *args])
    assert result.exit_code == 2 and "unknown classification scheme" in result.output


def test_missing_model_with_no_build_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--no-build", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "coder build --scheme soc2000" in result.output


def test_loopback_detection():
    assert _is_loopback("127.0.0.1") and _is_loopback("::1") and _is_loopback("localhost")
    assert not _is_loopback("0.0.0.0") and not _is_loopback("192.168.1.10")


def test_serve_runs_a_real_server(small_model_dir):
    cmd = [sys.executable, "-m", "coder", "serve", "--port", "0", "--no-build",
           "--model-dir", str(small_model_dir)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        url, seen, deadline = None, [], time.monotonic() + 120
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            found = re.search(r"at (http://127\.0\.0\.1:\d+/)", line)
            url = found.group(1) if found else None
        assert url, "no start-up line:\n" + "".join(seen)
        with httpx.Client(base_url=url, timeout=10) as client:
            for _ in range(100):
                try:
                    health = client.get("/health")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            assert health.json()["loaded"] == ["soc2000"]
            assert client.get("/suggest", params={"q": "nurse"}).json()["candidates"]
            assert client.get("/suggest", params={"q": ""}).status_code == 422
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            assert proc.wait(timeout=20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    time.sleep(0.2)
    while not lines.empty():
        seen.append(lines.get())
    assert "GET /suggest" not in "".join(seen), "requests must not be logged without --access-log"


def test_a_worker_limits_its_typo_search_threads_with_its_numeric_libraries(small_model_dir, tmp_path, monkeypatch):
    """rapidfuzz's threads are not the BLAS settings' to limit: each serving process sets them
    to its engine threads, or two workers on two cores each start a thread per core."""
    import json

    from coder.service import commands
    from coder.stages import fuzzy

    monkeypatch.setattr(fuzzy, "THREADS", None)
    monkeypatch.setenv(commands.WORKER_ENV, json.dumps({
        "default": "soc2000", "schemes": ["soc2000"], "model_dir": str(small_model_dir), "build_missing": False,
        "executor": "thread", "store": str(tmp_path / "decisions.sqlite"), "quiet": True, "engine_threads": 1}))
    app = commands.worker_app()
    assert fuzzy.THREADS == 1
    assert app.app.short_suggest is not None  # the worker header wraps the app itself
