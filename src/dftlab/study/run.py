"""Running the study: cached runs, resumable, optionally on several processes (`python -m dftlab.study`).

It sits above `cache` (where runs are keyed and stored), `measurement` (what one run computes), `results` and
`claims` (what the finished study writes beside its results), so that none of those reaches back up to it.
"""
from __future__ import annotations

import sys
from pathlib import Path

from dftlab.storage import atomic_write_text, results_dir, write_json_with_hash
from dftlab.study.cache import (claims_path, study_config_hash, fingerprints, read_cached_run, run_path, study_path)
from dftlab.study.claims import claims_markdown
from dftlab.study.config import (RealModelStudyConfig, RunSpec, StudyConfig, config_from_dict, default_config,
                                 plan_runs)
from dftlab.study.results import results_readme, study_table, summary_table
from dftlab.validation import check_int

def pipeline_for(config: StudyConfig):
    """The steps that differ between studies (`dftlab.study.measurement.Pipeline`): the real chat model's for a
    `RealModelStudyConfig`, the tiny models' for any other."""
    if isinstance(config, RealModelStudyConfig):
        from dftlab.study.real_model import REAL_MODEL_PIPELINE

        return REAL_MODEL_PIPELINE
    from dftlab.study.measurement import TINY_MODEL_PIPELINE

    return TINY_MODEL_PIPELINE


def _compute_and_store(config: StudyConfig, run: RunSpec, path: Path) -> dict:
    from dftlab.study import measurement

    payload = measurement.compute_run(config, run, pipeline_for(config))
    write_json_with_hash(path, payload)  # atomic: an interrupted run leaves no half-written file
    return payload


def _worker(config_dict: dict, run_dict: dict, path: str) -> str:
    """Entry point of a worker process (module level, so it can be pickled)."""
    run = RunSpec.from_dict(run_dict)
    _compute_and_store(config_from_dict(config_dict), run, Path(path))
    return run.run_id


def run_study(config: StudyConfig | None = None, out=None, *, force: bool = False, workers: int = 1,
              progress: bool | None = None):
    """Run (or resume) the study of `config` and write its results under `out`; returns the results table.

    Finished runs are read from their cache files; only the missing ones are computed, `workers` at a
    time in separate processes. `force=True` recomputes everything. Ctrl-C keeps every finished run.
    """
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
    from dftlab.study.control import ensure_control

    ensure_control(config, out, results)  # the negative control of every rule: second samples of the truth
    atomic_write_text(claims_path(out, config, model_fingerprints), claims_markdown(results, study, out))
    atomic_write_text(out / "README.md", results_readme())
    return results


def _run_in_processes(config, todo, paths, workers, bar) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools in a bad state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_worker, config.to_dict(), run.to_dict(), str(paths[run.run_id]))
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
    return {"config": config.to_dict(), "config_hash": study_config_hash(config, model_fingerprints),
            "model_sha256": {Path(m).name: f for m, f in model_fingerprints.items()}, "version": dftlab.__version__,
            "columns": list(ID_COLUMNS + METRIC_COLUMNS), "rows": rows,
            "histograms": {run_id: p["histogram"] for run_id, p in per_run.items() if p["histogram"]},
            "choice_tables": {run_id: p["choice_tables"] for run_id, p in per_run.items()},
            "histories": {run_id: p["history"] for run_id, p in per_run.items() if p["history"]},
            "previews": {run_id: p["previews"] for run_id, p in per_run.items()},
            "opener_probs": {run_id: p["opener_probs"] for run_id, p in per_run.items() if p["opener_probs"]},
            # the real-model study's answers to open prompts; the key is absent from the tiny-model study
            **({"open_responses": {run_id: p["open_responses"] for run_id, p in per_run.items()
                                   if p.get("open_responses")}}
               if any(p.get("open_responses") for p in payloads) else {}),
            "seconds": {run_id: p["seconds"] for run_id, p in per_run.items()}}


def _remove_stale(out: Path, config: StudyConfig, keep: Path) -> None:
    """Older results of the same study name (another config or model): they would only mislead."""
    for pattern in (f"study-{config.name}-*.json", f"summary-{config.name}-*.csv", f"CLAIMS-{config.name}-*.md"):
        for old in out.glob(pattern):
            if old.stem.split("-")[-1] != keep.stem.split("-")[-1]:
                old.unlink()
