"""The core commands: suggest, build, --version, and one-line errors with exit code 2."""

import json

from click.testing import CliRunner

from coder import __version__
from coder.cli import cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and __version__ in result.output


def test_suggest_prints_a_table(small_model_dir, monkeypatch):
    monkeypatch.setenv("CODER_MODEL_DIR", str(small_model_dir))
    result = CliRunner().invoke(cli, ["suggest", "staff nurse", "-k", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("'staff nurse'") and lines[1].startswith("status: ")
    assert lines[2].split()[:3] == ["code", "conf", "method"]
    assert 1 <= len(lines) - 3 <= 3
    assert lines[3].split()[0].isdigit()


def test_suggest_json_and_industry(small_model_dir, monkeypatch):
    monkeypatch.setenv("CODER_MODEL_DIR", str(small_model_dir))
    result = CliRunner().invoke(cli, ["suggest", "manager", "--industry", "hotel", "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["industry"] == "hotel" and payload["status"] in {"auto", "refer"}
    assert payload["candidates"] and {"code", "confidence", "method"} <= set(payload["candidates"][0])


def test_suggest_uncodable_has_no_table(small_model_dir, monkeypatch):
    monkeypatch.setenv("CODER_MODEL_DIR", str(small_model_dir))
    result = CliRunner().invoke(cli, ["suggest", "12345"])
    assert result.exit_code == 0
    assert "uncodable - no letters in the title" in result.output


def test_bad_scheme_is_one_line_exit_2(small_model_dir, monkeypatch):
    monkeypatch.setenv("CODER_MODEL_DIR", str(small_model_dir))
    for args in (["suggest", "nurse", "--scheme", "soc1066"], ["build", "--scheme", "nope"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2
        assert "Traceback" not in result.output
        error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
        assert len(error_lines) == 1 and "soc1066" in error_lines[0] or "nope" in error_lines[0]


def test_missing_model_without_build_is_a_clear_error(tmp_path, monkeypatch):
    from coder.engine import Coder

    monkeypatch.setenv("CODER_MODEL_DIR", str(tmp_path))
    try:
        Coder.load("soc2000", build=False)
    except Exception as exc:  # noqa: BLE001 - asserting the type below
        assert type(exc).__name__ == "ModelError" and "coder build" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ModelError")


def test_build_writes_model_and_manifest(tmp_path, monkeypatch):
    import coder.build as build_module
    from coder.index import load_index
    from coder.store import model_files

    entries, _ = load_index()
    real_build = build_module.build_model

    def small_build(scheme, **kwargs):  # the real build, on a slice of the index
        return real_build(scheme, entries=entries[::9], folds=2, **kwargs)

    monkeypatch.setattr(build_module, "build_model", small_build)
    seen = []
    monkeypatch.setattr(build_module, "build_model", lambda scheme, **kw: seen.append(kw["jobs"]) or small_build(scheme, **kw))
    # --full: cross-fitted here (a plain build takes the shipped ranker, see test_shipped.py).
    result = CliRunner().invoke(cli, ["build", "--scheme", "soc90", "--model-dir", str(tmp_path), "--quiet", "--jobs", "1",
                                      "--full"])
    assert result.exit_code == 0, result.output
    assert seen == [1]
    assert CliRunner().invoke(cli, ["build", "--jobs", "0", "--model-dir", str(tmp_path)]).exit_code == 2
    path, manifest = model_files("soc90", tmp_path)
    assert path.is_file() and manifest.is_file()
    assert "soc90: wrote" in result.output and "auto threshold" in result.output
    assert "ranker cross-fitted here" in result.output
    assert json.loads(manifest.read_text())["built_from"]["ranker"] == "cross-fitted"
