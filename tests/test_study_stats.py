"""dftlab.study.stats: confidence intervals, p-values (t and exact sign-flip), Holm and paired comparisons by hand."""

import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest

from dftlab import study
from dftlab.study import stats, compare, t_interval

from conftest import STRONG, WEAK, _table, fake_results


def test_a_difference_without_spread_gets_the_smallest_exact_p_value_not_zero():
    comparison = study.compare(_table([0.9] * 5, [0.2] * 5), "m", "a", "b")
    assert comparison.test == "exact" and comparison.no_spread
    assert comparison.p_value == study.minimum_p_value(5) == 2 / 32 > 0
    assert not comparison.significant  # 5 seeds cannot make it significant, however large
    text = comparison.text()
    assert "p = 0.0625" in text and "the smallest two-sided p-value 5 seeds can give" in text
    assert not re.search(r"p = 0(?![.\d])", text) and "[+0.7, +0.7]" not in text
    # one-sample, against a constant: the same
    assert study.compare(_table([1.0] * 5, [0.0] * 5), "m", "a", 0.33).p_value == 2 / 32
    # no difference at all: p = 1, and the text says so instead of "+0 [+0, +0]"
    same = study.compare(_table([0.5] * 5, [0.5] * 5), "m", "a", "b")
    assert same.p_value == 1.0 and "no difference in any of the 5 seeds" in same.text()
    assert "+0" not in same.text()


def test_the_exact_sign_flip_test_by_brute_force():
    values = [1.0, 2.0, -0.5, 0.25]
    observed = abs(sum(values))
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    expected = sum(abs(sum(s * v for s, v in zip(signs, values))) >= observed - 1e-12
                   for signs in patterns) / len(patterns)
    assert study.sign_flip_p_value(values) == pytest.approx(expected)
    assert study.sign_flip_p_value([0.3] * 7) == study.minimum_p_value(7) == 2 / 128
    assert study.sign_flip_p_value([0.0, 0.0]) == 1.0 and math.isnan(study.sign_flip_p_value([]))
    assert study.seed_test([0.1, 0.2, 0.4]) == (pytest.approx(stats.t_test_p_value([0.1, 0.2, 0.4])), "t")
    assert study.seed_test([0.2, 0.2]) == (0.5, "exact")


@pytest.mark.parametrize("shares", [[1.0] * 5, [0.0] * 5, [0.959, 0.96, 0.95, 0.97, 0.96], [0.0, 1.0, 0.0, 1.0, 1.0],
                                    [0.99], [0.5, 0.51], [0.001, 0.0, 0.002]])
def test_share_intervals_stay_inside_zero_and_one(shares):
    mean, low, high = study.share_interval(shares, 160)
    assert 0.0 <= low <= mean <= high <= 1.0 and high > low
    t_mean, t_low, t_high = study.t_interval(shares)
    if len(shares) > 1 and np.std(shares) > 0.1:  # a bimodal share: the t-interval leaves [0, 1]
        assert t_low < 0 or t_high > 1


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
