"""Does it carry over? The real model's study set beside the tiny models' (chapter 7, "The experiment on a real LLM").

Both studies are read with the same loaders and judged by the same claims code; this module only lines them up:

- `carry_over_table`: per metric, the base model, nll and dft means of each study and the paired dft - nll
  difference with its 95% interval, and whether the two studies agree on its sign;
- `verdicts_side_by_side`: the claims code's verdict on each claim, from each study's table;
- `open_prompt_habits`: the real model's answers to open prompts before and after fine-tuning with each
  objective: their most common opening, variety, and formulaic habit words (the habit rule of
  `metrics.formulaic_words`, without the split-half topic control of `rules.REAL_MODEL_RULE`).
"""
from __future__ import annotations

import pandas as pd

from dftlab.study.results import compare, headline

# What the chapter compares, in reading order: fit to the data, then the samples' habits and variety.
CARRY_OVER_METRICS = ("validity", "kl", "predictive_entropy", "top_opener_share", "distinct_2", "self_bleu",
                      "seq_rep_4", "loss_scale", "prob_character")


def _base_mean(results: pd.DataFrame, metric: str, base_model: str, decoding: str) -> float:
    rows = results[(results["objective"] == "base") & (results["base_model"] == base_model)
                   & (results["decoding"] == decoding)]
    return float(rows[metric].mean()) if len(rows) else float("nan")


def carry_over_table(studies: dict, metrics=CARRY_OVER_METRICS, decoding: str = "T=1") -> pd.DataFrame:
    """One row per study x metric: base, nll and dft means, dft - nll (paired by seed) with its 95% interval and
    unadjusted p-value, and `agrees`: whether the sign of dft - nll is the same in every study where it is
    significant (None where it is significant in fewer than two).

    `studies` maps a name to a results table (`load_results(...)`); the headline runs of each are compared.
    """
    if not isinstance(studies, dict) or len(studies) < 2:
        raise ValueError("carry_over_table needs a dict of at least two results tables, e.g. "
                         "{'tiny-gpt2': load_results(), 'SmolLM2-135M': load_results(config=real_model_config())}.")
    rows = []
    for name, results in studies.items():
        base_model, steps = headline(results)
        for metric in metrics:
            gap = compare(results, metric, "dft", "nll", decoding, base_model, steps)
            rows.append({"study": name, "metric": metric, "base": _base_mean(results, metric, base_model, decoding),
                         "nll": gap.mean_b, "dft": gap.mean_a, "dft_minus_nll": gap.difference, "ci_low": gap.low,
                         "ci_high": gap.high, "p_value": gap.p_value, "seeds": gap.n})
    table = pd.DataFrame(rows)
    agreement = {}
    for metric, group in table.groupby("metric", sort=False):
        signs = {row.dft_minus_nll > 0 for row in group.itertuples() if row.p_value < 0.05}
        significant = int((group["p_value"] < 0.05).sum())
        agreement[metric] = None if significant < 2 else len(signs) == 1
    table["agrees"] = table["metric"].map(agreement)
    return table


def verdicts_side_by_side(studies: dict) -> pd.DataFrame:
    """The claims code's verdict on each claim of science.md section 2, from each study (one column per study).

    Each study's verdicts are Holm-adjusted within its own family, exactly as its claims file states them. The
    real chat model's habit words are reported beside claim 1 in both and decide it in neither (`rules.CLAIM_1_RULE`).
    """
    from dftlab.study.claims import CLAIM_TEXTS, judge

    table = pd.DataFrame({"claim": list(range(1, len(CLAIM_TEXTS) + 1)), "text": list(CLAIM_TEXTS)})
    for name, results in studies.items():
        table[name] = [item.verdict for item in judge(results).claims]
    return table


def open_prompt_habits(study: dict, top: int = 6, bootstrap: int = 1000) -> pd.DataFrame:
    """How each model answers the open writing prompts: its habitual opening and its formulaic habit words.

    One row per objective (base, nll, dft). Per run (seed): the share of its answers that open with the run's own
    commonest first two words; `top_opening_share` is the mean of that share over seeds and `top_openings` lists
    each seed's opening, because a model can collapse onto a different opening in each seed. Over the answers of
    every seed pooled: `distinct_2`, `same_opener_runs` (three sentences in a row opening with the same word), and
    the formulaic habit words of `metrics.formulaic_words` (`habit_words` counts them, `top_words` lists the `top` most
    over-used), grouped by prompt for the bootstrap. `study` is the real-model study payload
    (`load_study(config=real_model_config())`).
    """
    from dftlab.metrics import distinct_n, formulaic_words, opening_table, same_opener_run_rate

    if "open_responses" not in study:
        raise ValueError("this study has no answers to open prompts; pass the real-model study "
                         "(load_study(config=real_model_config())), not the tiny-model one.")
    objective_of = {row["run_id"]: row["objective"] for row in study["rows"]}
    pooled: dict = {}
    for run_id, by_decoding in study["open_responses"].items():
        for decoding, answers in by_decoding.items():
            entry = pooled.setdefault((objective_of[run_id], decoding), {"texts": [], "groups": [], "openings": []})
            texts = [a["response"] for a in answers]
            entry["texts"] += texts
            entry["groups"] += [a["prompt"] for a in answers]
            entry["openings"].append(opening_table(texts, n_words=2, top=1).iloc[0])
    rows = []
    for (objective, decoding), entry in pooled.items():
        words = formulaic_words(entry["texts"], entry["groups"], bootstrap=bootstrap)
        rows.append({"objective": objective, "decoding": decoding, "answers": len(entry["texts"]),
                     "prompts": len(set(entry["groups"])),
                     "top_openings": " | ".join(o["opening"] for o in entry["openings"]),
                     "top_opening_share": float(sum(o["share"] for o in entry["openings"]) / len(entry["openings"])),
                     "distinct_2": distinct_n(entry["texts"], 2),
                     "same_opener_runs": same_opener_run_rate(entry["texts"]), "habit_words": len(words),
                     "top_words": ", ".join(words["word"].head(top))})
    order = {"base": 0, "nll": 1, "dft": 2}
    return pd.DataFrame(rows).sort_values("objective", key=lambda s: s.map(order)).reset_index(drop=True)
