import math

import numpy as np
import pytest

from dftlab import scoring_rules as S


def test_scores_by_hand():
    p = [0.2, 0.8]
    assert S.score(p, 1, "log") == pytest.approx(math.log(0.8))
    assert S.score(p, 1, "linear") == pytest.approx(0.8)
    assert S.score(p, 1, "brier") == pytest.approx(-(0.2 ** 2 + 0.2 ** 2))


@pytest.mark.parametrize("rule", ["log", "brier"])
def test_proper_rules_peak_at_the_truth(rule):
    truth = np.array([0.5, 0.3, 0.2])
    rng = np.random.default_rng(0)
    best = S.expected_score(truth, truth, rule)
    for _ in range(200):
        other = rng.dirichlet(np.ones(3))
        assert S.expected_score(other, truth, rule) <= best + 1e-12


def test_linear_rule_prefers_the_mode_over_the_truth():
    truth = np.array([0.5, 0.3, 0.2])
    assert S.expected_score([1.0, 0.0, 0.0], truth, "linear") > S.expected_score(truth, truth, "linear")


def test_binary_curves_peak_where_theory_says():
    table = S.binary_score_curves(0.7)
    peaks = table.loc[table.groupby("rule")["expected score"].idxmax()].set_index("rule")["forecast p"]
    assert peaks["log"] == pytest.approx(0.7, abs=0.01) and peaks["brier"] == pytest.approx(0.7, abs=0.01)
    assert peaks["linear"] > 0.99


@pytest.mark.parametrize("call", [
    lambda: S.score([0.5, 0.6], 0), lambda: S.score([0.5, 0.5], 2), lambda: S.score([0.5, 0.5], 0, "cubic"),
    lambda: S.expected_score([0.5, 0.5], [0.2, 0.3, 0.5]), lambda: S.binary_score_curves(1.0),
])
def test_bad_input(call):
    with pytest.raises(ValueError):
        call()
