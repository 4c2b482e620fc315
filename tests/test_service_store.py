"""The service over the model store: stale, corrupt and missing model folders.

Models live in content-addressed folders (``<dir>/<scheme>-<key>/``, see `coder.store`); the
registry asks the store whether a scheme's current build is there before loading it. Each
case must end in a 503 (or a one-line CLI error) that says what is wrong and names the
command that fixes it, never a 500 or a traceback.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import warnings

import pytest

pytest.importorskip("fastapi", reason="the service needs the 'serve' extra (fastapi, uvicorn)")

from click.testing import CliRunner  # noqa: E402

with warnings.catch_warnings():  # starlette may warn that it prefers httpx2
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient  # noqa: E402

from coder import Coder  # noqa: E402
from coder.cli import cli  # noqa: E402
from coder.service.app import create_app  # noqa: E402
from coder.service.registry import ModelUnavailable, Registry  # noqa: E402
from coder.store import model_files  # noqa: E402

STALE_KEY = "0" * 16  # no build has this key: a model from other data, code or libraries


def fresh(coder: Coder) -> Coder:
    return Coder(coder.model, threshold=coder.threshold)


def stale_folder(directory, scheme: str) -> None:
    """A complete-looking build of ``scheme`` under a key that is not the current one."""
    folder = directory / f"{scheme}-{STALE_KEY}"
    folder.mkdir(parents=True)
    (folder / "model.joblib").write_bytes(b"old")
    (folder / "manifest.json").write_text(json.dumps({"scheme": scheme, "key": STALE_KEY}))


def test_stale_scheme_is_not_built_and_says_why(small_coder, tmp_path):
    stale_folder(tmp_path, "soc90")
    with TestClient(create_app(fresh(small_coder), model_dir=tmp_path)) as client:
        states = {s["name"]: s for s in client.get("/schemes").json()["schemes"]}
        assert states["soc90"]["state"] == "not_built"
        assert "changed since the model was built" in states["soc90"]["detail"]
        assert states["soc2010"]["state"] == "not_built" and states["soc2010"]["detail"] == "no built model"
        r = client.get("/suggest", params={"q": "nurse", "scheme": "soc90"})
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"
        detail = r.json()["detail"]
        assert "changed since the model was built" in detail and "coder build --scheme soc90" in detail


def test_current_build_is_available_then_loaded(small_model_dir, tmp_path):
    # The current build beside a stale one: the registry finds the current one.
    shutil.copytree(model_files("soc2000", small_model_dir)[0].parent,
                    model_files("soc2000", tmp_path)[0].parent)
    stale_folder(tmp_path, "soc2000")
    registry = Registry("soc2000", model_dir=tmp_path)

    async def run():
        before = {s["name"]: s["state"] for s in await registry.describe()}
        coder = await registry.get("soc2000")
        return before, coder

    before, coder = asyncio.run(run())
    assert before["soc2000"] == "available"
    assert coder.code("nurse").candidates


def test_corrupt_model_file_is_503_naming_the_fix(small_model_dir, tmp_path):
    model, _ = model_files("soc2000", tmp_path)
    shutil.copytree(model_files("soc2000", small_model_dir)[0].parent, model.parent)
    with open(model, "r+b") as fh:  # same size, one byte changed: only the checksum can tell
        fh.seek(-1, 2)
        last = fh.read(1)
        fh.seek(-1, 2)
        fh.write(bytes([last[0] ^ 0xFF]))
    registry = Registry("soc90", model_dir=tmp_path)  # soc2000 loads on first request

    async def run():
        with pytest.raises(ModelUnavailable) as failed:
            await registry.get("soc2000")
        return failed.value, {s["name"]: s for s in await registry.describe()}

    error, states = asyncio.run(run())
    assert "checksum" in str(error) and "coder build --scheme soc2000" in str(error)
    assert states["soc2000"]["state"] == "failed" and "checksum" in states["soc2000"]["detail"]


def test_serve_with_a_stale_model_and_no_build_is_a_one_line_error(tmp_path):
    stale_folder(tmp_path, "soc2000")
    result = CliRunner().invoke(cli, ["serve", "--port", "0", "--no-build", "--model-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "changed since the model was built" in result.output
    assert "coder build --scheme soc2000" in result.output and "Traceback" not in result.output
