"""Three levers on a real model's writing, side by side: the fine-tuning data, the objective, and the decoding.

Each lever is a paired comparison: the same prompts answered before and after the lever is pulled. The three cached
studies supply them (`dftlab.antislop`, `dftlab.study.distillation`, `dftlab.study.decoding_levers`), and `levers_side_by_side`
measures every pair the same way, on three measures of the text:

- slop-score's list words per 1,000 words (`metrics.slop_list_word_hits`), as the ratio of the "after" rate to the
  "before" rate (a ratio, not a difference, because the rates of the levers' texts differ several-fold);
- distinct-2 of each answer (distinct word pairs over word pairs, `metrics.text.distinct_n`), averaged over answers,
  counted in whitespace tokens (`metrics.words.whitespace_tokens`), the unit the three studies registered it in;
- the share of answers that open with the commonest first three words of the "before" answers (`antislop.opening`),
  so that the same opening is counted on both sides.

Each change gets a 95% interval from a paired bootstrap over prompts. Where a side holds several answers to a prompt
(the students' seeds), its rate pools their words and its means average them. The texts differ between levers (the
27B teachers' answers are whole, about 1,000 words; the students' and the decodings' are cut to 64 and 256 tokens),
so a lever's change is comparable with another's in direction, not in size.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from dftlab.validation import check_int

MEASURES = ("slop-score's list words (ratio, after / before)", "distinct-2 of each answer (change)",
            "share opening with the before side's commonest three words (change)")
BOOTSTRAP = 2000
DECODING_LABELS = {"T=1": "T = 1 vs the leaderboard's", "T=1, min-p 0.1": "min-p alone (T = 1) vs the leaderboard's",
                   "T=0.7, min-p 0.1, habit bias": "habit bias vs none"}


def _per_prompt(texts_by_prompt: list[list[str]], opening_text: str | None) -> pd.DataFrame:
    """Per prompt: list-word hits and words over its answers, the mean distinct-2, and the share of its answers that
    open with `opening_text`."""
    from dftlab.antislop import opening
    from dftlab.metrics.slop_score import slop_list_word_hits
    from dftlab.metrics.text import distinct_n
    from dftlab.metrics.words import whitespace_tokens

    rows = []
    for texts in texts_by_prompt:
        hits = slop_list_word_hits(texts)
        # in the unit the three studies' distinct-2 was registered with (metrics.words: whitespace_tokens)
        distinct = [distinct_n([t], n=2, split_words=whitespace_tokens) for t in texts if len(whitespace_tokens(t)) > 1]
        rows.append({"listed": sum(h for h, _ in hits), "words": sum(w for _, w in hits),
                     "distinct_2": float(np.mean(distinct)) if distinct else np.nan,
                     "opening": float(np.mean([opening(t) == opening_text for t in texts]))})
    return pd.DataFrame(rows)


def paired_change(before: list[list[str]], after: list[list[str]], bootstrap: int = BOOTSTRAP,
                  seed: int = 0) -> list[dict]:
    """The change from `before` to `after` (one list of answers per prompt, the same prompts in the same order) on
    the three `MEASURES`, each a dict: measure, before, after, change, ci_low, ci_high, prompts, note. A bootstrap
    draw whose "before" side holds no listed word has no ratio, and is left out of that interval."""
    from dftlab.antislop import opening

    bootstrap = check_int(bootstrap, "bootstrap")
    if len(before) != len(after) or not before:
        raise ValueError(f"paired_change needs the answers to the same prompts on both sides, got {len(before)} and "
                         f"{len(after)} prompts; pass one list of answers per prompt, in the same order.")
    commonest = Counter(opening(t) for texts in before for t in texts).most_common(1)[0][0]
    sides = {"before": _per_prompt(before, commonest), "after": _per_prompt(after, commonest)}
    prompts = len(before)
    weights = np.random.default_rng(seed).multinomial(prompts, np.full(prompts, 1 / prompts),
                                                      size=bootstrap).astype(float)
    weights = np.vstack([np.ones(prompts), weights])  # row 0: the observed value

    def rate(frame):
        return (weights @ frame["listed"].to_numpy(float)) / (weights @ frame["words"].to_numpy(float)) * 1000

    def mean(frame, column):
        values = frame[column].to_numpy(float)
        keep = ~np.isnan(values)
        return (weights[:, keep] @ values[keep]) / weights[:, keep].sum(1)

    values = {"list": {side: rate(frame) for side, frame in sides.items()},
              "distinct": {side: mean(frame, "distinct_2") for side, frame in sides.items()},
              "opening": {side: mean(frame, "opening") for side, frame in sides.items()}}
    rows = []
    for measure, key in zip(MEASURES, ("list", "distinct", "opening")):
        b, a = values[key]["before"], values[key]["after"]
        with np.errstate(divide="ignore", invalid="ignore"):  # a draw with no listed word before has no ratio
            change = a / b if key == "list" else a - b
        low, high = np.nanquantile(change[1:], [0.025, 0.975])
        rows.append({"measure": measure, "before": float(b[0]), "after": float(a[0]), "change": float(change[0]),
                     "ci_low": float(low), "ci_high": float(high), "prompts": prompts,
                     "note": f"'{commonest}'" if key == "opening" else ""})
    return rows


def lever_pairs() -> list[dict]:
    """Every comparison of the three cached studies, as {"lever", "comparison", "label" (a short name for a figure),
    "before", "after"} with one list of answers per prompt on each side."""
    from dftlab import antislop
    from dftlab.study import decoding_levers, distillation

    pairs = antislop.paired_answers()
    rows = [{"lever": "data", "comparison": "27B teacher: anti-slop tuned vs original", "label": "27B: anti-slop vs original",
             "before": [[t] for t in pairs["original"]], "after": [[t] for t in pairs["antislop"]]}]
    study = distillation.load_distillation()
    config = study["config"]

    def student(teacher, objective):
        runs = [study["runs"][f"{teacher}-{objective}-seed{s}"]["answers"] for s in config["seeds"]]
        return [list(answers) for answers in zip(*runs)]

    base = [[a] for a in study["runs"]["base"]["answers"]]
    rows += [{"lever": "data", "comparison": "135M student: distilled from the original (nll) vs base",
              "label": "student of the original vs base",
              "before": base, "after": student("original", "nll")},
             {"lever": "data", "comparison": "135M student: from the anti-slop vs the original teacher (nll)",
              "label": "student: anti-slop vs original teacher",
              "before": student("original", "nll"), "after": student("antislop", "nll")},
             {"lever": "objective", "comparison": "135M student of the original: dft vs nll",
              "label": "student of the original: dft vs nll",
              "before": student("original", "nll"), "after": student("original", "dft")},
             {"lever": "objective", "comparison": "135M student of the anti-slop teacher: dft vs nll",
              "label": "student of the anti-slop: dft vs nll",
              "before": student("antislop", "nll"), "after": student("antislop", "dft")}]
    levers = pd.DataFrame(decoding_levers.load_levers()["answers"])
    by_decoding = {d: frame.set_index("prompt_index")["response"] for d, frame in levers.groupby("decoding")}
    prompts = sorted(by_decoding[decoding_levers.BASELINE].index)
    baseline = [[by_decoding[decoding_levers.BASELINE][i]] for i in prompts]
    for decoding in ["T=1", *decoding_levers.NEW_DECODINGS]:
        rows.append({"lever": "decoding", "comparison": f"135M base: {decoding} vs {decoding_levers.BASELINE}",
                     "label": DECODING_LABELS[decoding],
                     "before": baseline, "after": [[by_decoding[decoding][i]] for i in prompts]})
    return rows


def levers_side_by_side(bootstrap: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """One row per comparison and measure (`paired_change`): lever, comparison, label, measure, before, after,
    change, ci_low, ci_high, prompts, note."""
    rows = []
    for pair in lever_pairs():
        for row in paired_change(pair["before"], pair["after"], bootstrap=bootstrap, seed=seed):
            rows.append({"lever": pair["lever"], "comparison": pair["comparison"], "label": pair["label"], **row})
    return pd.DataFrame(rows)
