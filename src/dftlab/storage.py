"""Safe files: atomic writes, sha256 checks, the hash of a config, and where results are read and written.

Every file dftlab writes (checkpoints, cached study results, the pretrained model) goes through
`atomic_write_bytes` or `atomic_save_safetensors`: the data lands in a temporary file in the same
folder, is flushed to disk, and only then renamed over the target. A crash or Ctrl-C therefore
leaves either the old file or the new one, never half of one.

Where results live. The package ships the results the chapters read in `src/dftlab/assets/results`
(`shipped_results_dir()`); once installed, that folder is read only. What dftlab computes is written to
`results_dir()`: `$DFTLAB_RESULTS` if it is set, else a folder of the user's cache, `$DFTLAB_CACHE/results` if that is
set, else the user cache folder of `platformdirs` (`~/.cache/dftlab/results` on Linux), else `~/.cache/dftlab/results`.
A read looks in `results_folders()` in order: `$DFTLAB_RESULTS` alone if it is set (a folder you chose is the only
one read, so results of another folder are never mixed in), else the user folder and then the shipped one, so a
result you recomputed is read before the shipped copy.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
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


def read_result_for_config(path: str | os.PathLike, config: dict, what: str, how: str) -> dict:
    """The payload of the cached result file `path`, refused unless it was computed for `config`.

    `what` names the result ("decoding-levers results"), `how` the command that computes it, for the messages:
    a missing file is a FileNotFoundError, a file of other settings a ValueError; neither is ever read as this one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} for these settings at {path}; compute them with {how}.")
    payload = read_json_with_hash(path)
    if payload["config"] != config:
        raise ValueError(f"{path} holds {what} of other settings; recompute them with {how}.")
    return payload


def build_result_command(argv, prog: str, description: str, build) -> int:
    """The command line of a result builder: `--out FOLDER` (default: `results_dir()`), then `build(out)` runs and
    the path of the file it wrote is printed."""
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: your results folder, dftlab.storage.results_dir())")
    print(build(parser.parse_args(argv).out))
    return 0


def write_json_with_hash(path: str | os.PathLike, payload: dict) -> Path:
    """Write JSON together with the sha256 of its canonical form, atomically."""
    try:
        canonical = json.dumps(payload, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"payload must hold only JSON types (dict, list, str, int, float, bool, None): {exc}. "
                        f"Convert numpy values with float() or .tolist() first.") from exc
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return atomic_write_text(path, json.dumps({"sha256": digest, "payload": payload}, indent=1, sort_keys=True))


def config_digest(config) -> str:
    """12 hex digits of the sha256 of `config` (JSON types) written as canonical JSON (keys sorted).

    Cached results are named by it, so any change of a setting names a new file and never reads an old one."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode("utf-8")).hexdigest()[:12]


def replace_folder(staging: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Put the finished folder `staging` in the place of `target`: the old one is renamed aside first and removed
    only once the new one is in place, so `target` is never half-written (at worst, for an instant, absent)."""
    staging, target = Path(staging), Path(target)
    backup = target.with_name(target.name + ".old")
    shutil.rmtree(backup, ignore_errors=True)
    if target.exists():
        target.rename(backup)
    staging.rename(target)
    shutil.rmtree(backup, ignore_errors=True)
    return target


def shipped_results_dir() -> Path:
    """The results shipped inside the package (`src/dftlab/assets/results`): read only once installed."""
    return Path(__file__).resolve().parent / "assets" / "results"


def user_results_dir() -> Path:
    """The user's own results folder: $DFTLAB_CACHE/results, else the user cache folder (via platformdirs when it
    is installed), else ~/.cache/dftlab/results."""
    if os.environ.get("DFTLAB_CACHE"):
        return Path(os.environ["DFTLAB_CACHE"]) / "results"
    try:
        from platformdirs import user_cache_dir
    except ImportError:
        return Path.home() / ".cache" / "dftlab" / "results"
    return Path(user_cache_dir("dftlab")) / "results"


def results_dir() -> Path:
    """Where computed results are written (the study's, the chat model's sample set, ...): $DFTLAB_RESULTS, else
    `user_results_dir()`. Never the package's own folder: reads find the shipped results (`results_folders`)."""
    chosen = os.environ.get("DFTLAB_RESULTS")
    return Path(chosen) if chosen else user_results_dir()


def results_folders() -> list[Path]:
    """Where a read looks, in order: $DFTLAB_RESULTS alone if set, else the user folder, then the shipped results."""
    if os.environ.get("DFTLAB_RESULTS"):
        return [results_dir()]
    return [user_results_dir(), shipped_results_dir()]


def reading_results_dir(pattern: str = "study-*.json") -> Path:
    """The first folder of `results_folders()` that holds a file matching `pattern` (a file name or a glob
    pattern); the first folder of the list if none does (so an error message names where the file was looked for
    first)."""
    folders = results_folders()
    for folder in folders:
        if any(folder.glob(pattern)):
            return folder
    return folders[0]
