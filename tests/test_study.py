"""Tests for dftlab.study and the distribution_matching objective: every column, determinism, caching, resuming,
the statistics (paired comparisons, Holm) and the claims logic on hand-made numbers. Two tiny random GPT-2s (a
"strong" and a "weak" prior) and tiny budgets keep them fast."""
import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPT2LMHeadModel

import dftlab
from dftlab import storage, study
from dftlab.objectives import IGNORE_INDEX, distribution_matching, nll
from dftlab.storage import CorruptFileError
from dftlab.study import (Decoding, ObjectiveSpec, StudyConfig, compare, judge_claims, load_results, measurement,
                          run_study, summary_table, t_interval)
from dftlab.tinytales import TinyTales


# ---- the distribution-level objective --------------------------------------------------------------

def test_distribution_matching_by_hand():
    # Two positions, vocabulary 2. Targets 0 and 1, so f = (1/2, 1/2).
    probs = torch.tensor([[0.8, 0.2], [0.4, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    mean = probs.mean(0)  # p_bar = (0.6, 0.4)
    penalty = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)
    expected = (-math.log(0.8) - math.log(0.6)) / 2 + 2.0 * penalty
    assert mean.tolist() == pytest.approx([0.6, 0.4])
    assert distribution_matching(probs.log(), labels, lam=2.0).item() == pytest.approx(expected)
    assert distribution_matching(probs.log(), labels, lam=0.0).item() == pytest.approx(nll(probs.log(), labels).item())


def test_distribution_matching_penalty_vanishes_when_the_average_prediction_matches_the_batch():
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64)  # p_bar = (0.5, 0.5) = f
    labels = torch.tensor([[0, 1]])
    assert distribution_matching(probs.log()[None], labels, lam=5.0).item() == pytest.approx(
        nll(probs.log()[None], labels).item())


def test_distribution_matching_ignores_unsupervised_positions():
    logits = torch.randn(1, 3, 4, dtype=torch.float64)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    changed = logits.clone()
    changed[0, 0] = torch.tensor([9.0, -3.0, 0.0, 1.0])  # only the ignored position differs
    assert distribution_matching(logits, labels).item() == pytest.approx(distribution_matching(changed, labels).item())


def test_distribution_matching_keeps_the_maximum_likelihood_fixed_point():
    # Two contexts with their own true next-token distributions. At p = q the expected gradient (over
    # the targets drawn from q) of nll + lam * penalty is zero: the penalty does not move MLE's optimum.
    q = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    logits = q.log().clone().requires_grad_(True)
    expected_loss = 0.0
    for y1, y2 in itertools.product(range(3), repeat=2):
        weight = q[0, y1] * q[1, y2]
        expected_loss = expected_loss + weight * distribution_matching(logits, torch.tensor([y1, y2]), lam=3.0)
    (gradient,) = torch.autograd.grad(expected_loss, logits)
    assert gradient.abs().max().item() < 1e-12
    # ... while a p away from q has a non-zero expected gradient.
    other = torch.tensor([[0.3, 0.3, 0.4], [0.5, 0.3, 0.2]], dtype=torch.float64).log().requires_grad_(True)
    total = sum(q[0, a] * q[1, b] * distribution_matching(other, torch.tensor([a, b]), lam=3.0)
                for a, b in itertools.product(range(3), repeat=2))
    assert torch.autograd.grad(total, other)[0].abs().max().item() > 1e-3


def test_distribution_matching_rejects_a_negative_lam():
    with pytest.raises(ValueError, match="lam"):
        distribution_matching(torch.randn(2, 3), torch.tensor([0, 1]), lam=-1.0)


# ---- confidence intervals, p-values, Holm ------------------------------------------------------------

def test_t_interval_by_hand():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd 1 / sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert math.isnan(t_interval([5.0])[1]) and t_interval([5.0])[0] == 5.0


def test_t_test_p_value_by_hand():
    # differences 1, 1.5, 2: mean 1.5, sd 0.5, t = 1.5 / (0.5 / sqrt 3) = 5.196 on 2 degrees of freedom
    t = 1.5 / (0.5 / math.sqrt(3))
    assert study.t_test_p_value([1.0, 1.5, 2.0]) == pytest.approx(1 - t / math.sqrt(2 + t * t))  # t on 2 df, two-sided
    assert study.t_test_p_value([1.0, 1.5, 2.0]) == pytest.approx(0.0351, abs=1e-4)
    assert study.t_test_p_value([1.0, 1.5, float("nan"), 2.0]) == study.t_test_p_value([1.0, 1.5, 2.0])
    assert math.isnan(study.t_test_p_value([3.0])) and math.isnan(study.t_test_p_value([]))
    # no spread: the exact sign-flip test answers, never p = 0 (2 of the 2^3 sign patterns reach |sum| = 0.6)
    assert study.t_test_p_value([0.2, 0.2, 0.2]) == 0.25 == study.minimum_p_value(3)
    assert study.t_test_p_value([0.0, 0.0]) == 1.0


def test_holm_by_hand():
    # sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to the running maximum 0.06
    assert study.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert study.holm([0.2, 0.5]) == pytest.approx([0.4, 0.5])
    assert study.holm([0.6, 0.7, 0.01]) == pytest.approx([1.0, 1.0, 0.03])  # capped at 1
    assert study.holm([0.04]) == pytest.approx([0.04]) and study.holm([]) == []


def test_holm_leaves_nan_out_of_the_family():
    adjusted = study.holm([0.01, float("nan"), 0.04, 0.03])
    assert math.isnan(adjusted[1])
    assert [adjusted[0], adjusted[2], adjusted[3]] == pytest.approx([0.03, 0.06, 0.06])  # m = 3, not 4
    assert all(math.isnan(p) for p in study.holm([float("nan"), float("nan")]))


def test_a_comparison_is_significant_by_its_adjusted_p_value_when_it_has_one():
    c = study.Comparison("kl", "dft", "nll", "T=1", 2.0, 1.0, 1.0, 0.5, 1.5, 3, p_value=0.01)
    assert c.significant and c.above and not c.below
    c.adjusted_p = 0.06
    assert not c.significant and not c.above and not c.below
    assert "Holm-adjusted 0.06" in c.text()
    lower = study.Comparison("kl", "dft", "nll", "T=1", 1.0, 2.0, -1.0, -1.5, -0.5, 3, p_value=0.01)
    assert lower.below and not lower.above


# ---- comparisons on hand-made tables ----------------------------------------------------------------

STRONG, WEAK = "tiny-gpt2", "tiny-gpt2-english"


def fake_results(values: dict, seeds=(0, 1, 2), decodings=("T=1", "T=0.7,top-p=0.9"), base_model=STRONG,
                 prior="strong", steps=200, names=None, zipf_exponent=1.1):
    """A results table from {objective: {metric: [value per seed]}}, every fine-tuning from `base_model` at `steps`.

    "truth" gets one "data" row per seed (no base model, steps 0), "base" is the base model (steps 0);
    `names` maps a label to its objective_name (default: the label itself).
    """
    names = names or {}
    rows = []
    for objective, metrics in values.items():
        kind = objective if objective in ("truth", "base") else "finetuned"
        for decoding in (["data"] if kind == "truth" else decodings):
            for index, seed in enumerate(seeds):
                row = {"run_id": f"{objective}-{seed}", "kind": kind,
                       "base_model": "" if kind == "truth" else base_model, "prior": "" if kind == "truth" else prior,
                       "steps": steps if kind == "finetuned" else 0, "zipf_exponent": zipf_exponent,
                       "objective": objective, "objective_name": names.get(objective, objective if kind == "finetuned"
                                                                             else kind),
                       "decoding": decoding, "seed": seed}
                row.update({metric: per_seed[index] for metric, per_seed in metrics.items()})
                rows.append(row)
    return pd.DataFrame(rows)


def test_compare_pairs_by_seed():
    # a - b is 1.0 in every seed although the seeds themselves differ a lot: the paired CI is tight, and with no
    # spread the exact sign-flip test gives the smallest p-value 3 seeds allow (2 / 2^3), not significant.
    table = fake_results({"a": {"m": [10.0, 20.0, 30.0]}, "b": {"m": [9.0, 19.0, 29.0]}})
    result = compare(table, "m", "a", "b")
    assert result.difference == pytest.approx(1.0) and result.low == pytest.approx(1.0)
    assert result.n == 3 and result.test == "exact" and result.p_value == study.minimum_p_value(3) == 0.25
    assert not result.above and not result.below and "p = 0.25" in result.text()
    spread = compare(fake_results({"a": {"m": [10.0, 20.2, 30.0]}, "b": {"m": [9.0, 19.0, 29.1]}}), "m", "a", "b")
    assert spread.test == "t" and spread.above and spread.p_value < 0.05  # paired: 1.0, 1.2, 0.9
    against_constant = compare(table, "m", "a", 15.0)
    assert against_constant.difference == pytest.approx(5.0) and not against_constant.above
    assert against_constant.p_value == pytest.approx(study.t_test_p_value([-5.0, 5.0, 15.0]))


def test_compare_reads_the_headline_runs_unless_told_otherwise():
    headline = fake_results({"a": {"m": [1.0, 2.0, 3.0]}, "b": {"m": [0.0, 0.0, 0.0]}})
    short = fake_results({"a": {"m": [5.0, 5.0, 5.0]}}, steps=50)
    weak = fake_results({"a": {"m": [9.0, 9.0, 9.0]}, "b": {"m": [7.0, 7.0, 7.0]}}, base_model=WEAK, prior="weak")
    table = pd.concat([headline, short, weak, headline.assign(steps=200)], ignore_index=True).drop_duplicates(
        ["objective", "decoding", "seed", "base_model", "steps"])
    assert study.results.headline(table) == (STRONG, 200)
    assert compare(table, "m", "a", "b").mean_a == pytest.approx(2.0)
    assert compare(table, "m", "a", 0.0, steps=50).mean_a == pytest.approx(5.0)
    assert compare(table, "m", "a", "b", steps=50).n == 0  # b has no run at 50 steps: nothing to pair
    from_weak = compare(table, "m", "a", "b", base_model=WEAK)
    assert from_weak.mean_a == 9.0 and from_weak.mean_b == 7.0
    across = compare(table, "m", "a", "b", b_base_model=WEAK)  # a from the strong prior against b from the weak one
    assert across.difference == pytest.approx(2.0 - 7.0) and across.b == f"b from {WEAK}"
    with pytest.raises(ValueError, match="strong-prior"):
        study.results.headline(weak)


def test_compare_by_distance_to_the_truth_reads_further_on_either_side_as_larger():
    truth = [1.0, 2.0, 3.0]
    jitter = [0.0, 0.01, -0.01]  # some spread over seeds, so that the t-test applies
    table = fake_results({"truth": {"m": truth},
                          "above": {"m": [t + 0.5 + j for t, j in zip(truth, jitter)]},   # 0.5 above the truth
                          "slightly_below": {"m": [t - 0.2 for t in truth]},  # 0.2 below: the closest
                          "far_below": {"m": [t - 0.8 + j for t, j in zip(truth, [0.0, -0.02, 0.02])]}})  # the furthest
    above_vs_below = compare(table, "m", "above", "slightly_below", distance_to_truth=True)
    assert above_vs_below.difference == pytest.approx(0.3) and above_vs_below.above
    assert above_vs_below.mean_a == pytest.approx(0.5) and above_vs_below.mean_b == pytest.approx(0.2)
    assert above_vs_below.metric == "|m - truth|" and above_vs_below.raw_metric == "m"
    # on the raw metric the order is the same here ...
    assert compare(table, "m", "above", "slightly_below").above
    # ... but below the truth "further" and "smaller" part ways: far_below is the smaller value and the further one.
    far = compare(table, "m", "far_below", "above", distance_to_truth=True)
    assert far.difference == pytest.approx(0.3) and far.above
    assert compare(table, "m", "far_below", "above").below
    # against a number, only a's distance is taken
    assert compare(table, "m", "far_below", 0.0, distance_to_truth=True).difference == pytest.approx(0.8)


def claims_table(dft_kl, dft_l2, dft_distinct, nll_share=(0.33, 0.34, 0.32)):
    base = {"token_l2_1": [0.05, 0.05, 0.05], "kl": [1.0, 1.1, 0.9], "predictive_entropy": [1.0, 1.0, 1.0],
            "top_opener_share": list(nll_share), "top_opener_true_prob": [0.33] * 3, "overuse_formulaic": [1.0] * 3,
            "distinct_1": [0.3] * 3, "distinct_2": [0.5, 0.52, 0.51], "distinct_3": [0.7] * 3, "self_bleu": [0.5] * 3,
            "zipf_coefficient": [1.0] * 3, "mmd2": [0.01] * 3, "token_l2_2": [0.05] * 3, "seq_rep_4": [0.0] * 3,
            "prob_p50": [0.5] * 3, "valid_accuracy": [0.6] * 3, "opener_p_value": [0.5] * 3,
            "ending_p_value": [0.5] * 3, "cross_entropy": [20.0] * 3, "validity": [0.9] * 3, "loss_scale": [1.0] * 3,
            "prob_character": [0.3] * 3}
    dft = dict(base, kl=dft_kl, token_l2_1=dft_l2, distinct_2=dft_distinct, predictive_entropy=[0.5, 0.6, 0.55],
               distinct_1=[0.2, 0.21, 0.2], distinct_3=[0.5, 0.52, 0.5], self_bleu=[0.7, 0.72, 0.71],
               mmd2=[0.05, 0.06, 0.05], top_opener_share=[0.6, 0.62, 0.61], prob_p50=[0.8, 0.82, 0.81],
               loss_scale=[0.1] * 3, seq_rep_4=[0.05, 0.06, 0.055])
    truth = dict(base, token_l2_1=[0.04, 0.041, 0.039], top_opener_share=[0.33, 0.33, 0.33])
    return fake_results({"nll": base, "dft": dft, "truth": truth, "base": dict(base, cross_entropy=[25.0] * 3)})


CLEAR = dict(dft_kl=[3.0, 3.2, 2.9], dft_l2=[0.09, 0.1, 0.095], dft_distinct=[0.3, 0.31, 0.3])


def test_claims_follow_the_numbers():
    clear = {v.number: v for v in judge_claims(claims_table(**CLEAR))}
    # claim 1 is decided at T=1: dft's share (0.61) is above the truth's 0.33, nll's is not
    assert clear[1].verdict == "true" and "dft" in clear[1].reason and "does not over-use" in clear[1].reason
    assert clear[2].verdict == "true for Dynamic FT, but not what the original post said"
    assert clear[3].verdict == "true for Dynamic FT, but not what the original post said"
    assert clear[4].verdict == "true"  # nll's token L2 (0.05) sits above the truth's floor (0.04)
    assert clear[5].verdict == "true for Dynamic FT, but not what the original post said"
    for item in clear.values():
        assert item.evidence and item.flip and item.rule and item.verdict in study.VERDICTS
    rules = [study.claims.CLAIM_1_RULE, study.claims.CLAIM_2_RULE, study.claims.CLAIM_3_RULE,
             study.claims.CLAIM_4_RULE, study.claims.CLAIM_5_RULE]
    assert [item.rule for item in clear.values()] == rules


def test_the_judgement_adjusts_every_decisive_comparison_as_one_family():
    judgement = study.judge(claims_table(**CLEAR))
    # claim 1: nll and dft at T=1; claims 2 and 3: 2 each, but dft's KL against nll decides both and counts once;
    # claim 4: 3; claim 5: 6; no weak prior, no lambdas
    assert judgement.family_size == 2 + 2 + 2 - 1 + 3 + 6
    assert judgement.shared_tests == [("kl: dft vs nll", ["claim 2", "claim 3"])]
    assert "Holm-adjusted" in judgement.claims[1].evidence[0] and "(context, not adjusted)" in judgement.claims[1].evidence[-1]
    assert judgement.regime[0] == "not testable here" and judgement.reconstruction == []


def test_claims_without_a_significant_difference_are_not_supported():
    noisy = {v.number: v for v in judge_claims(claims_table(dft_kl=[0.5, 2.0, 0.8], dft_l2=[0.02, 0.09, 0.05],
                                                            dft_distinct=[0.6, 0.4, 0.5]))}
    assert noisy[2].verdict == "not supported at this scale"
    assert noisy[3].verdict == "not supported at this scale"


def test_claim_two_is_false_when_dft_matches_better():
    better = {v.number: v for v in judge_claims(claims_table(dft_kl=[0.5, 0.55, 0.45], dft_l2=[0.02, 0.021, 0.02],
                                                             dft_distinct=[0.5, 0.52, 0.51]))}
    assert better[2].verdict == "false"


def test_a_difference_significant_alone_is_not_counted_after_the_holm_adjustment():
    # dft - nll is 1, 1.5, 2 (x the scale) in the three seeds: p = 0.035 on its own, not after adjusting 14 tests.
    table = claims_table(dft_kl=[1.0 + 1.0, 1.1 + 1.5, 0.9 + 2.0], dft_l2=[0.05 + 0.01, 0.05 + 0.015, 0.05 + 0.02],
                         dft_distinct=[0.3, 0.31, 0.3])
    for metric in ("kl", "token_l2_1"):
        alone = compare(table, metric, "dft", "nll")
        assert alone.p_value == pytest.approx(0.0351, abs=1e-3) and alone.adjusted_p is None and alone.above
    assert {v.number: v for v in judge_claims(table)}[2].verdict == "not supported at this scale"
    assert {v.number: v for v in judge_claims(claims_table(**CLEAR))}[2].verdict == \
        "true for Dynamic FT, but not what the original post said"  # the same claim with clear differences


def test_claim_two_verdict_uses_the_adjusted_p_values():
    from dftlab.study.claims import Decision, claim_2_verdict, context_of

    ctx = context_of(claims_table(**CLEAR))
    decision = Decision({"token_l2_1": study.Comparison("token_l2_1", "dft", "nll", "T=1", 0.1, 0.05, 0.05, 0.01,
                                                        0.09, 3, p_value=0.03),
                         "kl": study.Comparison("kl", "dft", "nll", "T=1", 3.0, 1.0, 2.0, 0.5, 3.5, 3, p_value=0.03)})
    assert claim_2_verdict(decision, ctx)[0] == "true for Dynamic FT, but not what the original post said"
    family = [c.p_value for c in decision.decisive.values()] + [0.5, 0.8]  # a larger family: 0.03 x 4 = 0.12
    for comparison, adjusted in zip(decision.decisive.values(), study.holm(family)):
        comparison.adjusted_p = adjusted
    assert decision.decisive["kl"].adjusted_p == pytest.approx(0.12)
    assert claim_2_verdict(decision, ctx)[0] == "not supported at this scale"


def test_claim_four_needs_a_gap_between_sft_and_the_truth():
    table = claims_table(**CLEAR)
    nll_rows = table["objective"] == "nll"
    table.loc[nll_rows, "kl"] = np.tile([0.5, -0.4, 0.1], 2)  # KL's CI straddles 0
    table.loc[nll_rows, "token_l2_1"] = np.tile([0.03, 0.05, 0.04], 2)  # and L2 sits on the truth's floor
    table.loc[nll_rows, "validity"] = 1.0
    verdict = {v.number: v for v in judge_claims(table)}[4]
    assert verdict.verdict == "false"
    table.loc[nll_rows, "validity"] = np.tile([0.8, 0.82, 0.81], 2)  # SFT writes invalid stories: a gap
    verdict = {v.number: v for v in judge_claims(table)}[4]
    assert verdict.verdict == "true" and "validity" in verdict.reason


def variety_table(dft: dict, nll: dict, truth: dict):
    """claims_table with the six measures of variety replaced."""
    table = claims_table(**CLEAR)
    for objective, values in (("dft", dft), ("nll", nll), ("truth", truth)):
        rows = table["objective"] == objective
        for metric, per_seed in values.items():
            table.loc[rows, metric] = np.tile(per_seed, int(rows.sum()) // 3)
    return table


def test_claim_five_judges_variety_by_the_distance_to_the_truth():
    # DFT's samples are *more* varied than the truth (more distinct n-grams, lower self-BLEU, fewer repeats),
    # SFT's a little less: by "more is better" DFT would win; by the distance to the truth SFT is closer.
    truth = {"distinct_1": [0.30, 0.32, 0.31], "distinct_2": [0.50, 0.52, 0.51], "distinct_3": [0.70, 0.71, 0.72],
             "self_bleu": [0.50, 0.51, 0.52], "zipf_coefficient": [1.0, 1.01, 1.02], "seq_rep_4": [0.1, 0.11, 0.12]}
    nll = {m: [v - 0.02 if m in ("distinct_1", "distinct_2", "distinct_3") else v + 0.02 for v in values]
           for m, values in truth.items()}
    dft = {m: [v + (0.2 if m in ("distinct_1", "distinct_2", "distinct_3") else -0.09) + j
               for v, j in zip(values, (0.0, 0.01, -0.005))] for m, values in truth.items()}  # some spread over seeds
    table = variety_table(dft, nll, truth)
    for metric in ("distinct_1", "distinct_2", "distinct_3"):
        assert compare(table, metric, "dft", "nll").above  # DFT is more varied ...
        assert compare(table, metric, "nll", "dft", distance_to_truth=True).below  # ... and further from the truth
    verdict = {v.number: v for v in judge_claims(table)}[5]
    assert verdict.verdict == "true for Dynamic FT, but not what the original post said"
    assert all(f"|{m} - truth|" in " ".join(verdict.evidence) for m in study.claims.VARIETY_MEASURES)
    # The mirror image: DFT close to the truth, SFT far from it (and more varied): false.
    verdict = {v.number: v for v in judge_claims(variety_table(nll, dft, truth))}[5]
    assert verdict.verdict == "false"


def test_claim_five_verdict_counts_groups_of_correlated_measures_once():
    from dftlab.study.claims import Decision, claim_5_verdict, context_of

    ctx = context_of(claims_table(**CLEAR))
    assert study.claims.VARIETY_MEASURES == ("distinct_1", "distinct_2", "distinct_3", "self_bleu", "seq_rep_4",
                                             "zipf_coefficient")

    def decision(differences):  # one signed difference per measure, in VARIETY_MEASURES order; 0: not significant
        return Decision({m: study.Comparison(f"|{m} - truth|", "nll", "dft", "T=1", 0.0, 0.0, d, d, d, 3,
                                             p_value=0.001 if d else 1.0)
                         for m, d in zip(study.claims.VARIETY_MEASURES, differences)})

    # groups: lexical (distinct 1-3), repetition (self-BLEU, seq-rep-4), Zipf
    assert claim_5_verdict(decision([-1, -1, -1, -1, -1, 0]), ctx)[0] == study.VERDICTS[2]  # 2 of 3 groups
    assert claim_5_verdict(decision([-1, -1, 0, 0, 0, -1]), ctx)[0] == study.VERDICTS[2]  # lexical by 2 of 3, Zipf
    # four measures closer, as the old rule counted them, but all in one group and half of another: 1 group
    assert claim_5_verdict(decision([-1, -1, -1, -1, 0, 0]), ctx)[0] == study.VERDICTS[3]
    assert claim_5_verdict(decision([-1, -1, -1, -1, -1, 1]), ctx)[0] == study.VERDICTS[3]  # further in one group
    assert claim_5_verdict(decision([-1, 1, -1, -1, -1, 0]), ctx)[0] == study.VERDICTS[3]  # lexical split: undecided
    assert claim_5_verdict(decision([1, 1, 0, 0, 0, 1]), ctx)[0] == "false"
    sides = study.claims.variety_group_sides(decision([-1, -1, 0, 1, 1, 0]))
    assert sides == {"lexical diversity": "closer", "repetition": "further", "word-frequency shape": "undecided"}


def regime_table(strong_dft_validity, weak_dft_validity, weak=True):
    """claims_table from the strong prior (nll validity 0.9), plus nll and dft from the weak prior (nll 0.8)."""
    strong = claims_table(**CLEAR)
    strong.loc[strong["objective"] == "nll", "prob_character"] = 0.9
    for metric in ("validity", "prob_character"):  # the verdict reads prob_character; the table shows both
        strong.loc[strong["objective"] == "dft", metric] = np.tile(strong_dft_validity, 2)
    if not weak:
        return strong
    metrics = {"validity": [0.8, 0.82, 0.81], "kl": [5.0, 5.1, 5.2], "prob_character": [0.8, 0.82, 0.81]}
    weak_rows = fake_results({"base": dict(metrics, validity=[0.0] * 3, prob_character=[0.0] * 3), "nll": metrics,
                              "dft": dict(metrics, validity=list(weak_dft_validity),
                                          prob_character=list(weak_dft_validity), kl=[7.0, 7.3, 7.1])},
                             base_model=WEAK, prior="weak")
    return pd.concat([strong, weak_rows], ignore_index=True)


def test_the_regime_verdict_is_consistent_with_li_when_nll_beats_dft_only_under_the_weak_prior():
    # strong prior: dft's validity is nll's (0.9); weak prior: dft 0.3 below nll
    judgement = study.judge(regime_table([0.9, 0.9, 0.9], [0.5, 0.51, 0.53]))
    assert judgement.context.weak_model == WEAK and judgement.context.base_model == STRONG
    assert judgement.regime[0] == "consistent with Li et al."
    assert judgement.family_size == 14 + 2 and len(judgement.regime_evidence) == 2 + 5
    # nll beats dft by as much under both priors: only partly consistent
    assert study.judge(regime_table([0.6, 0.61, 0.63], [0.5, 0.51, 0.53])).regime[0] == \
        "partly consistent with Li et al."
    # no difference under the weak prior
    assert study.judge(regime_table([0.9, 0.9, 0.9], [0.8, 0.82, 0.81])).regime[0] == "not supported at this scale"
    # no weak prior at all
    assert study.judge(regime_table([0.9, 0.9, 0.9], None, weak=False)).regime[0] == "not testable here"


def test_the_regime_comparison_has_a_row_per_prior_and_metric():
    table = study.regime_comparison(regime_table([0.9, 0.9, 0.9], [0.5, 0.51, 0.53]))
    assert list(table["prior"]) == ["strong"] * 3 + ["weak"] * 3
    weak_validity = table[(table["prior"] == "weak") & (table["metric"] == "validity")].iloc[0]
    assert weak_validity["base_model"] == WEAK and weak_validity["base"] == 0.0
    assert weak_validity["nll"] == pytest.approx(0.81) and weak_validity["dft"] == pytest.approx(0.5133333)
    assert weak_validity["dft_minus_nll"] == pytest.approx(0.5133333 - 0.81) and weak_validity["n"] == 3


def test_the_reconstruction_is_judged_on_gains_and_costs():
    table = claims_table(**CLEAR)
    nll = table[table["objective"] == "nll"]

    def with_lambdas(variants):
        frames = [table]
        for label, changes in variants.items():
            rows = nll.assign(objective=label, objective_name="distribution_matching")
            for metric, per_seed in changes.items():
                rows[metric] = np.tile(per_seed, 2)
            frames.append(rows)
        return pd.concat(frames, ignore_index=True)

    lower_l2 = {"token_l2_1": [0.04, 0.041, 0.0395]}
    less_valid = dict(lower_l2, validity=[0.5, 0.52, 0.51])
    results = with_lambdas({"distribution_matching_3": less_valid, "distribution_matching_0.3": {},
                            "distribution_matching_1": lower_l2})
    judgement = study.judge(results)
    assert [label for label, *_ in judgement.reconstruction] == [  # the lambda sweep, in order of lambda
        "distribution_matching_0.3", "distribution_matching_1", "distribution_matching_3"]
    verdicts = {label: verdict for label, verdict, _, _ in judgement.reconstruction}
    assert verdicts == {"distribution_matching_0.3": "no measurable effect", "distribution_matching_1": "helps",
                        "distribution_matching_3": "hurts"}
    assert judgement.family_size == 14 + 3 * 4  # four decisive tests per lambda join the family
    table_view = study.reconstruction_comparison(results)
    assert list(table_view.columns) == ["objective", "verdict", "reason"]
    assert dict(zip(table_view["objective"], table_view["verdict"])) == verdicts
    reason = dict(zip(table_view["objective"], table_view["reason"]))
    assert "token_l2_1" in reason["distribution_matching_1"] and "validity" in reason["distribution_matching_3"]


def test_claims_markdown_states_every_rule_and_verdict():
    results = regime_table([0.9, 0.9, 0.9], [0.5, 0.51, 0.53])
    study_payload = {"config": StudyConfig().to_dict(), "config_hash": "abc123abc123", "version": dftlab.__version__,
                     "model_sha256": {STRONG: "0" * 64, WEAK: "1" * 64}}
    text = study.claims_markdown(results, study_payload)
    assert all(f"## Claim {n}" in text for n in range(1, 6)) and "regime question" in text
    assert "**consistent with Li et al." in text and "study-full-abc123abc123.json" in text
    assert "16 decisive tests" in text and f"{WEAK} 111111111111" in text
    assert "10.0x smaller" in text  # dft's loss_scale 0.1
    no_dft = study.claims_markdown(results[results["objective"] != "dft"], study_payload)
    assert "No verdicts" in no_dft and "'dft'" in no_dft


# ---- planning the runs ------------------------------------------------------------------------------

def test_plan_runs_gives_the_headline_objectives_more_seeds_a_sweep_and_the_weak_prior():
    config = StudyConfig()  # nll and dft with seeds 0-4 at 200 steps; the sweep (50, 100) and the weak prior with 0-2
    runs = study.plan_runs(config)
    assert len({run.run_id for run in runs}) == len(runs)
    finetuned = [r for r in runs if r.kind == "finetuned"]
    by_key = {}
    for run in finetuned:
        by_key.setdefault((run.label, run.base_model, run.steps), []).append(run.seed)
    for label in ("nll", "dft"):
        assert by_key[(label, STRONG, 200)] == [0, 1, 2, 3, 4]
        assert by_key[(label, STRONG, 50)] == by_key[(label, STRONG, 100)] == [0, 1, 2]
        assert by_key[(label, WEAK, 200)] == [0, 1, 2]
    others = [o.label for o in config.objectives if o.label not in ("nll", "dft")]
    for label in others:
        assert by_key[(label, STRONG, 200)] == [0, 1, 2]
    assert len(by_key) == 2 * 4 + len(others)  # no sweep and no weak prior for the other objectives
    assert len(finetuned) == 2 * (5 + 2 * 3 + 3) + 3 * len(others)
    assert [r.seed for r in runs if r.kind == "truth"] == [0, 1, 2, 3, 4]
    assert sorted((r.base_model, r.seed) for r in runs if r.kind == "base") == sorted(
        (model, seed) for model in (STRONG, WEAK) for seed in range(5))
    assert all(r.steps == 0 and r.objective is None for r in runs if r.kind != "finetuned")
    # grouped by seed, so that shared inputs (the splits, the reference) are built once
    seeds = [r.seed for r in runs]
    assert seeds == sorted(seeds)


def test_plan_runs_without_a_weak_prior_or_a_sweep():
    config = StudyConfig(weak_model=None, budget_sweep=(), headline_seeds=(0, 1, 2))
    runs = study.plan_runs(config)
    assert {r.base_model for r in runs if r.kind != "truth"} == {STRONG}
    assert {r.steps for r in runs if r.kind == "finetuned"} == {200}
    assert len(runs) == 3 * (1 + 1 + len(config.objectives))
    # the headline seeds need not include the others' seeds: every seed gets its truth and base runs
    config = StudyConfig(weak_model=None, budget_sweep=(), seeds=(0,), headline_seeds=(1,))
    plan = [(r.kind, r.label, r.seed) for r in study.plan_runs(config)]
    assert ("finetuned", "nll", 1) in plan and ("finetuned", "nll", 0) not in plan
    assert ("finetuned", "power_0.5", 0) in plan and ("finetuned", "power_0.5", 1) not in plan
    assert ("truth", "truth", 0) in plan and ("truth", "truth", 1) in plan


def test_run_ids_name_the_base_model_the_budget_and_the_seed():
    nll_spec = ObjectiveSpec("nll", "nll")
    assert study.RunSpec("finetuned", 3, "/some/folder/tiny-gpt2-english", 50, nll_spec).run_id == \
        "tiny-gpt2-english-nll-50steps-seed3"
    assert study.RunSpec("base", 1, STRONG).run_id == "tiny-gpt2-base-seed1"
    assert study.RunSpec("truth", 2).run_id == "truth-seed2"
    run = study.RunSpec("finetuned", 3, STRONG, 200, ObjectiveSpec("power_0.5", "power", {"alpha": 0.5}))
    plain = json.loads(json.dumps(dataclasses.asdict(run)))
    assert study.RunSpec.from_dict(plain) == run and study.RunSpec.from_dict(
        json.loads(json.dumps(dataclasses.asdict(study.RunSpec("truth", 0))))) == study.RunSpec("truth", 0)


# ---- the study itself, on two tiny models -----------------------------------------------------------

def _tiny_model(folder, seed, make_tiny_gpt2):
    from dftlab.study.pretrain import train_tokenizer

    stories = TinyTales(0, 0.3).sample(300, seed=5)
    tokenizer = train_tokenizer([s["prompt"] + s["completion"] for s in stories], vocab_size=400)
    model = make_tiny_gpt2(len(tokenizer), n_positions=256, seed=seed, eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory, make_tiny_gpt2):
    """The 'strong prior' of the tiny studies (a random GPT-2: the names are what matter here)."""
    return _tiny_model(tmp_path_factory.mktemp("strong"), seed=0, make_tiny_gpt2=make_tiny_gpt2)


@pytest.fixture(scope="module")
def weak_model_folder(tmp_path_factory, make_tiny_gpt2):
    """The 'weak prior': the same architecture and tokenizer, other initial weights."""
    return _tiny_model(tmp_path_factory.mktemp("weak"), seed=1, make_tiny_gpt2=make_tiny_gpt2)


def tiny_config(folder, **changes) -> StudyConfig:
    settings = dict(name="test", model=folder, weak_model=None, seeds=(0,), headline_seeds=(0,), budget_sweep=(),
                    train_size=24, valid_size=6, test_size=10, steps=2, batch_size=4, warmup_steps=1, eval_every=1,
                    max_length=256, num_prompts=2, samples_per_prompt=3, max_new_tokens=12, embedding="ngram",
                    mmd_texts=6, mmd_permutations=20, self_bleu_texts=6,
                    objectives=(ObjectiveSpec("nll", "nll"), ObjectiveSpec("dft", "dft")))
    settings.update(changes)
    return StudyConfig(**settings)


COMPUTE_RUN = measurement.compute_run  # the real one, before any test wraps it


class CountingRuns:
    """Wraps dftlab.study.measurement.compute_run: counts the runs it computes and can interrupt after some."""

    def __init__(self, monkeypatch, interrupt_after=None):
        self.computed, self.interrupt_after = [], interrupt_after
        monkeypatch.setattr(measurement, "compute_run", self)

    def __call__(self, config, run, pipeline=measurement.TINY_MODEL_PIPELINE):
        if self.interrupt_after is not None and len(self.computed) == self.interrupt_after:
            raise KeyboardInterrupt
        self.computed.append(run.run_id)
        return COMPUTE_RUN(config, run, pipeline)


@pytest.fixture(scope="module")
def every_column(tiny_model_folder, weak_model_folder, tmp_path_factory):
    """Every objective, both priors, a budget sweep and two seeds: the whole design, tiny."""
    config = tiny_config(tiny_model_folder, weak_model=weak_model_folder, objectives=study.DEFAULT_OBJECTIVES,
                         seeds=(0, 1), headline_seeds=(0, 1), budget_sweep=(1,), num_prompts=3,
                         samples_per_prompt=8)  # 24 true stories: enough for two chi-square cells
    out = tmp_path_factory.mktemp("every-column")
    return config, out, run_study(config, out)


@pytest.mark.slow
def test_every_objective_every_column(every_column):
    config, out, results = every_column
    objectives = study.DEFAULT_OBJECTIVES
    strong, weak = "strong0", "weak0"  # the folders' names
    # the stored columns, and `samples` (samples per run and decoding, from the config) that the Wilson intervals use
    assert list(results.columns) == list(study.ID_COLUMNS + study.METRIC_COLUMNS) + ["samples"]
    assert (results["samples"] == config.num_prompts * config.samples_per_prompt).all()
    finetuned = results[results["kind"] == "finetuned"]
    assert set(finetuned["objective"]) == {o.label for o in objectives}
    # per seed: the truth (one row), two base models and 9 + 2 (sweep) + 2 (weak prior) fine-tunings (two decodings)
    assert len(results) == 2 * (1 + 2 * (2 + len(objectives) + 2 + 2))
    assert set(zip(finetuned["base_model"], finetuned["prior"])) == {(strong, "strong"), (weak, "weak")}
    assert set(finetuned.loc[finetuned["base_model"] == weak, "objective"]) == {"nll", "dft"}
    assert set(finetuned.loc[finetuned["steps"] == 1, "objective"]) == {"nll", "dft"}
    assert set(finetuned["steps"]) == {1, 2} and (results.loc[results["kind"] != "finetuned", "steps"] == 0).all()
    assert set(results.loc[results["kind"] == "base", "base_model"]) == {strong, weak}
    # Without a trained model the samples are not valid stories, so only the choice tests may be undefined.
    may_be_nan = {"opener_chi2", "opener_p_value", "ending_chi2", "ending_p_value", "overuse_top_phrases"}
    assert finetuned[[c for c in study.METRIC_COLUMNS if c not in may_be_nan]].notna().all().all()
    assert ((finetuned["prob_character"] >= 0) & (finetuned["prob_character"] <= 1)).all()
    truth = results[results["kind"] == "truth"]
    assert (truth["validity"] == 1.0).all() and truth[list(study.TEXT_METRICS)].notna().all().all()
    assert (truth["decoding"] == "data").all() and (truth["base_model"] == "").all() and (truth["prior"] == "").all()
    assert truth[list(study.MODEL_METRICS)].drop(columns="true_entropy").isna().all().all()
    base = results[results["kind"] == "base"]
    assert base["kl"].notna().all() and base["loss_scale"].isna().all() and base["prob_other"].notna().all()
    assert np.allclose(finetuned.loc[finetuned["objective"] == "nll", "loss_scale"], 1.0)
    assert (finetuned.loc[finetuned["objective"] == "dft", "loss_scale"] < 1.0).all()
    np.testing.assert_allclose(results["kl"], results["cross_entropy"] - results["true_entropy"])
    assert set(results["run_id"]) == {run.run_id for run in study.plan_runs(config)}


@pytest.mark.slow
def test_the_study_files(every_column):
    config, out, results = every_column
    saved = study.load_study(config=config, out=out)
    assert saved["version"] == dftlab.__version__ and saved["config"] == config.to_dict()
    model_fingerprints = study.fingerprints(config)
    assert set(model_fingerprints) == {config.model, config.weak_model}
    assert saved["model_sha256"] == {"strong0": model_fingerprints[config.model],
                                     "weak0": model_fingerprints[config.weak_model]}
    path = study.study_path(out, config, model_fingerprints)
    assert path.exists() and study.study_config_hash(config, model_fingerprints) in path.name
    assert [p.name for p in out.glob("study-*.json")] == [path.name]
    assert (out / path.name.replace("study-", "summary-").replace(".json", ".csv")).exists()
    pd.testing.assert_frame_equal(load_results(config=config, out=out), results)
    histograms = study.load_histograms(config=config, out=out)
    assert np.allclose(histograms.groupby("run_id")["share"].sum(), 1.0)
    assert histograms["run_id"].nunique() == results.loc[results["kind"] != "truth", "run_id"].nunique()
    assert {"base_model", "steps"} <= set(histograms.columns)
    assert (out / "README.md").exists()
    claims = next(out.glob("CLAIMS-test-*.md")).read_text()
    assert all(f"## Claim {n}" in claims for n in range(1, 6)) and "regime question" in claims
    assert "reconstruction" in claims
    choice_tables = study.load_choice_tables(config=config, out=out)
    assert not choice_tables.empty and set(choice_tables["choice"]) == {"opener", "ending"}
    histories = study.load_histories(config=config, out=out)
    assert set(histories["steps"]) == {1, 2} and set(histories["kind"]) == {"finetuned"}
    previews = study.load_previews(config=config, out=out)
    assert set(previews["run_id"]) == set(results["run_id"]) and previews["text"].map(len).gt(0).any()


@pytest.mark.slow
def test_the_summary_has_a_row_per_base_model_budget_objective_and_decoding(every_column):
    config, out, results = every_column
    summary = summary_table(results)
    assert {"base_model", "steps", "objective", "decoding", "metric", "mean", "ci_low", "ci_high", "n"} <= set(summary)
    row = summary[(summary.objective == "nll") & (summary.decoding == "T=1") & (summary.metric == "kl")
                  & (summary.base_model == "strong0") & (summary.steps == 2)]
    assert len(row) == 1
    row = row.iloc[0]
    values = results[(results.objective == "nll") & (results.decoding == "T=1") & (results.base_model == "strong0")
                     & (results.steps == 2)]["kl"]
    assert row["mean"] == pytest.approx(values.mean()) and row["n"] == 2
    assert row["ci_high"] - row["mean"] == pytest.approx(12.706204736174707 * values.std() / math.sqrt(2))
    weak_row = summary[(summary.objective == "nll") & (summary.metric == "kl") & (summary.base_model == "weak0")]
    assert len(weak_row) == 2 and weak_row["mean"].iloc[0] != pytest.approx(row["mean"])
    wide = study.format_summary(summary, metrics=["kl", "validity"], base_model="strong0", steps=2)
    assert list(wide.columns) == ["validity", "kl"]  # in the summary's order
    assert set(wide.index.get_level_values("base_model")) == {"strong0", ""}
    assert set(wide.index.get_level_values("steps")) == {0, 2}


@pytest.mark.slow
def test_the_judgement_of_a_tiny_study_covers_both_priors_and_the_lambda_sweep(every_column):
    config, out, results = every_column
    judgement = study.judge(results)
    assert judgement.context.base_model == "strong0" and judgement.context.weak_model == "weak0"
    assert judgement.context.steps == 2 and judgement.context.budgets == [1, 2]
    assert [label for label, *_ in judgement.reconstruction] == [
        "distribution_matching_0.3", "distribution_matching_1", "distribution_matching_3"]
    assert all(verdict in ("helps", "hurts", "no measurable effect") for _, verdict, _, _ in judgement.reconstruction)
    assert judgement.regime[0] != "not testable here" and len(judgement.regime_evidence) == 7
    assert 0 < judgement.family_size <= 14 + 2 + 3 * 4
    assert [c.verdict for c in judgement.claims] == [c.verdict for c in judge_claims(results)]
    regime = study.regime_comparison(results)
    assert list(regime["prior"]) == ["strong"] * 3 + ["weak"] * 3 and set(regime["base_model"]) == {"strong0", "weak0"}


@pytest.mark.slow
def test_the_study_figures_draw_from_its_tables(every_column):
    config, out, results = every_column
    from dftlab import plots

    summary = summary_table(results)
    ax = plots.plot_study_metric(summary, "kl")
    # the figures show readable names (plots.readable): "base model" for base, "NLL" for nll
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == [plots.readable("base"), plots.readable("nll")]
    ax = plots.plot_target_probability_histograms(study.load_histograms(config=config, out=out), base_model="strong0")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [plots.readable(o) for o in ("base", "nll", "dft")]
    with pytest.raises(ValueError, match="metric"):
        plots.plot_study_metric(summary, "no_such_metric")


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
def test_results_are_deterministic_for_a_seed(tiny_model_folder, tmp_path):
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path / "a")
    second = run_study(config, tmp_path / "b")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    other_seed = run_study(tiny_config(tiny_model_folder, seeds=(1,), headline_seeds=(1,)), tmp_path / "c")
    assert not np.allclose(first["kl"], other_seed["kl"])


@pytest.mark.slow
def test_finished_runs_come_from_the_cache_and_a_changed_config_recomputes(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder)
    runs = [run.run_id for run in study.plan_runs(config)]
    tunings = [run.run_id for run in study.plan_runs(config) if run.kind == "finetuned"]
    counter = CountingRuns(monkeypatch)
    first = run_study(config, tmp_path)
    assert counter.computed == runs
    counter.computed.clear()
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == []  # everything cached
    # A new objective computes only its own runs, and a budget of the sweep only the headline objectives' ...
    wider = tiny_config(tiny_model_folder, objectives=config.objectives + (ObjectiveSpec("mix_0.5", "mix", {"lam": 0.5}),))
    run_study(wider, tmp_path)
    assert counter.computed == ["strong0-mix_0.5-2steps-seed0"]
    counter.computed.clear()
    run_study(tiny_config(tiny_model_folder, budget_sweep=(1,)), tmp_path)
    assert counter.computed == ["strong0-nll-1steps-seed0", "strong0-dft-1steps-seed0"]
    counter.computed.clear()
    # ... a changed training budget recomputes the fine-tunings (the truth and the base model do not train) ...
    longer = tiny_config(tiny_model_folder, steps=3)
    run_study(longer, tmp_path)
    assert sorted(counter.computed) == sorted(r.replace("2steps", "3steps") for r in tunings)
    names = [p.name for p in tmp_path.glob("study-test-*.json")]
    assert names == [study.study_path(tmp_path, longer, study.fingerprints(longer)).name]  # the old file is gone
    counter.computed.clear()
    # ... a changed measurement recomputes every run, and force=True does too.
    run_study(tiny_config(tiny_model_folder, max_new_tokens=10), tmp_path)
    assert sorted(counter.computed) == sorted(runs)
    counter.computed.clear()
    run_study(config, tmp_path, force=True)
    assert sorted(counter.computed) == sorted(runs)


@pytest.mark.slow
def test_the_model_files_not_the_path_key_the_runs(tiny_model_folder, tmp_path, monkeypatch):
    import shutil

    # the same files in another place (under the same folder name, as when a model is installed elsewhere)
    copy_folder = tmp_path / "elsewhere" / Path(tiny_model_folder).name
    shutil.copytree(tiny_model_folder, copy_folder)
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path / "out")
    moved = tiny_config(str(copy_folder))
    assert study.study_path(tmp_path, moved, study.fingerprints(moved)) == \
        study.study_path(tmp_path, config, study.fingerprints(config))
    counter = CountingRuns(monkeypatch)
    pd.testing.assert_frame_equal(run_study(moved, tmp_path / "out"), first)
    assert counter.computed == []  # same files: every run comes from the cache


@pytest.mark.slow
def test_retrained_weights_recompute_every_run(tiny_model_folder, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_folder, folder)
    config = tiny_config(str(folder))
    run_study(config, tmp_path / "out")
    before = study.fingerprints(config)
    model = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        model.transformer.wte.weight[0, 0] += 1.0
    model.save_pretrained(folder, safe_serialization=True)  # retrained: other weights
    assert study.fingerprints(config) != before
    counter = CountingRuns(monkeypatch)
    run_study(config, tmp_path / "out")
    assert sorted(counter.computed) == sorted(r.run_id for r in study.plan_runs(config) if r.kind != "truth")


@pytest.mark.slow
def test_the_weak_prior_has_runs_of_its_own(tiny_model_folder, weak_model_folder, tmp_path, monkeypatch):
    strong_only = tiny_config(tiny_model_folder)
    run_study(strong_only, tmp_path)
    counter = CountingRuns(monkeypatch)
    both = tiny_config(tiny_model_folder, weak_model=weak_model_folder)
    results = run_study(both, tmp_path)
    assert counter.computed == ["weak0-base-seed0", "weak0-nll-2steps-seed0", "weak0-dft-2steps-seed0"]
    assert study.study_config_hash(both, study.fingerprints(both)) != study.study_config_hash(
        strong_only, study.fingerprints(strong_only))
    weak = results[results["prior"] == "weak"]
    strong = results[results["prior"] == "strong"]
    assert set(weak["base_model"]) == {"weak0"} and set(strong["base_model"]) == {"strong0"}
    pair = ["objective", "decoding"]
    assert not np.allclose(weak.sort_values(pair)["kl"], strong.sort_values(pair)["kl"])


@pytest.mark.slow
def test_a_truncated_cache_file_is_detected_and_recomputed(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path)
    dft = next(r for r in study.plan_runs(config) if r.label == "dft")
    victim = study.run_path(tmp_path, config, dft, study.fingerprints(config))
    assert victim.name.startswith("run-strong0-dft-2steps-seed0-")
    victim.write_bytes(victim.read_bytes()[:200])  # truncated mid-file
    study_file = next(tmp_path.glob("study-test-*.json"))
    text = study_file.read_text()
    assert '"validity": 1.0' in text
    study_file.write_text(text.replace('"validity": 1.0', '"validity": 0.5', 1))  # edited: hash no longer matches
    with pytest.raises(CorruptFileError, match="python -m dftlab.study"):
        load_results(config=config, out=tmp_path)
    counter = CountingRuns(monkeypatch)
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == ["strong0-dft-2steps-seed0"]
    assert json.loads(victim.read_text())["sha256"]  # rewritten whole


@pytest.mark.slow
def test_an_interrupted_study_resumes_from_the_finished_runs(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder, seeds=(0, 1), headline_seeds=(0, 1))
    runs = [run.run_id for run in study.plan_runs(config)]
    interrupted = CountingRuns(monkeypatch, interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, tmp_path)
    assert interrupted.computed == runs[:3]
    assert not list(tmp_path.glob("study-*.json"))
    resumed = CountingRuns(monkeypatch)
    run_study(config, tmp_path)
    assert resumed.computed == runs[3:]  # the first three are not recomputed


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


# ---- reading results: where they live, and refusing the wrong ones ---------------------------------

def test_results_are_written_to_the_user_folder_and_read_from_it_then_the_shipped_one(monkeypatch, tmp_path):
    from dftlab import storage

    shipped = Path(dftlab.__file__).resolve().parent / "assets" / "results"
    monkeypatch.delenv("DFTLAB_RESULTS", raising=False)
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path / "cache"))
    assert study.results_dir() == tmp_path / "cache" / "results"  # writes never go into the package
    assert storage.results_folders() == [tmp_path / "cache" / "results", shipped]
    assert storage.reading_results_dir("study-full-*.json") == shipped  # nothing recomputed yet: the shipped one
    (tmp_path / "cache" / "results").mkdir(parents=True)
    (tmp_path / "cache" / "results" / "study-full-0.json").write_text("{}")
    assert storage.reading_results_dir("study-full-*.json") == tmp_path / "cache" / "results"  # yours first
    monkeypatch.setenv("DFTLAB_RESULTS", str(tmp_path / "mine"))
    assert study.results_dir() == tmp_path / "mine" and storage.results_folders() == [tmp_path / "mine"]


def test_the_shipped_results_are_read_without_writing_to_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("DFTLAB_RESULTS", raising=False)
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    assert len(study.load_results(quick=True)) > 0
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_load_results_says_which_command_to_run(tiny_model_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m dftlab.study --quick"):
        load_results(quick=True, config=tiny_config(tiny_model_folder, name="quick"), out=tmp_path)


@pytest.mark.slow
def test_a_results_file_of_another_config_is_refused(tiny_model_folder, tmp_path):
    from dftlab.storage import write_json_with_hash

    config = tiny_config(tiny_model_folder, name="quick")
    other = tiny_config(tiny_model_folder, name="quick", steps=5)
    model_fingerprints = study.fingerprints(config)
    assert study.study_config_hash(other, model_fingerprints) != study.study_config_hash(config, model_fingerprints)
    # another config's study, under this config's file name (renamed by hand, or copied from another machine)
    payload = {"config": other.to_dict(), "config_hash": study.study_config_hash(other, model_fingerprints), "rows": []}
    write_json_with_hash(study.study_path(tmp_path, config, model_fingerprints), payload)
    with pytest.raises(CorruptFileError, match=r"another configuration.*`python -m dftlab\.study --quick`"):
        study.load_study(config=config, out=tmp_path)
    # ... and under its own name: not found for this config, with the stray file named
    study.study_path(tmp_path, config, model_fingerprints).unlink()
    stray = write_json_with_hash(study.study_path(tmp_path, other, model_fingerprints), payload)
    with pytest.raises(FileNotFoundError, match="python -m dftlab.study --quick") as error:
        study.load_study(config=config, out=tmp_path)
    assert stray.name in str(error.value) and "refused" in str(error.value)


@pytest.mark.slow
def test_a_missing_base_model_is_named_when_results_are_read(tiny_model_folder, tmp_path):
    config = tiny_config(tiny_model_folder, weak_model=str(tmp_path / "no-such-model"))
    with pytest.raises(FileNotFoundError, match=r"no-such-model.*keyed by the base models' files"):
        study.load_study(config=config, out=tmp_path)


@pytest.mark.slow
def test_the_claims_file_is_named_after_the_default_studies(tiny_model_folder, weak_model_folder, tmp_path):
    from dataclasses import replace

    from dftlab.study.cache import claims_path

    fake = {tiny_model_folder: "0" * 64, weak_model_folder: "1" * 64}
    for quick, name in ((False, "CLAIMS.md"), (True, "CLAIMS-quick.md")):
        default = study.default_config(quick)
        installed_elsewhere = replace(default, model=tiny_model_folder, weak_model=weak_model_folder)
        assert claims_path(tmp_path, installed_elsewhere, fake) == tmp_path / name
    config = tiny_config(tiny_model_folder)
    assert claims_path(tmp_path, config, fake).name == f"CLAIMS-test-{study.study_config_hash(config, fake)}.md"


def test_the_config_hash_depends_on_the_files_not_the_names():
    config = StudyConfig()
    fake = {STRONG: "0" * 64, WEAK: "1" * 64}
    from dataclasses import replace

    renamed = replace(config, model="/a/strong", weak_model="/b/weak")
    assert study.study_config_hash(renamed, {"/a/strong": "0" * 64, "/b/weak": "1" * 64}) == study.study_config_hash(config, fake)
    assert study.study_config_hash(config, {STRONG: "0" * 64, WEAK: "2" * 64}) != study.study_config_hash(config, fake)
    swapped = {STRONG: "1" * 64, WEAK: "0" * 64}  # which model is the strong prior matters
    assert study.study_config_hash(config, swapped) != study.study_config_hash(config, fake)
    assert study.study_config_hash(replace(config, weak_model=None), {STRONG: "0" * 64}) != study.study_config_hash(config, fake)


# ---- configuration and command line ----------------------------------------------------------------

def test_every_column_is_described():
    assert list(study.COLUMN_DESCRIPTIONS) == list(study.ID_COLUMNS + study.METRIC_COLUMNS)
    readme = study.results_readme()
    assert all(f"| {column} |" in readme for column in study.COLUMN_DESCRIPTIONS)
    assert {"base_model", "prior", "steps"} <= set(study.ID_COLUMNS)
    assert {"prob_character", "prob_other"} <= set(study.MODEL_METRICS)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="headline_objectives"):
        StudyConfig(headline_objectives=("nope",))
    with pytest.raises(ValueError, match="labels must be unique"):
        StudyConfig(objectives=(ObjectiveSpec("a", "nll"), ObjectiveSpec("a", "dft")), headline_objectives=())
    with pytest.raises(ValueError, match="not 'base' or 'truth'"):
        StudyConfig(objectives=(ObjectiveSpec("truth", "nll"),), headline_objectives=())
    with pytest.raises(ValueError, match="steps"):
        StudyConfig(steps=0)
    with pytest.raises(ValueError, match="budget_sweep"):
        StudyConfig(budget_sweep=(200,))  # the headline budget itself
    with pytest.raises(ValueError, match="budget_sweep"):
        StudyConfig(budget_sweep=(0,))
    with pytest.raises(ValueError, match="headline_seeds"):
        StudyConfig(headline_seeds=())
    with pytest.raises(ValueError, match="model"):
        StudyConfig(model=None)
    with pytest.raises(ValueError, match="weak_model"):
        StudyConfig(weak_model="  ")
    with pytest.raises(ValueError, match="workers"):
        run_study(StudyConfig(), workers=0)
    assert StudyConfig(weak_model=None).base_models == (STRONG,)
    assert StudyConfig().base_models == (STRONG, WEAK)


def test_quick_config_keeps_every_objective_decoding_and_base_model():
    quick, full = study.default_config(quick=True), study.default_config()
    assert quick.objectives == full.objectives and quick.decodings == full.decodings
    assert (quick.model, quick.weak_model) == (full.model, full.weak_model) == (STRONG, WEAK)
    assert quick.headline_objectives == full.headline_objectives == ("nll", "dft")
    assert quick.steps < full.steps and quick.budget_sweep and all(b < quick.steps for b in quick.budget_sweep)
    assert [d.name for d in full.decodings] == ["T=1", "T=0.7,top-p=0.9"] and full.decodings[1] == Decoding(
        "T=0.7,top-p=0.9", 0.7, 0.9)
    assert full.seeds == (0, 1, 2) and full.headline_seeds == (0, 1, 2, 3, 4) and full.budget_sweep == (50, 100)


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--seeds", "--objectives", "--out", "--force", "--workers", "--no-progress", "claims"):
        assert option in text
    with pytest.raises(SystemExit, match="unknown label"):
        study.main(["--objectives", "bogus", "--out", "/nonexistent"])


def test_the_command_line_builds_the_config_it_is_asked_for(monkeypatch, tmp_path, capsys):
    from dftlab.study import cli

    seen = {}

    def fake_run_study(config, out, force, workers, progress):
        seen.update(config=config, out=out, force=force, workers=workers)
        return pd.DataFrame({"a": [1, 2]})

    monkeypatch.setattr(cli, "run_study", fake_run_study)
    monkeypatch.setattr(cli, "fingerprints", lambda config: {m: "0" * 64 for m in config.base_models})
    assert study.main(["--quick", "--seeds", "3", "4", "--objectives", "nll", "power_0.5", "--out", str(tmp_path),
                       "--workers", "1", "--force", "--no-progress"]) == 0
    config = seen["config"]
    assert config.name == "custom" and config.seeds == config.headline_seeds == (3, 4)
    assert [o.label for o in config.objectives] == ["nll", "power_0.5"] and config.headline_objectives == ("nll",)
    assert config.steps == study.default_config(quick=True).steps and config.weak_model == WEAK
    assert seen["out"] == tmp_path and seen["force"] and seen["workers"] == 1
    assert "2 rows" in capsys.readouterr().out


@pytest.mark.slow
def test_claims_command_without_results_says_what_to_run(tiny_model_folder, tmp_path, monkeypatch):
    from dftlab.study import claims

    monkeypatch.setattr(claims, "default_config", lambda quick=False: tiny_config(tiny_model_folder))
    with pytest.raises(SystemExit, match="python -m dftlab.study"):
        study.main(["claims", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--seeds"):
        study.main(["claims", "--seeds", "1", "--out", str(tmp_path)])


# ---------------------------------------------------------------------------------------------
# The committed results: they load, and CLAIMS.md is exactly what the claims code writes from them.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("quick", [False, True])
def test_the_committed_claims_are_regenerated_byte_for_byte(quick):
    from dftlab.study.claims import claims_markdown
    from dftlab.study.results import study_table

    committed = storage.reading_results_dir() / ("CLAIMS-quick.md" if quick else "CLAIMS.md")
    payload = study.load_study(quick=quick)
    assert claims_markdown(study_table(payload), payload) == committed.read_text(), \
        f"{committed} is out of date: run `python -m dftlab.study claims{' --quick' if quick else ''}`"


def test_the_committed_results_have_the_study_design():
    results = study.load_results()
    config = study.default_config()
    assert {"base_model", "prior", "steps", "mmd_p_value"} <= set(results.columns)
    tuned = results[results["kind"] == "finetuned"]
    headline = tuned[(tuned["base_model"] == config.model) & (tuned["steps"] == config.steps)]
    for objective, seeds in (("nll", config.headline_seeds), ("dft", config.headline_seeds)):
        assert set(headline.loc[headline["objective"] == objective, "seed"]) == set(seeds)
    assert {o.label for o in config.objectives} == set(headline["objective"])
    assert set(tuned["steps"]) == {config.steps, *config.budget_sweep}
    assert set(tuned.loc[tuned["prior"] == "weak", "objective"]) == set(config.headline_objectives)
    truth = results[results["objective"] == "truth"]
    assert truth["mmd_p_value"].notna().all() and (truth["decoding"] == "data").all()
