"""Scoring rules: which ways of scoring a forecast reward telling the truth? (chapter 2)

A scoring rule S(p, y) rewards a forecast p when outcome y happens. If outcomes come from q, the
expected score is sum_y q_y S(p, y). A rule is *strictly proper* when that expectation is highest
at p = q and nowhere else (Gneiting and Raftery, 2007). The log score is strictly proper, which is
why minimising cross-entropy (maximum likelihood) recovers q. The linear score S(p, y) = p_y, the
one Dynamic FT maximises, is not: its best forecast puts all mass on the most likely outcome.
"""
from __future__ import annotations

import numpy as np

SCORING_RULES = ("log", "linear", "brier")


def _check(probs, name: str) -> np.ndarray:
    array = np.asarray(probs, dtype=float)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D probability vector with at least 2 entries, got shape {array.shape}")
    if (array < 0).any() or not np.isclose(array.sum(), 1.0, atol=1e-6):
        raise ValueError(f"{name} must be non-negative and sum to 1 (it sums to {array.sum():.6f}); normalise it first")
    return array


def score(forecast, outcome: int, rule: str = "log") -> float:
    """S(p, y) for one outcome (higher is better). log: log p_y; linear: p_y; brier: -sum_k (p_k - 1[k = y])^2."""
    p = _check(forecast, "forecast")
    if not isinstance(outcome, (int, np.integer)) or not 0 <= outcome < p.size:
        raise ValueError(f"outcome must be an integer index in [0, {p.size}), got {outcome!r}")
    if rule == "log":
        return float(np.log(p[outcome])) if p[outcome] > 0 else float("-inf")
    if rule == "linear":
        return float(p[outcome])
    if rule == "brier":
        one_hot = np.eye(p.size)[outcome]
        return float(-((p - one_hot) ** 2).sum())
    raise ValueError(f"unknown rule {rule!r}; choose one of {SCORING_RULES}")


def expected_score(forecast, truth, rule: str = "log") -> float:
    """E_{y ~ truth}[S(forecast, y)]: the score a forecaster can expect when outcomes follow `truth`."""
    q = _check(truth, "truth")
    p = _check(forecast, "forecast")
    if p.shape != q.shape:
        raise ValueError(f"forecast and truth must have the same length, got {p.size} and {q.size}")
    return float(sum(q[y] * score(p, y, rule) for y in range(q.size) if q[y] > 0))


def binary_score_curves(q1: float, rules=SCORING_RULES, points: int = 201):
    """Expected score of forecasting (1 - p, p) when the truth is (1 - q1, q1), for p on a grid: a tidy table."""
    import pandas as pd

    if not 0 < q1 < 1:
        raise ValueError(f"q1 must be strictly between 0 and 1, got {q1!r}")
    grid = np.linspace(0.001, 0.999, points)
    truth = np.array([1 - q1, q1])
    rows = [{"forecast p": p, "rule": rule, "expected score": expected_score(np.array([1 - p, p]), truth, rule)}
            for rule in rules for p in grid]
    return pd.DataFrame(rows)
