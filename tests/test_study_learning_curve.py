"""dftlab.study.learning_curve: SmolLM2's learning curve and the budget rule that reads it."""

import pandas as pd
import pytest

from dftlab.study import learning_curve


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
