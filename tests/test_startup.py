"""Start-up cost of the command line: what `import coder.cli` and `coder suggest` import, the
group listing commands it has not imported, and the remembered model checksum (a load does
not hash the whole model file again, yet an altered or truncated file is still refused)."""

import json
import os
import pickle
import shutil
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from coder import ModelError
from coder import store
from coder.cli import cli
from coder.store import load_model, model_files

COMMANDS = ("build", "code", "codebook", "crosswalk", "evaluate", "learn", "serve", "suggest")
# Imported by no command until it runs (the service stack, data frames, the model's libraries).
HEAVY = ("pandas", "numpy", "scipy", "sklearn", "joblib", "fastapi", "starlette", "uvicorn", "pydantic",
         "coder.engine", "coder.build", "coder.batch", "coder.service", "coder.evaluate", "coder.crosswalk")
# Never needed to suggest codes for one title: a model file holds no sklearn objects, and
# sklearn and pandas alone cost 1.2 s and 150 MB to import.
NOT_FOR_SUGGEST = ("fastapi", "starlette", "uvicorn", "pydantic", "coder.service", "coder.batch",
                   "coder.evaluate", "coder.crosswalk", "coder.crosswalk_commands", "coder.evaluate_commands",
                   "sklearn", "pandas", "joblib", "threadpoolctl", "coder.build")


def _imported_after(code: str, env: dict | None = None) -> set[str]:
    """Top-level names of the modules in sys.modules after running ``code`` in a fresh interpreter."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return set(json.loads(out.stdout.splitlines()[-1]))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return [n for n in names if any(m == n or m.startswith(n + ".") for m in modules)]


def test_importing_the_cli_imports_no_heavy_module():
    modules = _imported_after("import coder.cli")
    assert "coder.cli" in modules
    assert _loaded(modules, HEAVY) == []


def test_help_lists_every_command_with_its_short_help_without_importing_them():
    modules = _imported_after("from coder.cli import cli\ncli.main(['--help'], standalone_mode=False)")
    assert _loaded(modules, ("pandas", "numpy", "sklearn", "fastapi", "coder.engine")) == []
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1].splitlines()
    rows = {line.split()[0]: line.split(None, 1)[1:] for line in listed if line.strip()}
    assert sorted(rows) == sorted(COMMANDS)
    assert all(help_text and help_text[0].strip() for help_text in rows.values()), rows


@pytest.mark.parametrize("name", [c for c in COMMANDS if c != "learn"])
def test_each_command_resolves_and_shows_its_own_help(name):
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert f" {name} [OPTIONS]" in result.output


def test_a_mistyped_command_is_still_a_usage_error():
    result = CliRunner().invoke(cli, ["sugest", "nurse"])
    assert result.exit_code == 2 and "No such command" in result.output


def test_suggest_imports_neither_the_service_nor_the_batch_modules_nor_sklearn(small_model_dir, tmp_path):
    code = ("from coder.cli import cli\n"
            "cli.main(['suggest', 'staff nurse', '--json'], standalone_mode=False)")
    modules = _imported_after(code, {"CODER_MODEL_DIR": str(small_model_dir),
                                     "CODER_STORE": str(tmp_path / "decisions.sqlite")})
    assert "coder.engine" in modules  # it did code the title
    assert _loaded(modules, NOT_FOR_SUGGEST) == []


# ------------------------------------------------------------------ model checksum, remembered
@pytest.fixture
def model_copy(small_model_dir, tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(small_model_dir, directory)
    for marker in directory.glob("*/" + store._VERIFIED):
        marker.unlink()
    path, _ = model_files("soc2000", directory)
    return directory, path


def _remember_at_once(monkeypatch):
    """Remember a checksum even for a file changed just now (a fresh copy)."""
    monkeypatch.setattr(store, "_SETTLE_NS", 0)


@pytest.fixture
def verified_copy(model_copy, monkeypatch):
    """A model copy loaded once, its checksum remembered: (directory, model file)."""
    directory, _ = model_copy
    _remember_at_once(monkeypatch)
    load_model("soc2000", directory, build=False)
    return model_copy


def test_model_file_is_a_plain_pickle_that_joblib_reads_too(model_copy):
    import joblib  # benchmarks/devsets.py loads stale dev models with joblib.load

    _, path = model_copy
    with open(path, "rb") as fh:
        model = pickle.load(fh)
    assert model.scheme == "soc2000"
    assert joblib.load(path).scheme == "soc2000"


def test_a_verified_model_loads_again_without_hashing_it(verified_copy, monkeypatch):
    directory, path = verified_copy
    assert (path.parent / store._VERIFIED).is_file()

    def no_hashing(_path):
        raise AssertionError("hashed the model file again")

    monkeypatch.setattr(store, "_sha256", no_hashing)
    assert load_model("soc2000", directory, build=False).scheme == "soc2000"


def test_a_just_written_model_is_checked_but_not_remembered(model_copy):
    directory, path = model_copy  # copied a moment ago: its ctime is within the settle time
    load_model("soc2000", directory, build=False)
    assert not (path.parent / store._VERIFIED).exists()


def test_an_altered_model_is_refused_even_with_its_size_and_mtime_put_back(verified_copy):
    directory, path = verified_copy
    assert (path.parent / store._VERIFIED).is_file()
    time.sleep(0.05)  # past the file system's clock tick
    before = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(before.st_size // 2)
        byte = fh.read(1)
        fh.seek(before.st_size // 2)
        fh.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    with pytest.raises(ModelError, match="checksum"):
        load_model("soc2000", directory, build=False)


def test_a_truncated_model_is_refused_after_a_verified_load(verified_copy):
    directory, path = verified_copy
    with open(path, "r+b") as fh:
        fh.truncate(path.stat().st_size - 10)
    with pytest.raises(ModelError, match="checksum"):
        load_model("soc2000", directory, build=False)


def test_a_forged_marker_does_not_make_an_altered_model_load(verified_copy):
    directory, path = verified_copy
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    marker = path.parent / store._VERIFIED
    recorded = json.loads(marker.read_text())
    marker.write_text(json.dumps({**recorded, "model_sha256": "0" * 64}))  # not the manifest's
    with pytest.raises(ModelError, match="checksum"):
        load_model("soc2000", directory, build=False)


def test_the_data_hash_is_remembered_and_an_edit_is_seen(tmp_path, monkeypatch):
    data, models = tmp_path / "data", tmp_path / "models"
    data.mkdir()
    models.mkdir()
    (data / "a.csv").write_text("code,title\n1,one\n")
    (data / "b.txt").write_text("two\n")
    monkeypatch.setattr(store, "data_dir", lambda: data)
    monkeypatch.setattr(store, "model_dir", lambda: models)
    _remember_at_once(monkeypatch)
    compute = store.data_sha256.__wrapped__  # without the per-process cache
    first = compute()
    assert (models / store._DATA_HASHES).is_file()
    assert compute() == first
    time.sleep(0.05)
    before = (data / "a.csv").stat()
    (data / "a.csv").write_text("code,title\n2,one\n")  # same size
    os.utime(data / "a.csv", ns=(before.st_atime_ns, before.st_mtime_ns))
    assert compute() != first
