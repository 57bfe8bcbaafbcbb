"""The statistics that decide the claims: paired comparisons over seeds, their tests and intervals, and Holm.

Part of the frozen rules (with `rules`): `dftlab.study.claims.rules_sha256` hashes this file, so a change here
is a change of the rules and needs a new replication (CLAIMS.md says which hash the replication ran under).

- A comparison pairs two objectives (or one objective and a constant) by seed and tests the per-seed differences
  with a two-sided one-sample t-test. Where every seed gives the same difference the t statistic is undefined:
  the exact sign-flip (permutation) test over seeds takes over, and its p-value is the smallest that many seeds
  can give, 2 / 2^n (0.0625 for 5 seeds), never 0.
- Intervals: a 95% t-interval of the mean per-seed difference, except for the shares of samples (`BOUNDED_SHARES`:
  validity, the top opener's share), whose interval is a Wilson score interval with the effective number of
  samples of the seed-clustered design (Korn and Graubard 1998): n_eff = p(1 - p) / Var(mean of the seeds'
  shares), at most the number of samples, with a t quantile on (seeds - 1) degrees of freedom. It stays inside
  [0, 1]; a difference of two shares takes Newcombe's hybrid score interval, inside [-1, 1].
- Holm's step-down adjustment over a family of tests; a test that decides two claims is one test, counted once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dftlab.study.measurement import MODEL_METRICS
from dftlab.validation import check_number

# Shares of samples (between 0 and 1, with the number of samples per seed in the table's `samples` column).
BOUNDED_SHARES = ("validity", "top_opener_share")
_ATOL = 1e-12  # differences closer than this count as equal (no spread)
_MAX_EXACT_SEEDS = 20  # the exact test enumerates 2^n sign patterns
_P_FLOOR = 1e-16  # a t-test's p-value below this prints as "p < 1e-16" (double precision, not evidence)


def _finite(values) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student t confidence interval of the mean. NaN bounds for fewer than 2 values."""
    from scipy import stats

    check_number(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True, hint="Such as 0.95.")
    values = _finite(values)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def no_spread(values) -> bool:
    """Whether the (finite) values are all equal: no variance for a t-test to use."""
    values = _finite(values)
    return len(values) >= 1 and bool(np.allclose(values, values[0], rtol=0, atol=_ATOL))


def minimum_p_value(n: int) -> float:
    """The smallest two-sided p-value the exact sign-flip test can give with n seeds: 2 / 2^n."""
    return 2.0 / 2 ** n if n >= 1 else math.nan


def sign_flip_p_value(values) -> float:
    """Two-sided exact sign-flip (permutation) test of mean 0 over the per-seed differences.

    Under the null each difference is as likely positive as negative; the p-value is the share of the 2^n sign
    patterns whose |sum| reaches the observed |sum|. It assumes no distribution, and cannot go below
    `minimum_p_value(n)`. All differences 0: p = 1. NaN for no values, or for more than 20 values with some spread
    (2^20 patterns).
    """
    values = _finite(values)
    n = len(values)
    if n == 0:
        return math.nan
    if np.all(np.abs(values) <= _ATOL):
        return 1.0
    if no_spread(values):  # only the two all-same-sign patterns reach the observed |sum|
        return minimum_p_value(n)
    if n > _MAX_EXACT_SEEDS:
        return math.nan
    signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)[None, :]) & 1)
    sums = np.abs(signs @ values)
    observed = abs(float(values.sum()))
    return float(np.mean(sums >= observed - 1e-12 * max(1.0, observed)))


def t_test_p_value(values) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0 (NaN for fewer than 2 values).

    When every value is the same the t statistic is undefined (no spread): the exact sign-flip test answers
    instead, 1 when all are 0 and otherwise `minimum_p_value(n)` (2 / 2^n), never 0. `seed_test` says which ran.
    """
    return seed_test(values)[0]


def seed_test(values) -> tuple[float, str]:
    """(p-value, test): "t" (the t-test), "exact" (the sign-flip test, where the values have no spread) or ""."""
    from scipy import stats

    values = _finite(values)
    if len(values) < 2:
        return math.nan, ""
    if no_spread(values):
        return sign_flip_p_value(values), "exact"
    return float(stats.ttest_1samp(values, 0.0).pvalue), "t"


def holm(p_values) -> list[float]:
    """Holm's step-down adjustment: adjusted p-values that control the family-wise error rate.

    Sorted ascending, the k-th smallest of m p-values is multiplied by (m - k + 1); the running maximum keeps
    the order, and values are capped at 1. NaN p-values stay NaN and do not count towards m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full(len(p), math.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m, running = len(order), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


def wilson_interval(share: float, samples: float, z: float) -> tuple[float, float]:
    """The Wilson score interval of a share observed on `samples` samples, at quantile z; inside [0, 1]."""
    if not samples > 0 or math.isnan(share):
        return math.nan, math.nan
    denominator = 1 + z * z / samples
    centre = (share + z * z / (2 * samples)) / denominator
    half = z / denominator * math.sqrt(max(share * (1 - share), 0.0) / samples + z * z / (4 * samples * samples))
    return max(0.0, centre - half), min(1.0, centre + half)


def share_interval(shares, samples: int, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of per-seed shares of `samples` samples each: a Wilson interval on the effective number of
    samples of the seed-clustered design (the module docstring), so it stays inside [0, 1]."""
    from scipy import stats

    shares = _finite(shares)
    if len(shares) == 0 or not samples or samples < 1:
        return math.nan, math.nan, math.nan
    mean = float(np.clip(shares.mean(), 0.0, 1.0))
    k, total = len(shares), len(shares) * samples
    if k >= 2:
        variance = float(shares.var(ddof=1)) / k
        z = float(stats.t.ppf(0.5 + confidence / 2, k - 1))
    else:
        variance, z = 0.0, float(stats.norm.ppf(0.5 + confidence / 2))
    effective = min(mean * (1 - mean) / variance, total) if variance > 0 and 0 < mean < 1 else total
    low, high = wilson_interval(mean, effective, z)
    return mean, low, high


@dataclass
class Comparison:
    """A difference a - b of one metric, paired by seed, with its interval and two-sided p-value.

    `adjusted_p` is set by `holm` over a family of comparisons; `significant` uses it when set. `test` is "t" or
    "exact" (`seed_test`); `interval` is "t" or "wilson" (for a share of samples: `share_interval`), and for a
    Wilson interval `a_low`/`a_high` bound a's mean share. `key` names the test, so that one test deciding
    two claims enters a Holm family once.
    """
    metric: str
    a: str
    b: str
    decoding: str
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    n: int
    p_value: float = math.nan
    adjusted_p: float | None = None
    raw_metric: str = ""  # the table column (metric may be a label such as "|kl - truth|")
    test: str = "t"
    interval: str = "t"
    a_low: float = math.nan
    a_high: float = math.nan
    samples: int = 0  # samples per seed behind a Wilson interval
    key: tuple = field(default=(), compare=False)

    @property
    def significant(self) -> bool:
        p = self.p_value if self.adjusted_p is None else self.adjusted_p
        return bool(p < 0.05)

    @property
    def above(self) -> bool:  # a is significantly larger than b
        return self.significant and self.difference > 0

    @property
    def below(self) -> bool:
        return self.significant and self.difference < 0

    @property
    def no_spread(self) -> bool:
        return self.test == "exact"

    def text(self, digits: int = 3) -> str:
        where = "" if (self.raw_metric or self.metric) in MODEL_METRICS else f" ({self.decoding})"  # model metrics ignore the decoding
        if self.interval == "wilson":
            a = (f"{self.a} {self.mean_a:.3f} [{self.a_low:.3f}, {self.a_high:.3f}]" if not math.isnan(self.a_low)
                 else f"{self.a} {self.mean_a:.3f}")
            b = f"{self.b} {self.mean_b:.3f}"
        else:
            a, b = f"{self.a} {self.mean_a:.{digits}g}", f"{self.b} {self.mean_b:.{digits}g}"
        seeds = f"{self.n} seed{'s' if self.n != 1 else ''}"
        p = "" if math.isnan(self.p_value) else p_text(self.p_value, 3 if self.no_spread else 2)
        if self.adjusted_p is not None and not math.isnan(self.adjusted_p):
            p += f" (Holm-adjusted {format_p(self.adjusted_p)})"
        if self.n == 0:
            return f"{self.metric}{where}: {a} vs {b}; no seed to pair"
        if self.no_spread and abs(self.difference) <= _ATOL:
            return f"{self.metric}{where}: {a} vs {b}; no difference in any of the {seeds}, exact test: {p}"
        places = interval_places(self.low, self.high, digits) if not math.isnan(self.low) else digits
        difference = signed(self.difference, places)
        if self.no_spread:
            interval = (f", 95% Wilson interval {interval_text(self.low, self.high, digits)} over "
                        f"{self.samples * self.n:,} samples" if self.interval == "wilson" else "")
            return (f"{self.metric}{where}: {a} vs {b}; difference {difference} in every one of the {seeds}{interval}; "
                    f"no spread, so the exact sign-flip test: {p}, the smallest two-sided p-value {seeds} can give")
        if math.isnan(self.low):
            interval = "n/a (one seed)"
        elif self.interval == "wilson":
            interval = (f"95% Wilson interval {interval_text(self.low, self.high, digits)} (seed-clustered, "
                        f"{self.samples * self.n:,} samples)")
        else:
            interval = f"95% CI {interval_text(self.low, self.high, digits)}"
        return f"{self.metric}{where}: {a} vs {b}; difference {difference}, {interval}" + (
            f", {p}" if p else "") + f", {seeds}"


def signed(value: float, digits: int = 3) -> str:
    """A difference with its sign, "0" (no sign) for zero."""
    return "0" if abs(value) <= _ATOL else f"{value:+.{digits}g}"


def interval_places(low: float, high: float, digits: int = 3) -> int:
    """The significant digits (from `digits` up to 6) at which the two ends of an interval print differently."""
    for places in range(digits, 7):
        if signed(low, places) != signed(high, places):
            return places
    return 6


def interval_text(low: float, high: float, digits: int = 3) -> str:
    """"[low, high]" with signs, with more digits (up to 6) where the two ends would print the same."""
    places = interval_places(low, high, digits)
    return f"[{signed(low, places)}, {signed(high, places)}]"


def p_text(p: float, digits: int = 2) -> str:
    """"p = 0.012", or "p < 1e-16" for a t-test's p-value below 1e-16: never "p = 0"."""
    return f"p < {_P_FLOOR:.0e}" if p < _P_FLOOR else f"p = {p:.{digits}g}"


def format_p(p: float) -> str:
    """A p-value as text: two significant digits, never "0" (a t-test's p below 1e-16 prints as "below 1e-16")."""
    if math.isnan(p):
        return "n/a"
    if p < _P_FLOOR:
        return f"below {_P_FLOOR:.0e}"
    return f"{p:.2g}"


def _values(results, objective, decoding, metric, base_model, steps) -> pd.Series:
    rows = results[results["objective"] == objective]
    if objective == "truth":
        return rows.set_index("seed")[metric]
    rows = rows[(rows["decoding"] == decoding) & (rows["base_model"] == base_model)]
    if objective != "base":
        rows = rows[rows["steps"] == steps]
    return rows.set_index("seed")[metric]


def _samples(results, objective, decoding, base_model, steps) -> int:
    """Samples per seed behind a share (the `samples` column of `study_table`), 0 where the table has none."""
    if "samples" not in results:
        return 0
    values = _values(results, objective, decoding, "samples", base_model, steps).dropna()
    return int(values.min()) if len(values) else 0


def headline(results: pd.DataFrame) -> tuple[str, int]:
    """(base model, steps) of the headline fine-tunings: the strong prior at the budget most runs use."""
    tuned = results[(results["kind"] == "finetuned") & (results["prior"] == "strong")]
    if tuned.empty:
        raise ValueError("the results have no fine-tuning of the strong-prior base model; pass a table from "
                         "load_results().")
    return str(tuned["base_model"].iloc[0]), int(tuned["steps"].mode().iloc[0])


def compare(results: pd.DataFrame, metric: str, a: str, b: str | float, decoding: str = "T=1",
            base_model: str | None = None, steps: int | None = None, b_name: str = "the reference value",
            distance_to_truth: bool = False, b_base_model: str | None = None, interval: str = "t") -> Comparison:
    """Compare objective `a` with objective `b` (or with a constant) on `metric`, paired by seed.

    The seed fixes the data split, the data order and the sampling stream, so a - b within one seed
    removes the variation they share; the interval is a t-interval over the per-seed differences and the
    p-value a two-sided t-test (the exact sign-flip test where every seed gives the same difference). The
    "truth" rows have one decoding ("data") and serve every decoding; "base" rows are the base model.
    `base_model` and `steps` default to the headline runs (`headline`); `b_base_model` compares with a
    run from another base. A number `b` is a fixed reference (named `b_name`), e.g. an exact probability.
    With `distance_to_truth=True`, each value is first replaced by its distance to the same seed's truth
    row, |metric - truth|: "closer to the truth" then reads as "smaller", whichever side it lies on.
    `interval="auto"` gives a share of samples (`BOUNDED_SHARES`, where the table has a `samples` column) its
    seed-clustered Wilson interval instead of the t-interval; the default "t" keeps the t-interval everywhere.
    """
    missing = [column for column in ("objective", "decoding", "seed", "base_model", "steps", metric)
               if column not in results]
    if missing:
        raise ValueError(f"compare: results has no column(s) {missing}; pass a table from load_results() and a metric "
                         f"among its columns.")
    if interval not in ("t", "auto"):
        raise ValueError(f"compare(interval={interval!r}) must be 't' or 'auto'.")
    default_base, default_steps = headline(results)
    base_model = default_base if base_model is None else base_model
    steps = default_steps if steps is None else steps
    first = _values(results, a, decoding, metric, base_model, steps)
    truth = _values(results, "truth", decoding, metric, base_model, steps) if distance_to_truth else None
    if truth is not None:
        first = (first - truth).abs().dropna()
    other_base = base_model if b_base_model is None else b_base_model
    if isinstance(b, str):
        second = _values(results, b, decoding, metric, other_base, steps)
        if truth is not None:
            second = (second - truth).abs().dropna()
        seeds = sorted(set(first.dropna().index) & set(second.dropna().index))
        differences = [first[s] - second[s] for s in seeds]
        mean_b, label_b = float(second[seeds].mean()) if seeds else math.nan, b
        if b_base_model is not None and b_base_model != base_model:
            label_b = f"{b} from {b_base_model}"
    else:
        seeds = list(first.dropna().index)
        differences = [first[s] - b for s in seeds]
        mean_b, label_b = float(b), b_name
    mean, low, high = t_interval(differences)
    p_value, test = seed_test(differences)
    comparison = Comparison(f"|{metric} - truth|" if distance_to_truth else metric, a, label_b, decoding,
                            float(first[seeds].mean()) if seeds else math.nan, mean_b, mean, low, high,
                            len(differences), p_value, raw_metric=metric, test=test or "t",
                            key=("compare", metric, a, str(b), "" if metric in MODEL_METRICS else decoding,
                                 base_model, steps, other_base, distance_to_truth))
    samples = _samples(results, a, decoding, base_model, steps)
    if interval == "auto" and metric in BOUNDED_SHARES and not distance_to_truth and samples and seeds:
        _wilson(comparison, results, first, seeds, b, decoding, other_base, steps, samples)
    return comparison


def _wilson(comparison: Comparison, results, first, seeds, b, decoding, base_model, steps, samples) -> None:
    """Give a comparison of a share of samples its Wilson interval (of a's share, and of the difference)."""
    _, a_low, a_high = share_interval(first[seeds], samples)
    mean_a = float(first[seeds].mean())
    if isinstance(b, str):
        second = _values(results, b, decoding, comparison.raw_metric, base_model, steps)[seeds]
        b_samples = _samples(results, b, decoding, base_model, steps) or samples
        _, b_low, b_high = share_interval(second, b_samples)
        mean_b = float(second.mean())
        # Newcombe's hybrid score interval of a difference of two shares, from each share's interval
        low = comparison.difference - math.sqrt((mean_a - a_low) ** 2 + (b_high - mean_b) ** 2)
        high = comparison.difference + math.sqrt((a_high - mean_a) ** 2 + (mean_b - b_low) ** 2)
    else:
        low, high = a_low - b, a_high - b
    comparison.low, comparison.high = max(-1.0, low), min(1.0, high)
    comparison.a_low, comparison.a_high, comparison.interval, comparison.samples = a_low, a_high, "wilson", samples


__all__ = ["BOUNDED_SHARES", "Comparison", "compare", "format_p", "headline", "holm", "interval_text", "minimum_p_value",
           "interval_places", "no_spread", "p_text", "seed_test", "share_interval", "sign_flip_p_value", "signed", "t_interval",
           "t_test_p_value", "wilson_interval"]
