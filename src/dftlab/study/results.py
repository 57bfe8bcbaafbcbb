"""Reading the study's results (what the chapters call), and the statistics that compare them.

`load_results()` gives the tidy table: one row per run x decoding, one column per metric
(`METRIC_COLUMNS`), with the base model each run started from (`base_model`, `prior`) and its budget
(`steps`). Measurements that do not depend on the decoding (cross-entropy, KL, predictive entropy, loss
scale, p(target)) repeat on every decoding row. Comparisons are paired by seed; `holm` controls the
family-wise error of many of them at once.
"""
from __future__ import annotations

import math

import pandas as pd

from dftlab.study.cache import read_study, results_dir
from dftlab.study.config import TRUTH_DECODING, StudyConfig, default_config
from dftlab.study.measurement import COLUMN_DESCRIPTIONS, ID_COLUMNS, METRIC_COLUMNS, MODEL_METRICS, SUMMARY_METRICS
# The statistics live in `stats` (part of the frozen rules); they are read from here as well.
from dftlab.study.stats import (BOUNDED_SHARES, Comparison, compare, format_p, headline, holm, minimum_p_value,
                                seed_test, share_interval, sign_flip_p_value, t_interval, t_test_p_value)

GROUP_COLUMNS = ["base_model", "steps", "objective", "decoding"]


def study_table(study: dict) -> pd.DataFrame:
    table = pd.DataFrame(study["rows"], columns=study["columns"])
    for column in METRIC_COLUMNS + ("temperature", "top_p", "zipf_exponent"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    table["seed"] = table["seed"].astype(int)
    table["steps"] = table["steps"].astype(int)
    table["base_model"] = table["base_model"].fillna("")
    table["prior"] = table["prior"].fillna("")
    # the number of samples behind each row's shares (validity, top_opener_share): the same for every run and decoding
    config = study.get("config") or {}
    if "num_prompts" in config and "samples_per_prompt" in config:
        table["samples"] = int(config["num_prompts"]) * int(config["samples_per_prompt"])
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


def results_readme() -> str:
    """results/README.md: what the files are and what every column of the table means."""
    lines = ["# Study results", "", "Written by `python -m dftlab.study` (the package `dftlab.study`); do not edit by hand.", "",
             "- `study-<name>-<hash>.json`: the results table (`rows`, one per run x decoding), the p(target) histograms, "
             "the opener/ending frequency tables, the training histories, three sample texts per run and decoding, "
             "the config and `dftlab.__version__`, wrapped with its sha256. `<hash>` is that of the config and the "
             "base models' weights. Read it with `dftlab.study.load_results()` (`quick=True` for the --quick study).",
             "- `summary-<name>-<hash>.csv`: mean and 95% t-interval over seeds of the main metrics.",
             "- `CLAIMS.md` (full study) and `CLAIMS-quick.md`: the verdicts on the claims, generated from the numbers; "
             "`CLAIMS-<name>-<hash>.md` for every other study (the real model's `smollm2`, the `replication`).",
             "- `control-<name>-<hash>.json`: each rule's negative control for that study: second and third samples of "
             "the truth, measured like a model's samples (`dftlab.study.control`), keyed by the truth rows' sha256.",
             "- `study-replication-<hash>.json` and `replication-record-<hash>.json`: the frozen-rule replication (nll "
             "and dft on new seeds 5-9) and its record: the sha256 of the rules it was judged under, its seeds, times "
             "and command (`python -m dftlab.study --replication`).",
             "- `study-medium-prior-<hash>.json` and `study-lambda-50-<hash>.json`: the follow-ups "
             "(`dftlab.study.followups`, `python -m dftlab.study --followups`): nll and dft from the medium prior "
             "tiny-gpt2-medium on seeds 10-14, and the distribution_matching lambda sweep at 50 steps.",
             "- `learning-curve-smollm2-curve-<hash>.json`: SmolLM2's SFT learning curve, one run measured at 64, 128, "
             "192 and 256 steps (`dftlab.study.learning_curve`, `python -m dftlab.study --learning-curve`).",
             "- `chat-samples-<name>-<hash>.json` and `slop-samples-<hash>.json`: the real chat model's answers to open "
             "prompts (`python -m dftlab.chat_samples`) and to slop-score's prompts (`python -m dftlab.study.slop_samples`).",
             "- `antislop-comparison-<hash>.json`: gemma-3-27b-it against its anti-slop fine-tune on slop-score's "
             "prompts, on what the tuning did not target (`dftlab.antislop`, `python -m dftlab.antislop`; chapter 0).",
             "- `decoding-levers-<hash>.json`: SmolLM2's answers to slop-score's 100 prompts at four decodings (two "
             "reused from the slop-score sample set, min-p alone and a habit bias added), each scored by the unmodified "
             "model (`dftlab.study.decoding_levers`, `python -m dftlab.study.decoding_levers`; chapter 0).",
             "- `runs/` (not in git, not in the wheel): one cache file per run; an interrupted study resumes from them.",
             "", "Licence: CC BY 4.0, like the course's prose and figures (see LICENSE).", "",
             "## Columns of the table", "", "| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in COLUMN_DESCRIPTIONS.items()]
    return "\n".join(lines) + "\n"


__all__ = ["study_table", "load_study", "load_results", "load_histograms", "load_choice_tables", "load_histories",
           "load_previews", "load_opener_probabilities", "t_interval", "t_test_p_value", "holm", "summary_table", "format_summary", "Comparison",
           "compare", "headline", "results_readme", "results_dir", "ID_COLUMNS", "TRUTH_DECODING", "BOUNDED_SHARES",
           "format_p", "minimum_p_value", "seed_test", "share_interval", "sign_flip_p_value"]
