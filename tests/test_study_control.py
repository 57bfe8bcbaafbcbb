"""dftlab.study.control: every rule gives a null verdict on its negative control (two samples of the truth)."""

import numpy as np
import pandas as pd
import pytest

from dftlab import study
from dftlab.study import control, rules
from dftlab.study.config import default_config, real_model_config


@pytest.mark.parametrize("config", [default_config(), default_config(quick=True), real_model_config()],
                         ids=["full", "quick", "smollm2"])
def test_every_rule_gives_the_null_verdict_on_its_control(config):
    results = study.load_results(config=config)
    judgement = study.judge(results, real_model_words=None)
    assert judgement.control is not None, f"no cached control for {config.name}: run `python -m dftlab.study claims`"
    for item in judgement.claims:
        assert item.control_verdict in rules.NULL_VERDICTS[item.number], (
            f"{config.name}, claim {item.number}: the rule gives {item.control_verdict!r} with the truth in place of "
            f"the models: {item.control_reason}")
        assert item.control_null is True


def test_the_control_would_catch_a_rule_that_finds_a_difference_between_two_truths(full):
    results, _ = full
    table = control.control_table(results, study.load_control())
    shifted = table.copy()
    arm_c = shifted["objective"] == "dft"  # truth sample c, in dft's place: make it look like a worse model
    shifted.loc[arm_c, "kl"] += np.tile([5.0, 5.5, 6.0, 5.2, 5.8], 2)
    shifted.loc[arm_c, "token_l2_1"] += np.tile([0.05, 0.055, 0.06, 0.052, 0.058], 2)
    judgement = study.judge(results, real_model_words=None, control=shifted)
    assert judgement.claims[1].control_verdict == study.VERDICTS[2] and judgement.claims[1].control_null is False


def test_the_control_table_puts_two_truth_samples_where_the_models_were(full):
    results, _ = full
    payload = study.load_control()
    table = control.control_table(results, payload)
    truth = results[results["objective"] == "truth"]
    assert set(table["objective"]) == {"truth", "nll", "dft"}
    assert set(table.loc[table["objective"] != "truth", "objective_name"]) == {"truth_control"}
    assert (table.loc[table["objective"] == "truth"].reset_index(drop=True)
            .equals(truth.reset_index(drop=True)))
    arms = pd.DataFrame(payload["rows"])
    assert sorted(set(arms["seed"])) == sorted(default_config().headline_seeds) and set(arms["arm"]) == {"b", "c"}
    assert (arms["validity"] == 1.0).all()  # true stories are valid
    assert arms["kl"].abs().max() < 1.0  # KL(q || q) = 0, estimated with sampling noise
    # three different samples per seed: the truth row and the two arms differ in their measured text metrics
    for seed, rows in arms.groupby("seed"):
        own = truth.loc[truth["seed"] == seed, "token_l2_1"].iloc[0]
        assert len({own, *rows["token_l2_1"]}) == 3
    assert payload["truth_sha256"] == control.truth_fingerprint(results)


def test_the_control_streams_are_new_samples_of_the_truth():
    from dftlab.study.measurement import run_inputs, true_completions

    config = default_config(quick=True)
    tales, _, prompts, _ = run_inputs(config, study.RunSpec("truth", 0))
    drawn = {stream: true_completions(tales, prompts, 2, seed=0, stream=stream)
             for stream in ("samples", "reference", "control_b", "control_c")}
    assert all([s["prompt"] for s in stories] == [p for p in prompts for _ in range(2)] for stories in drawn.values())
    texts = {stream: [s["completion"] for s in stories] for stream, stories in drawn.items()}
    assert len({tuple(t) for t in texts.values()}) == 4


def test_a_judgement_of_a_hand_made_table_finds_no_control():
    table = pd.DataFrame({"objective": ["truth"], "seed": [0], "validity": [1.0]})
    assert control.find_control(table) is None
