"""Reading the study's results (what the chapters call), and the statistics that compare them.

`load_results()` gives the tidy table: one row per run x decoding, one column per metric
(`METRIC_COLUMNS`), with the base model each run started from (`base_model`, `prior`) and its budget
(`steps`). Measurements that do not depend on the decoding (cross-entropy, KL, predictive entropy, loss
scale, p(target)) repeat on every decoding row. Comparisons are paired by seed; `holm` controls the
family-wise error of many of them at once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dftlab.study.cache import read_study, results_dir
from dftlab.study.config import TRUTH_DECODING, StudyConfig, default_config
from dftlab.study.measurement import COLUMN_DESCRIPTIONS, ID_COLUMNS, METRIC_COLUMNS, MODEL_METRICS, SUMMARY_METRICS
from dftlab.validation import check_number

GROUP_COLUMNS = ["base_model", "steps", "objective", "decoding"]


def study_table(study: dict) -> pd.DataFrame:
    table = pd.DataFrame(study["rows"], columns=study["columns"])
    for column in METRIC_COLUMNS + ("temperature", "top_p", "zipf_exponent"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    table["seed"] = table["seed"].astype(int)
    table["steps"] = table["steps"].astype(int)
    table["base_model"] = table["base_model"].fillna("")
    table["prior"] = table["prior"].fillna("")
    return table


def load_study(quick: bool = False, config: StudyConfig | None = None, out=None) -> dict:
    """The cached study payload (table rows, histograms, choice tables, histories, config, version)."""
    return read_study(default_config(quick) if config is None else config, out)


def load_results(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The results table, one row per run x decoding, one column per metric (instant: read from the cache)."""
    return study_table(load_study(quick, config, out))


def _identity(study: dict) -> dict:
    return {row["run_id"]: row for row in study["rows"]}


def _id_fields(info: dict) -> dict:
    return {k: info[k] for k in ("run_id", "kind", "base_model", "steps", "objective", "seed")}


def load_histograms(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """Histograms of p(target token) on the validation stories after training, one row per run x bin.

    Columns: run_id, kind, base_model, steps, objective, seed, bin_left, bin_right, count, share (of that
    run's tokens). DFT pushes mass to both ends; NLL keeps the middle.
    """
    study = load_study(quick, config, out)
    identity = _identity(study)
    rows = []
    for run_id, histogram in study["histograms"].items():
        total = sum(histogram["counts"]) or 1
        for left, right, count in zip(histogram["edges"][:-1], histogram["edges"][1:], histogram["counts"]):
            rows.append({**_id_fields(identity[run_id]), "bin_left": left, "bin_right": right, "count": count,
                         "share": count / total})
    return pd.DataFrame(rows)


def load_choice_tables(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The opener and ending frequency tables of every run x decoding, long format.

    Columns: run_id, kind, base_model, steps, objective, seed, decoding, choice, option, count, sample_freq,
    true_prob, ratio (as `dftlab.metrics.choice_frequency_table`).
    """
    study = load_study(quick, config, out)
    identity = _identity(study)
    rows = []
    for run_id, by_decoding in study["choice_tables"].items():
        for decoding, tables in by_decoding.items():
            for choice, records in tables.items():
                for record in records:
                    rows.append({**_id_fields(identity[run_id]), "decoding": decoding, "choice": choice, **record})
    table = pd.DataFrame(rows)
    for column in ("sample_freq", "true_prob", "ratio"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    return table


def load_histories(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The training history (`TrainResult.history`) of every fine-tuning run, with its identity columns."""
    study = load_study(quick, config, out)
    identity = _identity(study)
    frames = [pd.DataFrame(history).assign(**_id_fields(identity[run_id]))
              for run_id, history in study["histories"].items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def load_previews(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """Three sample texts of every run x decoding. Columns: the identity columns, decoding, index, text."""
    study = load_study(quick, config, out)
    identity = _identity(study)
    rows = [{**_id_fields(identity[run_id]), "decoding": decoding, "index": i, "text": text}
            for run_id, by_decoding in study["previews"].items()
            for decoding, texts in by_decoding.items() for i, text in enumerate(texts)]
    return pd.DataFrame(rows)


def load_opener_probabilities(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """Each model's exact opener distribution (no sampling) at T = 1, 0.75 and 0.5, with the truth beside it.

    Columns: the identity columns, temperature, opener, share (mean over the run's prompts), true_prob.
    """
    from dftlab.tinytales import TinyTales

    study = load_study(quick, config, out)
    identity = _identity(study)
    truth = TinyTales(zipf_exponent=study["config"]["zipf_exponent"]).choice_distribution("opener")
    rows = [{**_id_fields(identity[run_id]), "temperature": float(temperature), "opener": opener, "share": share,
             "true_prob": truth[opener]}
            for run_id, by_temperature in study.get("opener_probs", {}).items()
            for temperature, shares in by_temperature.items() for opener, share in shares.items()]
    return pd.DataFrame(rows)


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student t confidence interval of the mean. NaN bounds for fewer than 2 values."""
    from scipy import stats

    check_number(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True, hint="Such as 0.95.")
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def t_test_p_value(values) -> float:
    """Two-sided p-value of the one-sample t-test of mean 0 (NaN for fewer than 2 values; 0 or 1 when all are equal)."""
    from scipy import stats

    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(values) < 2:
        return math.nan
    if np.allclose(values, values[0], rtol=0, atol=1e-12):  # no spread: the t statistic is undefined
        return 1.0 if abs(values[0]) <= 1e-12 else 0.0
    return float(stats.ttest_1samp(values, 0.0).pvalue)


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


def summary_table(results: pd.DataFrame, metrics=SUMMARY_METRICS, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over seeds of each metric, per base model x budget x objective x decoding (long).

    Columns: base_model, steps, objective, decoding, metric, mean, ci_low, ci_high, n (seeds).
    """
    missing = [m for m in list(metrics) + GROUP_COLUMNS if m not in results.columns]
    if missing:
        raise ValueError(f"summary_table: results has no column(s) {missing}; pass a table from load_results().")
    rows = []
    for (base_model, steps, objective, decoding), group in results.groupby(GROUP_COLUMNS, sort=False):
        for metric in metrics:
            values = group[metric].dropna()
            mean, low, high = t_interval(values, confidence)
            rows.append({"base_model": base_model, "steps": steps, "objective": objective, "decoding": decoding,
                         "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": len(values)})
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame, metrics=None, base_model: str | None = None, steps: int | None = None,
                   digits: int = 3) -> pd.DataFrame:
    """A wide, readable view of `summary_table`: one row per objective x decoding, cells "mean ± half-width"."""
    table = summary
    if base_model is not None:
        table = table[table["base_model"].isin([base_model, ""])]
    if steps is not None:
        table = table[table["steps"].isin([steps, 0])]
    if metrics is not None:
        table = table[table["metric"].isin(metrics)]

    def cell(row):
        if math.isnan(row["mean"]):
            return ""
        if math.isnan(row["ci_low"]):
            return f"{row['mean']:.{digits}g}"
        return f"{row['mean']:.{digits}g} ± {(row['ci_high'] - row['ci_low']) / 2:.2g}"

    table = table.assign(cell=table.apply(cell, axis=1))
    order = list(dict.fromkeys(table["metric"]))
    wide = table.pivot_table(index=GROUP_COLUMNS, columns="metric", values="cell", aggfunc="first", sort=False)
    return wide[[m for m in order if m in wide.columns]]


@dataclass
class Comparison:
    """A difference a - b of one metric, paired by seed, with its t-interval and two-sided p-value.

    `adjusted_p` is set by `holm` over a family of comparisons; `significant` uses it when set.
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

    def text(self, digits: int = 3) -> str:
        interval = "n/a (one seed)" if math.isnan(self.low) else f"[{self.low:+.{digits}g}, {self.high:+.{digits}g}]"
        where = "" if (self.raw_metric or self.metric) in MODEL_METRICS else f" ({self.decoding})"  # model metrics ignore the decoding
        p = "" if math.isnan(self.p_value) else f", p = {self.p_value:.2g}"
        if self.adjusted_p is not None and not math.isnan(self.adjusted_p):
            p += f" (Holm-adjusted {self.adjusted_p:.2g})"
        return (f"{self.metric}{where}: {self.a} {self.mean_a:.{digits}g} vs {self.b} {self.mean_b:.{digits}g}; "
                f"difference {self.difference:+.{digits}g}, 95% CI {interval}{p}, {self.n} seeds")


def _values(results, objective, decoding, metric, base_model, steps) -> pd.Series:
    rows = results[results["objective"] == objective]
    if objective == "truth":
        return rows.set_index("seed")[metric]
    rows = rows[(rows["decoding"] == decoding) & (rows["base_model"] == base_model)]
    if objective != "base":
        rows = rows[rows["steps"] == steps]
    return rows.set_index("seed")[metric]


def headline(results: pd.DataFrame) -> tuple[str, int]:
    """(base model, steps) of the headline fine-tunings: the strong prior at the budget most runs use."""
    tuned = results[(results["kind"] == "finetuned") & (results["prior"] == "strong")]
    if tuned.empty:
        raise ValueError("the results have no fine-tuning of the strong-prior base model; pass a table from "
                         "load_results().")
    return str(tuned["base_model"].iloc[0]), int(tuned["steps"].mode().iloc[0])


def compare(results: pd.DataFrame, metric: str, a: str, b: str | float, decoding: str = "T=1",
            base_model: str | None = None, steps: int | None = None, b_name: str = "the reference value",
            distance_to_truth: bool = False, b_base_model: str | None = None) -> Comparison:
    """Compare objective `a` with objective `b` (or with a constant) on `metric`, paired by seed.

    The seed fixes the data split, the data order and the sampling stream, so a - b within one seed
    removes the variation they share; the interval is a t-interval over the per-seed differences. The
    "truth" rows have one decoding ("data") and serve every decoding; "base" rows are the base model.
    `base_model` and `steps` default to the headline runs (`headline`); `b_base_model` compares with a
    run from another base. A number `b` is a fixed reference (named `b_name`), e.g. an exact probability.
    With `distance_to_truth=True`, each value is first replaced by its distance to the same seed's truth
    row, |metric - truth|: "closer to the truth" then reads as "smaller", whichever side it lies on.
    """
    missing = [column for column in ("objective", "decoding", "seed", "base_model", "steps", metric)
               if column not in results]
    if missing:
        raise ValueError(f"compare: results has no column(s) {missing}; pass a table from load_results() and a metric "
                         f"among its columns.")
    default_base, default_steps = headline(results)
    base_model = default_base if base_model is None else base_model
    steps = default_steps if steps is None else steps
    first = _values(results, a, decoding, metric, base_model, steps)
    truth = _values(results, "truth", decoding, metric, base_model, steps) if distance_to_truth else None
    if truth is not None:
        first = (first - truth).abs().dropna()
    if isinstance(b, str):
        second = _values(results, b, decoding, metric, base_model if b_base_model is None else b_base_model, steps)
        if truth is not None:
            second = (second - truth).abs().dropna()
        seeds = sorted(set(first.index) & set(second.index))
        differences = [first[s] - second[s] for s in seeds]
        mean_b, label_b = float(second[seeds].mean()) if seeds else math.nan, b
        if b_base_model is not None and b_base_model != base_model:
            label_b = f"{b} from {b_base_model}"
    else:
        seeds = list(first.index)
        differences = [first[s] - b for s in seeds]
        mean_b, label_b = float(b), b_name
    mean, low, high = t_interval(differences)
    return Comparison(f"|{metric} - truth|" if distance_to_truth else metric, a, label_b, decoding,
                      float(first[seeds].mean()) if seeds else math.nan, mean_b, mean, low, high,
                      len([d for d in differences if not math.isnan(d)]), t_test_p_value(differences),
                      raw_metric=metric)


def results_readme() -> str:
    """results/README.md: what the files are and what every column of the table means."""
    lines = ["# Study results", "", "Written by `python -m dftlab.study` (the package `dftlab.study`); do not edit by hand.", "",
             "- `study-<name>-<hash>.json`: the results table (`rows`, one per run x decoding), the p(target) histograms, "
             "the opener/ending frequency tables, the training histories, three sample texts per run and decoding, "
             "the config and `dftlab.__version__`, wrapped with its sha256. `<hash>` is that of the config and the "
             "base models' weights. Read it with `dftlab.study.load_results()` (`quick=True` for the --quick study).",
             "- `summary-<name>-<hash>.csv`: mean and 95% t-interval over seeds of the main metrics.",
             "- `CLAIMS.md` (full study) and `CLAIMS-quick.md`: the verdicts on the claims, generated from the numbers.",
             "- `runs/` (not in git, not in the wheel): one cache file per run; an interrupted study resumes from them.",
             "", "Licence: CC BY 4.0, like the course's prose and figures (see LICENSE).", "",
             "## Columns of the table", "", "| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in COLUMN_DESCRIPTIONS.items()]
    return "\n".join(lines) + "\n"


__all__ = ["study_table", "load_study", "load_results", "load_histograms", "load_choice_tables", "load_histories",
           "load_previews", "load_opener_probabilities", "t_interval", "t_test_p_value", "holm", "summary_table", "format_summary", "Comparison",
           "compare", "headline", "results_readme", "results_dir", "ID_COLUMNS", "TRUTH_DECODING"]
