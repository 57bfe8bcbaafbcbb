"""dftlab.study.followups: the follow-ups' configs, their rules' history, the medium prior's band and their verdicts."""

import json

import pandas as pd
import pytest

from dftlab.models import EMBEDDED_MODELS
from dftlab.study import followups, history
from dftlab.study.config import REPLICATION_SEEDS, default_config, plan_runs


def test_the_medium_prior_ships_verified_and_inside_its_band():
    from dftlab.storage import verify_checksums

    folder = EMBEDDED_MODELS[followups.MEDIUM_PRIOR]
    verify_checksums(folder, "rebuild it with python -m dftlab.study --build-medium-prior")
    report = json.loads((folder / "medium_prior_report.json").read_text())
    low, high = followups.MEDIUM_PRIOR_BAND
    assert report["recipe"] == followups.MEDIUM_PRIOR_RECIPE and low <= report["prob_character"] <= high


def test_the_follow_ups_run_on_seeds_and_budgets_of_their_own():
    full = default_config()
    medium = followups.medium_prior_config()
    used = set(full.seeds) | set(full.headline_seeds) | set(REPLICATION_SEEDS)
    assert not used & set(medium.headline_seeds) and len(medium.headline_seeds) >= 5
    assert followups.MEDIUM_PRIOR_RECIPE["data_seed"] not in used | set(medium.headline_seeds)
    tuned = {(r.label, r.steps, r.base_model) for r in plan_runs(medium) if r.kind == "finetuned"}
    assert tuned == {("nll", full.steps, followups.MEDIUM_PRIOR), ("dft", full.steps, followups.MEDIUM_PRIOR)}
    sweep = followups.lambda_sweep_config()
    steps = {r.steps for r in plan_runs(sweep) if r.kind == "finetuned"}
    assert steps == {followups.LAMBDA_SWEEP_STEPS} and followups.LAMBDA_SWEEP_STEPS < full.steps
    assert {o.objective for o in sweep.objectives} == {"nll", "distribution_matching"}


def test_each_follow_up_rule_was_written_before_its_own_runs():
    for key in ("medium prior", "lambda sweep at 50 steps", "real-model budget"):
        changes = history.RULE_HISTORY[key]
        assert [c.stage for c in changes] == [history.BEFORE_ITS_DATA] and history.fixed_in_advance(key)
    assert set(followups.EXPECTED_OUTCOMES) == set(followups.FOLLOWUP_CONFIGS)


def test_building_a_medium_prior_outside_its_band_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setitem(followups.MEDIUM_PRIOR_RECIPE, "steps", 2)  # 2 steps cannot teach the copy: p(character) low
    monkeypatch.setitem(followups.MEDIUM_PRIOR_RECIPE, "warmup_steps", 1)
    target = tmp_path / "medium"
    with pytest.raises(ValueError, match="outside the band"):
        followups.build_medium_prior(target, log=lambda *_: None)
    assert not target.exists() and not list(tmp_path.iterdir())


def _judged():
    from dftlab.study import load_results

    return followups.judge_followups(followups.load_followup("medium prior"),
                                     followups.load_followup("lambda sweep at 50 steps"), load_results())


def test_the_follow_ups_verdicts_follow_their_rules():
    judged = _judged()
    medium = judged["medium prior"]
    gap = medium["gap"]
    assert gap.n == len(followups.MEDIUM_PRIOR_SEEDS) and gap.adjusted_p >= gap.p_value
    expected = "Dynamic FT wins" if gap.above else "NLL wins" if gap.below else "no difference"
    assert medium["verdict"] == expected
    assert set(judged["lambda sweep at 50 steps"]) == {"distribution_matching_0.3", "distribution_matching_1",
                                                       "distribution_matching_3"}
    assert judged["family_size"] == 1 + 1 + 4 * 3  # the gap, its growth, four tests per lambda


def test_the_medium_prior_rule_can_come_out_null():
    """The control: nll's rows in the place of dft's, so the two arms are one; the rule must find no difference."""
    from dftlab.study import load_results

    medium = followups.load_followup("medium prior")
    nll = medium[medium["objective"] == "nll"].assign(objective="dft", run_id=lambda t: t["run_id"] + "-as-dft")
    twin = pd.concat([medium[medium["objective"] != "dft"], nll], ignore_index=True)
    judged = followups.judge_followups(twin, followups.load_followup("lambda sweep at 50 steps"), load_results())
    assert judged["medium prior"]["verdict"] == "no difference"


def test_unknown_follow_up_is_named():
    with pytest.raises(ValueError, match="unknown follow-up"):
        followups.load_followup("medium")
