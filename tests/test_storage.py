"""dftlab.storage: atomic writes, checksums, hashed JSON and the results folders."""

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import dftlab
from dftlab import storage, study


def test_atomic_write_leaves_no_partial_file_on_crash(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def crash(tmp):
        with open(tmp, "wb") as f:
            f.write(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        storage.atomic_write(target, crash)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["out.bin"]


def test_atomic_safetensors_roundtrip(tmp_path):
    tensors = {"w": torch.arange(6.0).view(2, 3)}
    storage.atomic_save_safetensors(tensors, tmp_path / "m.safetensors")
    assert torch.equal(load_file(tmp_path / "m.safetensors")["w"], tensors["w"])


def test_checksums_detect_a_changed_file(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    storage.write_checksums(tmp_path, ["a.txt"])
    storage.verify_checksums(tmp_path, "restore it")
    (tmp_path / "a.txt").write_text("hellO")
    with pytest.raises(storage.CorruptFileError, match="a.txt.*restore it"):
        storage.verify_checksums(tmp_path, "restore it")


def test_hashed_json_detects_truncation_and_edits(tmp_path):
    path = tmp_path / "c.json"
    storage.write_json_with_hash(path, {"x": [1, 2, 3]})
    assert storage.read_json_with_hash(path) == {"x": [1, 2, 3]}
    text = path.read_text()
    path.write_text(text.replace("3", "4"))
    with pytest.raises(storage.CorruptFileError):
        storage.read_json_with_hash(path)
    path.write_text(text[: len(text) // 2])
    with pytest.raises(storage.CorruptFileError):
        storage.read_json_with_hash(path)


def test_results_are_written_to_the_user_folder_and_read_from_it_then_the_shipped_one(monkeypatch, tmp_path):
    from dftlab import storage

    shipped = Path(dftlab.__file__).resolve().parent / "assets" / "results"
    monkeypatch.delenv("DFTLAB_RESULTS", raising=False)
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path / "cache"))
    assert study.results_dir() == tmp_path / "cache" / "results"  # writes never go into the package
    assert storage.results_folders() == [tmp_path / "cache" / "results", shipped]
    assert storage.reading_results_dir("study-full-*.json") == shipped  # nothing recomputed yet: the shipped one
    (tmp_path / "cache" / "results").mkdir(parents=True)
    (tmp_path / "cache" / "results" / "study-full-0.json").write_text("{}")
    assert storage.reading_results_dir("study-full-*.json") == tmp_path / "cache" / "results"  # yours first
    monkeypatch.setenv("DFTLAB_RESULTS", str(tmp_path / "mine"))
    assert study.results_dir() == tmp_path / "mine" and storage.results_folders() == [tmp_path / "mine"]
