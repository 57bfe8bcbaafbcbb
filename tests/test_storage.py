import os

import pytest
import torch
from safetensors.torch import load_file

from dftlab import storage


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
