"""Weights are checked at load (issue 13): ``pytest -q tests/model/test_weights_checksums.py``.

``model/weights/*/SHA256SUMS`` lists the shipped files; ``load_pretrained`` checks every folder that has one
before it loads anything, so a corrupted file whose safetensors header is intact is an error, not a
silent load. The converted SmolLM2 cache is checked by the size and mtime stamped at conversion
(rehashed only when they change). ``doctor`` shows the full sha256 values of the card.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from biomedgpt.core.errors import CheckpointError
from biomedgpt.core.files import sha256_file
from biomedgpt.model.checkpoint import load_pretrained
from biomedgpt.model.weights import mini_weights_dir

CARD = Path(__file__).resolve().parents[2] / "model" / "cards" / "mini.md"


def _card() -> dict[str, str]:
    found = {}
    for line in CARD.read_text().splitlines():
        digest = re.search(r"\b[0-9a-f]{64}\b", line)
        name = re.search(r"model/weights/mini/([\w.\-]+)", line)
        if digest and name:
            found[name.group(1)] = digest.group(0)
    return found


def test_the_shipped_sha256sums_match_the_card_and_the_files():
    sums = {}
    for line in (mini_weights_dir() / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest
    assert sums == _card()
    for name, digest in sums.items():
        assert sha256_file(mini_weights_dir() / name) == digest


def _copy_of_mini(tmp_path: Path) -> Path:
    folder = tmp_path / "mini"
    shutil.copytree(mini_weights_dir(), folder)
    return folder


def test_a_corrupted_weights_file_is_refused_before_anything_loads(tmp_path, monkeypatch):
    folder = _copy_of_mini(tmp_path)
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1000] ^= 0xFF  # a flipped byte in the tensor data: the header still parses
    weights.write_bytes(bytes(data))

    import biomedgpt.model.checkpoint as checkpoint

    def no_lm(*args, **kwargs):
        raise AssertionError("the LM must not load before the weights are checked")

    monkeypatch.setattr(checkpoint, "load_lm", no_lm)
    with pytest.raises(CheckpointError) as caught:
        load_pretrained(folder)

    message = str(caught.value)
    assert str(weights) in message and "SHA256SUMS" in message and "does not match" in message


def test_a_file_missing_from_a_checked_folder_is_named(tmp_path, monkeypatch):
    folder = _copy_of_mini(tmp_path)
    (folder / "config.json").unlink()
    with pytest.raises(CheckpointError) as caught:
        load_pretrained(folder)
    assert "config.json" in str(caught.value)


def test_export_writes_sha256sums(tmp_path):
    from biomedgpt.model.weights import export_weights

    source = _copy_of_mini(tmp_path)
    (source / "SHA256SUMS").unlink()
    rows = export_weights(source, tmp_path / "shipped")
    lines = (tmp_path / "shipped" / "SHA256SUMS").read_text().splitlines()
    assert sorted(line.split()[1] for line in lines) == ["config.json", "model.safetensors"]
    for line in lines:
        digest, name = line.split()
        assert rows[name][1] == digest == sha256_file(tmp_path / "shipped" / name)


def _fake_conversion(folder: Path) -> Path:
    from biomedgpt.model.lm import write_conversion_stamp

    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights" * 1000)
    write_conversion_stamp(folder, {"source": "test"})
    return folder


def test_the_converted_lm_cache_is_checked_by_its_stamp(tmp_path):
    from biomedgpt.model.lm import CONVERSION_MARKER, check_conversion

    folder = _fake_conversion(tmp_path / "cache")
    stamp = json.loads((folder / CONVERSION_MARKER).read_text())
    assert stamp["files"]["model.safetensors"]["sha256"] == sha256_file(folder / "model.safetensors")
    check_conversion(folder)  # unchanged: size and mtime match, nothing is hashed

    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    check_conversion(folder)  # touched but identical: rehashed once and re-stamped

    weights.write_bytes(b"wEights" * 1000)  # same size, other bytes
    with pytest.raises(CheckpointError) as caught:
        check_conversion(folder)
    assert str(folder) in str(caught.value) and "delete" in str(caught.value)


def test_doctor_shows_full_checksums_matching_the_card(monkeypatch):
    from biomedgpt.cli import app

    monkeypatch.setenv("BIOMEDGPT_OFFLINE", "1")
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    for name, digest in _card().items():
        assert digest in result.output, name
    assert "matches SHA256SUMS" in result.output
