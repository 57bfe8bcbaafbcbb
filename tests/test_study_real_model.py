"""dftlab.study.real_model: the committed real-model study (SmolLM2-135M-Instruct) and its resumable runs."""

import json

import pytest

from dftlab.study import cache
from dftlab.study.config import REAL_MODEL, plan_runs, real_model_config


def test_the_committed_real_model_study_has_every_run_and_reads_like_the_tiny_one():
    from dftlab.study import load_results, load_study

    config = real_model_config()
    results = load_results(config=config)
    tuned = results[results["kind"] == "finetuned"]
    assert sorted(set(tuned["objective"])) == ["dft", "nll"]
    assert all(sorted(set(tuned.loc[tuned["objective"] == o, "seed"])) == [0, 1, 2] for o in ("nll", "dft"))
    assert (results.loc[results["kind"] != "truth", "base_model"] == REAL_MODEL).all()
    assert results.loc[results["kind"] != "truth", "kl"].notna().all()
    study = load_study(config=config)
    assert set(study["open_responses"]) == set(results.loc[results["kind"] != "truth", "run_id"])
    assert "open_responses" not in load_study()  # the tiny-model study's file is unchanged in shape


def test_the_committed_real_model_claims_file_is_what_the_claims_code_writes():
    from dftlab.study import load_study
    from dftlab.storage import reading_results_dir
    from dftlab.study.claims import claims_markdown
    from dftlab.study.results import study_table

    config = real_model_config()
    study = load_study(config=config)
    path = cache.claims_path(reading_results_dir(), config, cache.fingerprints(config))
    assert path.read_text() == claims_markdown(study_table(study), study)


@pytest.mark.slow
def test_an_interrupted_real_model_study_resumes_and_refuses_foreign_runs(tmp_path, monkeypatch):
    """The quick study, computed once; a second call computes nothing, a damaged run file is recomputed."""
    from dftlab.study import run as study_run

    config = real_model_config(quick=True)
    study_run.run_study(config, tmp_path, progress=False)
    run_files = sorted((tmp_path / "runs").glob("run-*.json"))
    assert len(run_files) == len(plan_runs(config))
    computed = []
    real = study_run._compute_and_store
    monkeypatch.setattr(study_run, "_compute_and_store", lambda c, r, p: computed.append(r.run_id) or real(c, r, p))
    study_run.run_study(config, tmp_path, progress=False)
    assert computed == []
    damaged = [p for p in run_files if "-nll-" in p.name][0]
    stored = json.loads(damaged.read_text())
    stored["payload"]["rows"][0]["kl"] = 0.0  # edited by hand: its sha256 no longer matches
    damaged.write_text(json.dumps(stored))
    study_run.run_study(config, tmp_path, progress=False)
    assert computed == [f"{REAL_MODEL}-nll-{config.steps}steps-seed0"]
