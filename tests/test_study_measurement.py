"""dftlab.study.measurement: a run measured against a matched reference, rebuilt from plain JSON in a worker."""

import dataclasses
import json
import math

import pytest

from dftlab import study
from dftlab.study import measurement
from dftlab.tinytales import TinyTales

from conftest import tiny_config


@pytest.mark.slow
def test_the_truth_row_is_measured_against_a_matched_reference(tiny_model_folder):
    config = tiny_config(tiny_model_folder, num_prompts=3, samples_per_prompt=8)
    payload = measurement.compute_run(config, study.RunSpec("truth", 0))  # no model needed
    (row,) = payload["rows"]
    tales = measurement.tales_for(config, 0)
    prompts = [s["prompt"] for s in measurement.splits_for(config, tales)["test"][:config.num_prompts]]
    samples = study.true_completions(tales, prompts, config.samples_per_prompt, seed=0)
    reference = study.true_completions(tales, prompts, config.samples_per_prompt, seed=0, stream="reference")
    assert [s["prompt"] for s in reference] == [s["prompt"] for s in samples]  # the same prompts ...
    assert [s["completion"] for s in reference] != [s["completion"] for s in samples]  # ... other stories
    expected, _ = measurement.text_metrics(samples, [s["completion"] for s in reference], tales, config)
    for metric in ("mmd2", "mmd_p_value", "token_l2_1", "token_l2_2", "overuse_formulaic"):
        assert row[metric] == pytest.approx(expected[metric]), metric
    # against itself the truth would sit at distance 0: the row is not that
    itself, _ = measurement.text_metrics(samples, [s["completion"] for s in samples], tales, config)
    assert itself["token_l2_1"] == pytest.approx(0.0) and row["token_l2_1"] > 0
    assert 0 < row["mmd_p_value"] <= 1


def test_true_completions_follow_the_prompts():
    tales = TinyTales(0, 1.1)
    prompts = [s["prompt"] for s in tales.splits(train=1, valid=1, test=3)["test"]]
    samples = study.true_completions(tales, prompts, per_prompt=4, seed=0)
    assert [s["prompt"] for s in samples] == [p for p in prompts for _ in range(4)]
    assert all(math.isfinite(tales.log_prob(s["prompt"], s["completion"])) for s in samples)
    assert samples == study.true_completions(tales, prompts, per_prompt=4, seed=0)
    reference = study.true_completions(tales, prompts, per_prompt=4, seed=0, stream="reference")
    assert [s["prompt"] for s in reference] == [s["prompt"] for s in samples]
    assert all(math.isfinite(tales.log_prob(s["prompt"], s["completion"])) for s in reference)
    assert reference != samples and reference == study.true_completions(tales, prompts, 4, seed=0, stream="reference")
    with pytest.raises(ValueError, match="stream"):
        study.true_completions(tales, prompts, per_prompt=1, seed=0, stream="other")


@pytest.mark.slow
def test_a_worker_process_rebuilds_the_run_from_plain_json(tiny_model_folder, tmp_path):
    # --workers N ships each run to another process as JSON-able dicts; what it computes must not change.
    # (Across processes the last bits of token_l2 may differ: it sums over a set, whose order follows the hash seed.)
    from dftlab.storage import read_json_with_hash
    from dftlab.study.run import _worker

    config = tiny_config(tiny_model_folder)
    run = next(r for r in study.plan_runs(config) if r.label == "dft")
    path = tmp_path / "run.json"
    assert _worker(config.to_dict(), json.loads(json.dumps(dataclasses.asdict(run))), str(path)) == run.run_id
    from_worker = read_json_with_hash(path)
    direct = measurement.compute_run(config, run)
    assert from_worker["run"] == direct["run"] and from_worker["rows"] == direct["rows"]
