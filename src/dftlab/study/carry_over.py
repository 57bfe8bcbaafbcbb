"""Does it carry over? The real model's study set beside the tiny models' (chapter 8, "The course's experiment on a real LLM").

Both studies are read with the same loaders and judged by the same claims code; this module only lines them up:

- `carry_over_table`: per metric, the base model, nll and dft means of each study and the paired comparison of dft
  with nll (sample statistics by their distance to the truth, as the verdicts judge them), Holm-adjusted with the
  verdicts' tests, and whether the two studies agree on its sign;
- `collapse_table`: per seed, what Dynamic FT collapsed onto: its own commonest opener, that opener's share and the
  opener entropy, beside the truth's;
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
# The sample statistics: judged by their distance to the truth, as the claims' rules judge them.
TRUTH_MEASURED = ("top_opener_share", "distinct_2", "self_bleu", "seq_rep_4")


def _base_mean(results: pd.DataFrame, metric: str, base_model: str, decoding: str) -> float:
    rows = results[(results["objective"] == "base") & (results["base_model"] == base_model)
                   & (results["decoding"] == decoding)]
    return float(rows[metric].mean()) if len(rows) else float("nan")


def carry_over_table(studies: dict, metrics=CARRY_OVER_METRICS, decoding: str = "T=1") -> pd.DataFrame:
    """One row per study x metric: the truth (for sample statistics), base, nll and dft means, and the paired
    comparison of dft with nll that the verdicts' rules would make, Holm-adjusted in the verdicts' family.

    - Sample statistics (`TRUTH_MEASURED`: the opener share, distinct-2, self-BLEU, seq-rep-4) are judged by their
      distance to the same seed's truth, as the claims' rules judge them: `compared` is "|x - truth|" and
      `difference` is |dft - truth| - |nll - truth| (negative: dft is closer to the data). A model can be too varied
      as well as too formulaic, so "more variety" is not "better".
    - Measures of the model itself (validity, KL, entropy, loss scale, p(character)) are compared as they are:
      `difference` is dft - nll.
    - `adjusted_p` is Holm's, in one family per study that holds every decisive test of its verdicts
      (`rules.decide`) and every test of this table; a test that is both (dft's KL against nll) counts once.
      `significant` is adjusted_p < 0.05, and `agrees` says whether the studies give a difference that is
      significant in both the same sign (None where it is significant in fewer than two).

    `studies` maps a name to a results table (`load_results(...)`); the headline runs of each are compared.
    """
    from dftlab.study.rules import Decision, adjust, decide

    if not isinstance(studies, dict) or len(studies) < 2:
        raise ValueError("carry_over_table needs a dict of at least two results tables, e.g. "
                         "{'tiny-gpt2': load_results(), 'SmolLM2-135M': load_results(config=real_model_config())}.")
    rows = []
    for name, results in studies.items():
        base_model, steps = headline(results)
        comparisons = {}
        for metric in metrics:
            to_truth = metric in TRUTH_MEASURED
            comparisons[metric] = compare(results, metric, "dft", "nll", decoding, base_model, steps,
                                          distance_to_truth=to_truth)
        verdicts = decide(results, real_model_words=None)
        family = [*verdicts.claims.values(), verdicts.regime, *verdicts.reconstruction.values(),
                  Decision(dict(comparisons))]
        family_size = adjust(family)
        truth = results[results["objective"] == "truth"]
        for metric, gap in comparisons.items():
            tuned = results[(results["base_model"] == base_model) & (results["steps"] == steps)
                            & (results["decoding"] == decoding)]
            rows.append({"study": name, "metric": metric,
                         "compared": f"|{metric} - truth|" if metric in TRUTH_MEASURED else metric,
                         "truth": float(truth[metric].mean()) if metric in TRUTH_MEASURED else float("nan"),
                         "base": _base_mean(results, metric, base_model, decoding),
                         "nll": float(tuned.loc[tuned["objective"] == "nll", metric].mean()),
                         "dft": float(tuned.loc[tuned["objective"] == "dft", metric].mean()),
                         "difference": gap.difference, "ci_low": gap.low, "ci_high": gap.high,
                         "p_value": gap.p_value, "adjusted_p": gap.adjusted_p, "family_size": family_size,
                         "seeds": gap.n})
    table = pd.DataFrame(rows)
    table["significant"] = table["adjusted_p"] < 0.05
    agreement = {}
    for metric, group in table.groupby("metric", sort=False):
        significant = group[group["significant"]]
        agreement[metric] = None if len(significant) < 2 else len({d > 0 for d in significant["difference"]}) == 1
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


def opening_entropy(texts, n_words: int = 2) -> float:
    """The entropy (in bits) of the texts' openings, their first `n_words` words: 0 if every text opens alike."""
    import math
    from collections import Counter

    from dftlab.metrics.formulaic import words

    counts = Counter(" ".join(words(text)[:n_words]) for text in texts)
    total = sum(counts.values())
    return max(0.0, float(-sum(c / total * math.log2(c / total) for c in counts.values()))) if total else float("nan")


def collapse_table(study: dict, results: pd.DataFrame, n_words: int = 2) -> pd.DataFrame:
    """What each run collapsed onto, per seed: one row per objective (base, nll, dft) and seed.

    From the cached samples of TinyTales titles, only the data's top opener's share was kept (`top_opener_share`,
    beside its true probability). From the answers to open prompts, which the payload keeps whole: the run's *own*
    commonest opening (first `n_words` words), its share, and the entropy of the openings in bits (`opening_entropy`),
    so that a model that collapses onto an opening of its own shows up even when it is not the data's.
    """
    from dftlab.metrics.formulaic import opening_table

    if "open_responses" not in study:
        raise ValueError("collapse_table needs the real-model study payload (load_study(config=real_model_config())), "
                         "which keeps the answers to open prompts.")
    info = {row["run_id"]: row for row in study["rows"]}
    share = results.set_index("run_id")["top_opener_share"].groupby(level=0).first()
    rows = []
    for run_id, by_decoding in study["open_responses"].items():
        for decoding, answers in by_decoding.items():
            texts = [a["response"] for a in answers]
            top = opening_table(texts, n_words=n_words, top=1).iloc[0]
            rows.append({"objective": info[run_id]["objective"], "seed": info[run_id]["seed"],
                         "top_opener_share": float(share.get(run_id, float("nan"))),
                         "own_top_opening": top["opening"], "own_top_opening_share": float(top["share"]),
                         "opening_entropy_bits": opening_entropy(texts, n_words), "answers": len(texts)})
    order = {"base": 0, "nll": 1, "dft": 2}
    table = pd.DataFrame(rows)
    return table.sort_values(["objective", "seed"], key=lambda s: s.map(order) if s.name == "objective" else s,
                             ignore_index=True)


def true_opening_entropy(tales, n_words: int = 2) -> float:
    """The entropy (bits) of the first `n_words` words of TinyTales stories, exact: the openers' true probabilities
    grouped by their first words as `opening_entropy` reads them ("In a faraway land," and "In a quiet corner of the
    world," are both "in a")."""
    import math
    from collections import defaultdict

    from dftlab.metrics.formulaic import words

    grouped: dict = defaultdict(float)
    for opener, prob in tales.choice_distribution("opener").items():
        grouped[" ".join(words(opener)[:n_words])] += prob
    return float(-sum(p * math.log2(p) for p in grouped.values() if p > 0))
