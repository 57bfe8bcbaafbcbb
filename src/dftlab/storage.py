"""Safe files: atomic writes and sha256 checks.

Every file dftlab writes (checkpoints, cached study results, the pretrained model) goes through
`atomic_write_bytes` or `atomic_save_safetensors`: the data lands in a temporary file in the same
folder, is flushed to disk, and only then renamed over the target. A crash or Ctrl-C therefore
leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Callable


class CorruptFileError(RuntimeError):
    """A file on disk does not match the sha256 recorded for it."""


def sha256_of_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """Call `write(tmp_path)` to fill a temporary file, then rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp_name)
        with open(tmp_name, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException:  # includes KeyboardInterrupt: never leave the temporary file behind
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}; encode text with text.encode('utf-8') "
                        f"or call atomic_write_text.")

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save_safetensors(tensors: dict, path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """Save a state dict as safetensors, atomically."""
    from safetensors.torch import save_file

    # clone: tied weights (GPT-2's embedding and LM head) share memory, which safetensors refuses to save
    tensors = {name: t.detach().cpu().clone().contiguous() for name, t in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def write_checksums(folder: str | os.PathLike, names: list[str]) -> Path:
    """Write SHA256SUMS (in `sha256sum` format) for the named files of `folder`."""
    folder = Path(folder)
    lines = [f"{sha256_of_file(folder / name)}  {name}" for name in sorted(names)]
    return atomic_write_text(folder / "SHA256SUMS", "\n".join(lines) + "\n")


def verify_checksums(folder: str | os.PathLike, restore_hint: str) -> None:
    """Raise CorruptFileError naming the first file of `folder` whose sha256 differs from SHA256SUMS."""
    folder = Path(folder)
    sums = folder / "SHA256SUMS"
    if not sums.exists():
        raise CorruptFileError(f"{sums} is missing, so the files in {folder} cannot be verified. {restore_hint}")
    for line in sums.read_text().splitlines():
        expected, name = line.split(maxsplit=1)
        path = folder / name
        if not path.exists():
            raise CorruptFileError(f"{path} is missing. {restore_hint}")
        actual = sha256_of_file(path)
        if actual != expected:
            raise CorruptFileError(
                f"{path} is corrupted or truncated (sha256 {actual[:12]}..., expected {expected[:12]}...). {restore_hint}"
            )


def read_json_with_hash(path: str | os.PathLike) -> dict:
    """Read a JSON file written by `write_json_with_hash`; raise CorruptFileError if it was damaged."""
    raw = Path(path).read_bytes()
    try:
        wrapper = json.loads(raw)
        payload, recorded = wrapper["payload"], wrapper["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise CorruptFileError(f"{path} is not a valid dftlab cache file ({exc}); delete it to recompute.") from exc
    actual = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    if actual != recorded:
        raise CorruptFileError(f"{path} does not match its recorded sha256; delete it to recompute.")
    return payload


def write_json_with_hash(path: str | os.PathLike, payload: dict) -> Path:
    """Write JSON together with the sha256 of its canonical form, atomically."""
    try:
        canonical = json.dumps(payload, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload must hold only JSON types (dict, list, str, int, float, bool, None): {exc}. "
                        f"Convert numpy values with float() or .tolist() first.") from exc
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return atomic_write_text(path, json.dumps({"sha256": digest, "payload": payload}, indent=1, sort_keys=True))


def results_dir() -> Path:
    """Where cached results live (the study's, and the chat model's sample set): $DFTLAB_RESULTS, else the `results`
    folder shipped inside the package (`src/dftlab/assets/results`)."""
    return Path(os.environ.get("DFTLAB_RESULTS", Path(__file__).resolve().parent / "assets" / "results"))
