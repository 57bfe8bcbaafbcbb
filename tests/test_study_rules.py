"""dftlab.study.rules: each test enters the Holm family once, intervals stay in range, and claim one's rules."""

import pandas as pd
import pytest

from dftlab import study
from dftlab.study import rules

from conftest import _table


def test_each_test_enters_the_holm_family_once(full):
    results, judgement = full
    decisions = rules.decide(results, None)
    comparisons = [c for d in [*decisions.claims.values(), decisions.regime, *decisions.reconstruction.values()]
                   for c in d.decisive.values()]
    keys = [c.key for c in comparisons]
    assert all(keys) and decisions.family_size == len(set(keys)) == len(keys) - 1  # one test decides two claims
    kl_2, kl_3 = decisions.claims[2].decisive["kl"], decisions.claims[3].decisive["kl"]
    assert kl_2.key == kl_3.key and kl_2.adjusted_p == kl_3.adjusted_p
    assert judgement.shared_tests == [("kl: dft vs nll", ["claim 2", "claim 3"])]
    assert judgement.family_size == decisions.family_size
    # the adjustment by hand: the shared test counted twice would raise every other adjusted p-value
    unique = {c.key: c.p_value for c in comparisons}
    assert sorted(set(c.adjusted_p for c in comparisons)) == sorted(set(study.holm(list(unique.values()))))


def test_two_copies_of_one_test_are_one_test():
    first = study.compare(_table([0.9, 0.8, 1.0, 0.85, 0.95], [0.2, 0.3, 0.1, 0.25, 0.2]), "m", "a", "b")
    copy = study.compare(_table([0.9, 0.8, 1.0, 0.85, 0.95], [0.2, 0.3, 0.1, 0.25, 0.2]), "m", "a", "b")
    other = study.Comparison("x", "a", "b", "T=1", 0, 0, 0, 0, 0, 5, p_value=0.04, key=("x",))
    assert rules.adjust([rules.Decision({"one": first}), rules.Decision({"two": copy, "x": other})]) == 2
    assert first.adjusted_p == copy.adjusted_p == pytest.approx(2 * first.p_value)


def test_every_bounded_interval_of_the_judgement_stays_inside_its_range(full):
    results, _ = full
    decisions = rules.decide(results, None)
    comparisons = [c for d in [*decisions.claims.values(), decisions.regime, *decisions.reconstruction.values()]
                   for c in [*d.decisive.values(), *d.context] if isinstance(c, study.Comparison)]
    wilson = [c for c in comparisons if c.interval == "wilson"]
    assert {c.raw_metric for c in wilson} == set(study.BOUNDED_SHARES)
    for c in wilson:
        assert 0.0 <= c.a_low <= c.mean_a <= c.a_high <= 1.0, c.text()
        assert -1.0 <= c.low <= c.difference <= c.high <= 1.0, c.text()
    assert all(c.interval == "t" for c in comparisons if c.raw_metric not in study.BOUNDED_SHARES)


def _claim_1_table(nll_t1, nll_t07, dft_t1, seeds=(0, 1, 2, 3, 4)):
    rows = []
    for seed in seeds:
        rows.append({"run_id": f"truth-{seed}", "kind": "truth", "base_model": "", "prior": "", "steps": 0,
                     "objective": "truth", "decoding": "data", "seed": seed, "top_opener_share": 0.33,
                     "top_opener_true_prob": 0.33, "overuse_formulaic": 1.0})
        for objective, by_decoding in (("nll", {"T=1": nll_t1, "T=0.7,top-p=0.9": nll_t07}),
                                       ("dft", {"T=1": dft_t1, "T=0.7,top-p=0.9": dft_t1})):
            for decoding, shares in by_decoding.items():
                rows.append({"run_id": f"{objective}-{seed}", "kind": "finetuned", "base_model": "tiny-gpt2",
                             "prior": "strong", "steps": 200, "objective": objective, "decoding": decoding,
                             "seed": seed, "top_opener_share": shares[seed], "top_opener_true_prob": 0.33,
                             "overuse_formulaic": 1.0, "samples": 160})
    return pd.DataFrame(rows)


def test_claim_one_is_decided_at_t_1_not_by_low_temperature_decoding():
    near = [0.32, 0.35, 0.33, 0.31, 0.34]
    decoding_only = _claim_1_table(near, [0.55, 0.52, 0.58, 0.5, 0.54], near)
    ctx = rules.context_of(decoding_only)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    verdict, reason = rules.claim_1_verdict(decision, ctx)
    assert verdict != "true" and "Decoding, a finding of its own" in reason
    over = _claim_1_table(near, near, [0.6, 0.62, 0.58, 0.65, 0.61])
    ctx = rules.context_of(over)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    assert rules.claim_1_verdict(decision, ctx)[0] == "true"
    below = _claim_1_table([0.3, 0.31, 0.29, 0.32, 0.3], near, [0.3, 0.31, 0.3, 0.29, 0.33])
    ctx = rules.context_of(below)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    assert rules.claim_1_verdict(decision, ctx)[0] == "false"  # the rule can come out false


def test_the_real_models_habit_words_are_reported_but_do_not_decide_claim_one():
    near = [0.32, 0.35, 0.33, 0.31, 0.34]
    table = _claim_1_table(near, near, near)
    words = pd.DataFrame({"word": ["tapestry", "bustling"], "discovery_ratio": [600.0, 500.0],
                          "held_out_ratio": [300.0, 800.0]})
    ctx = rules.context_of(table)
    ctx.real_model_words = words
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    verdict, reason = rules.claim_1_verdict(decision, ctx)
    assert verdict != "true" and "2 habit words" in reason and "reported, not counted" in reason


def test_claim_one_habit_rule_finds_habit_words_in_the_truth_itself(full):
    _, judgement = full
    habit = judgement.control_habit_words
    assert habit and all(h["raw"] for h in habit)  # the uncontrolled rule calls true stories formulaic
    assert any(h["controlled"] for h in habit)  # and so does the controlled one: it cannot decide the claim
