"""Model files: manifest, checksum refusal, staleness, automatic build."""

import json
import shutil

import pytest

from coder import Coder, ModelError
from coder.model import load_model, model_files, read_manifest, stale_reason


def test_manifest_records_what_built_the_model(small_model_dir):
    manifest = read_manifest("soc2000", small_model_dir)
    assert manifest["format_version"] >= 1
    assert manifest["scheme"] == "soc2000"
    assert len(manifest["fingerprint"]) == 64 and len(manifest["model_sha256"]) == 64
    for lib in ("scikit-learn", "numpy", "scipy", "rapidfuzz", "joblib"):
        assert manifest["versions"][lib]
    cal = manifest["info"]["calibration"]
    assert 0 < cal["top1"] <= 1 and 0 <= cal["threshold"] <= 1
    assert stale_reason("soc2000", small_model_dir) is None


def test_refuses_a_tampered_model_file(small_model_dir, tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(small_model_dir, directory)
    path, _ = model_files("soc2000", directory)
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    with pytest.raises(ModelError, match="checksum"):
        load_model("soc2000", directory)


def test_stale_model_is_not_used_silently(small_model_dir, tmp_path):
    directory = tmp_path / "m"
    shutil.copytree(small_model_dir, directory)
    _, manifest_path = model_files("soc2000", directory)
    manifest = json.loads(manifest_path.read_text())
    manifest["fingerprint"] = "0" * 64
    manifest_path.write_text(json.dumps(manifest))
    assert "changed" in stale_reason("soc2000", directory)
    with pytest.raises(ModelError, match="coder build"):
        Coder.load("soc2000", model_dir=directory, build=False)


def test_missing_model_without_build_says_what_to_do(tmp_path):
    assert stale_reason("soc90", tmp_path) == "no built model"
    with pytest.raises(ModelError, match="coder build --scheme soc90"):
        load_model("soc90", tmp_path, build=False)
