"""Where the study's files live, how they are keyed, and how a run is computed once and cached.

Each run is written to `<results>/runs/run-<run id>-<hash>.json` as soon as it finishes, keyed by a hash
of everything that shapes it (its base model's weights included), so an interrupted study resumes and a
changed setting recomputes exactly the runs it touches. The assembled study goes to
`<results>/study-<name>-<hash>.json`. Every file carries a sha256 (`dftlab.storage`): a damaged one is
detected and recomputed, never read; one from another config or model is refused.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict, replace
from pathlib import Path

from dftlab.storage import CorruptFileError, read_json_with_hash
from dftlab.study.config import RunSpec, StudyConfig, default_config, plan_runs
from dftlab.validation import check_int

RESULTS_HINT = "Set DFTLAB_RESULTS to a folder that holds them, or recompute them with `python -m dftlab.study`"


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(model: str) -> str:
    """sha256 of the model's weights and tokenizer, so that a retrained model invalidates every cached result.

    The files decide, not the name: runs computed from a folder are reused once the same files are
    installed as the embedded model.
    """
    from dftlab.models import EMBEDDED_MODELS
    from dftlab.storage import sha256_of_file

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
    run_fields = {k: v for k, v in json.loads(json.dumps(asdict(run))).items() if k != "base_model"}
    key = {"shared": shared, "run": run_fields, "model_sha256": fingerprint}
    return _sha256_text(json.dumps(key, sort_keys=True))[:12]


def config_hash(config: StudyConfig, model_fingerprints: dict) -> str:
    """12 hex digits of the sha256 of the config and its base models' files (their names or paths do not count)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("model", "weak_model")}
    key = {"config": settings, "model_sha256": [model_fingerprints[m] for m in config.base_models]}
    return _sha256_text(json.dumps(key, sort_keys=True))[:12]


def results_dir() -> Path:
    """Where results live: $DFTLAB_RESULTS, else the `results` folder shipped inside the package."""
    return Path(os.environ.get("DFTLAB_RESULTS", Path(__file__).resolve().parents[1] / "assets" / "results"))


def study_path(out, config: StudyConfig, model_fingerprints: dict) -> Path:
    return Path(out) / f"study-{config.name}-{config_hash(config, model_fingerprints)}.json"


def run_path(out, config: StudyConfig, run: RunSpec, model_fingerprints: dict) -> Path:
    fingerprint = model_fingerprints.get(run.base_model) if run.base_model else None
    return Path(out) / "runs" / f"run-{run.run_id}-{run_hash(config, run, fingerprint)}.json"


def claims_path(out, config: StudyConfig, model_fingerprints: dict) -> Path:
    """CLAIMS.md for the default full study; a name of its own for any other config."""
    out = Path(out)
    for quick, name in ((False, "CLAIMS.md"), (True, "CLAIMS-quick.md")):
        default = default_config(quick)
        if replace(config, model=default.model, weak_model=default.weak_model) == default:
            return out / name
    return out / f"CLAIMS-{config.name}-{config_hash(config, model_fingerprints)}.md"


def recompute_command(config: StudyConfig) -> str:
    return "python -m dftlab.study" + (" --quick" if config.name == "quick" else "")


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

    if identity(payload.get("run") or {}) != identity(json.loads(json.dumps(asdict(run)))):
        return None
    return {**payload, "run": json.loads(json.dumps(asdict(run)))}


def read_study(config: StudyConfig, out=None) -> dict:
    """The assembled study of `config`, refusing a file from another config or model with a clear message."""
    out = results_dir() if out is None else Path(out)
    try:
        model_fingerprints = fingerprints(config)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{error} The study's results are keyed by the base models' files.") from None
    path = study_path(out, config, model_fingerprints)
    command = recompute_command(config)
    if not path.exists():
        others = sorted(p.name for p in out.glob(f"study-{config.name}-*.json"))
        hint = (f" Found {others} there: results for another configuration or other base models, which are "
                f"refused (their fingerprint differs)." if others else "")
        raise FileNotFoundError(f"No cached study results at {path} (looked in {out}).{hint} {RESULTS_HINT} "
                                f"(`{command}`; the full study takes about 45 minutes on 2 cores, --quick 3).")
    try:
        study = read_json_with_hash(path)
    except CorruptFileError as error:
        raise CorruptFileError(f"{error} Rerun `{command}` to rebuild it from the cached runs.") from error
    if study.get("config_hash") != config_hash(config, model_fingerprints):
        raise CorruptFileError(f"{path} holds results of another configuration (config hash "
                               f"{study.get('config_hash')!r}); rerun `{command}` to recompute it.")
    return study


# ---------------------------------------------------------------------------------------------
# Running the study: cached runs, resumable, optionally on several processes.
# ---------------------------------------------------------------------------------------------

def _compute_and_store(config: StudyConfig, run: RunSpec, path: Path) -> dict:
    from dftlab.storage import write_json_with_hash
    from dftlab.study.measurement import compute_run

    payload = compute_run(config, run)
    write_json_with_hash(path, payload)  # atomic: an interrupted run leaves no half-written file
    return payload


def _worker(config_dict: dict, run_dict: dict, path: str) -> str:
    """Entry point of a worker process (module level, so it can be pickled)."""
    run = RunSpec.from_dict(run_dict)
    _compute_and_store(StudyConfig(**config_dict), run, Path(path))
    return run.run_id


def run_study(config: StudyConfig | None = None, out=None, *, force: bool = False, workers: int = 1,
              progress: bool | None = None):
    """Run (or resume) the study of `config` and write its results under `out`; returns the results table.

    Finished runs are read from their cache files; only the missing ones are computed, `workers` at a
    time in separate processes. `force=True` recomputes everything. Ctrl-C keeps every finished run.
    """
    from dftlab.storage import atomic_write_text, write_json_with_hash
    from dftlab.study.claims import claims_markdown
    from dftlab.study.results import results_readme, study_table, summary_table
    from dftlab.train import progress_enabled

    config = default_config() if config is None else config
    out = results_dir() if out is None else Path(out)
    check_int(workers, "workers", hint="The number of processes running runs side by side.")
    model_fingerprints = fingerprints(config)
    runs = plan_runs(config)
    paths = {run.run_id: run_path(out, config, run, model_fingerprints) for run in runs}
    todo = [run for run in runs if force or read_cached_run(paths[run.run_id], run) is None]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc=f"study ({config.name})", unit="run",
               disable=not progress_enabled(progress))
    try:
        if workers == 1 or len(todo) <= 1:
            for run in todo:
                bar.set_postfix_str(run.run_id)
                _compute_and_store(config, run, paths[run.run_id])
                bar.update(1)
        else:
            _run_in_processes(config, todo, paths, workers, bar)
    except KeyboardInterrupt:
        print(f"\ndftlab.study: interrupted. Finished runs are cached in {out / 'runs'}; rerun the same command "
              f"to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
    payloads = [read_cached_run(paths[run.run_id], run) for run in runs]
    missing = [run.run_id for run, payload in zip(runs, payloads) if payload is None]
    if missing:
        raise RuntimeError(f"dftlab.study: runs {missing} did not leave a readable cache file; rerun to retry them.")
    study = _assemble(config, model_fingerprints, payloads)
    path = study_path(out, config, model_fingerprints)
    write_json_with_hash(path, study)
    _remove_stale(out, config, path)
    results = study_table(study)
    atomic_write_text(path.with_name(path.stem.replace("study-", "summary-") + ".csv"),
                      summary_table(results).to_csv(index=False, float_format="%.6g"))
    atomic_write_text(claims_path(out, config, model_fingerprints), claims_markdown(results, study))
    atomic_write_text(out / "README.md", results_readme())
    return results


def _run_in_processes(config, todo, paths, workers, bar) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools in a bad state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_worker, config.to_dict(), json.loads(json.dumps(asdict(run))), str(paths[run.run_id]))
                   for run in todo]
        try:
            for future in as_completed(futures):
                bar.set_postfix_str(future.result())
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _assemble(config: StudyConfig, model_fingerprints: dict, payloads: list[dict]) -> dict:
    import dftlab
    from dftlab.study.measurement import ID_COLUMNS, METRIC_COLUMNS

    rows = [row for payload in payloads for row in payload["rows"]]
    per_run = {payload["rows"][0]["run_id"]: payload for payload in payloads}
    return {"config": config.to_dict(), "config_hash": config_hash(config, model_fingerprints),
            "model_sha256": {Path(m).name: f for m, f in model_fingerprints.items()}, "version": dftlab.__version__,
            "columns": list(ID_COLUMNS + METRIC_COLUMNS), "rows": rows,
            "histograms": {run_id: p["histogram"] for run_id, p in per_run.items() if p["histogram"]},
            "choice_tables": {run_id: p["choice_tables"] for run_id, p in per_run.items()},
            "histories": {run_id: p["history"] for run_id, p in per_run.items() if p["history"]},
            "previews": {run_id: p["previews"] for run_id, p in per_run.items()},
            "opener_probs": {run_id: p["opener_probs"] for run_id, p in per_run.items() if p["opener_probs"]},
            "seconds": {run_id: p["seconds"] for run_id, p in per_run.items()}}


def _remove_stale(out: Path, config: StudyConfig, keep: Path) -> None:
    """Older results of the same study name (another config or model): they would only mislead."""
    for pattern in (f"study-{config.name}-*.json", f"summary-{config.name}-*.csv", f"CLAIMS-{config.name}-*.md"):
        for old in out.glob(pattern):
            if old.stem.split("-")[-1] != keep.stem.split("-")[-1]:
                old.unlink()
