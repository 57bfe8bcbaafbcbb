"""The study's follow-ups (dftlab.study.followups) and SmolLM2's learning curve (dftlab.study.learning_curve):
their configs, their rules' history, the medium prior's band, and their verdicts on the committed results."""
import json

import pandas as pd
import pytest

from dftlab.models import EMBEDDED_MODELS
from dftlab.study import followups, history, learning_curve
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


def test_the_budget_rule_picks_the_first_checkpoint_that_passes():
    rows = pd.DataFrame({"step": [64, 128, 192, 256], "kl": [18.7, 9.0, 5.0, 3.4], "validity": [0, 0, 0.3, 0.6]})
    assert learning_curve.headline_budget(rows, base_kl=106.5) == 128  # 9.0 < 10.65
    assert learning_curve.headline_budget(rows, base_kl=50.0) == 256  # KL never below 5.0: validity decides
    assert learning_curve.headline_budget(rows.iloc[:2], base_kl=50.0) is None


def test_a_learning_curve_from_other_settings_is_refused(tmp_path):
    from dftlab.storage import CorruptFileError, write_json_with_hash

    config = learning_curve.curve_config(quick=True)
    with pytest.raises(FileNotFoundError, match="--learning-curve --quick"):
        learning_curve.load_learning_curve(tmp_path, quick=True)
    settings = config.to_dict()
    settings["lr"] = 1.0
    write_json_with_hash(learning_curve.curve_path(tmp_path, config), {"config": settings, "rows": [], "losses": []})
    with pytest.raises(CorruptFileError, match="other settings"):
        learning_curve.load_learning_curve(tmp_path, quick=True)


def test_the_committed_learning_curve_loads_and_names_its_budget():
    from dftlab.study import load_results, real_model_config

    curve = learning_curve.load_learning_curve()
    rows = curve["rows"]
    assert list(rows["step"]) == list(learning_curve.CURVE_CHECKPOINTS)
    assert rows["validity"].between(0, 1).all() and (rows["kl"] > 0).all()
    results = load_results(config=real_model_config())
    base_kl = float(results.loc[(results["objective"] == "base") & (results["seed"] == 0), "kl"].iloc[0])
    budget = learning_curve.headline_budget(rows, base_kl)
    assert budget is None or budget in learning_curve.CURVE_CHECKPOINTS


@pytest.mark.slow
def test_a_quick_learning_curve_runs_end_to_end(tmp_path):
    path = learning_curve.run_learning_curve(tmp_path, quick=True, log=lambda *_: None)
    curve = learning_curve.load_learning_curve(tmp_path, quick=True)
    assert path.exists() and list(curve["rows"]["step"]) == [1, 2]
    assert curve["rows"]["train_loss"].notna().all() and (curve["rows"]["kl"] > 0).all()
