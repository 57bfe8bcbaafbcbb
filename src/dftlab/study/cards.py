"""The verdicts as a reader meets them (chapter 7): one short card per claim, the full evidence folded away.

A card holds the claim, its verdict, its rule in one sentence (`RULE_IN_ONE_SENTENCE`; the full rule is
`rules.CLAIM_n_RULE`), the two or three decisive numbers in words, and the negative control's verdict. The fold
holds every decisive and context line of the evidence, the full rule and what would flip the verdict. In a notebook
it renders as HTML (on the website, `<details>` is the fold); its plain text, which nbval compares, is the card
without the fold.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass

from dftlab.study.measurement import MODEL_METRICS

RULE_IN_ONE_SENTENCE = {
    1: "Sampled at T = 1, do SFT's or Dynamic FT's stories open with 'Once upon a time,' significantly more often "
       "than its true probability?",
    2: "Are Dynamic FT's samples significantly further from the data than SFT's, both in unigram token frequencies "
       "and in exact KL?",
    3: "Against SFT, is Dynamic FT both sharper (lower predictive entropy) and a worse fit of the whole distribution "
       "(higher KL)?",
    4: "Does SFT fall significantly short of a second sample of the truth, in validity, token frequencies or the top "
       "opener's share?",
    5: "Is SFT closer to the truth's variety than Dynamic FT in at least two of three groups of measures, and "
       "further in none?",
}
# How a card names the measures and the models (the study's column and objective names stay in the fold).
MEASURE_WORDS = {
    "top_opener_share": "share of stories that open with 'Once upon a time,'",
    "token_l2_1": "distance of the unigram frequencies from the true stories' (token L2)",
    "kl": "KL to the true story distribution (nats per story)",
    "predictive_entropy": "predictive entropy (nats per token)",
    "validity": "share of valid stories",
    "top_opener_gap": "gap between the top opener's share and its true probability",
    "distinct_1": "distinct-1", "distinct_2": "distinct-2", "distinct_3": "distinct-3", "self_bleu": "self-BLEU",
    "seq_rep_4": "repeated 4-grams within a story", "zipf_coefficient": "Zipf coefficient",
    "prob_character": "p(target) at the character-name tokens", "cross_entropy": "cross-entropy on true stories",
}
MODEL_WORDS = {"nll": "SFT", "dft": "Dynamic FT", "truth": "the truth", "base": "the base model"}


def _model(name: str) -> str:
    name = str(name)
    if name.startswith("distribution_matching_"):
        return f"distribution matching (lambda {name.rsplit('_', 1)[1]})"
    return MODEL_WORDS.get(name, name)


def _number(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not computed"
    if value != 0 and (abs(value) >= 1000 or abs(value) < 0.001):
        return f"{value:.2g}"
    return f"{value:.3g}"


def _p_words(comparison) -> str:
    adjusted = comparison.adjusted_p is not None and not math.isnan(comparison.adjusted_p)
    p = comparison.adjusted_p if adjusted else comparison.p_value
    if p is None or math.isnan(p):
        return "no test possible"
    kind = "adjusted p" if adjusted else "p, unadjusted"
    if comparison.no_spread:
        return (f"every seed gives the same difference, so only an exact test applies ({kind} {_number(p)}): "
                + ("significant" if p < 0.05 else "too few seeds to decide"))
    return f"{kind} {'< 0.0001' if p < 1e-4 else _number(p)}: " + ("significant" if p < 0.05 else "not significant")


def comparison_in_words(comparison) -> str:
    """One decisive comparison as a sentence: the measure, both sides, and whether it counts."""
    raw = comparison.raw_metric or comparison.metric
    measure = MEASURE_WORDS.get(raw, raw.replace("_", " "))
    if comparison.metric.startswith("|"):
        measure = f"distance from the truth's {measure}"
    where = "" if comparison.decoding in ("", None) or raw in MODEL_METRICS else \
        f" at {comparison.decoding.replace('T=', 'T = ').replace(',top-p=', ', top-p ')}"
    return (f"{measure[0].upper()}{measure[1:]}{where}: {_model(comparison.a)} {_number(comparison.mean_a)} against "
            f"{_model(comparison.b)} {_number(comparison.mean_b)}; {_p_words(comparison)}.")


@dataclass
class VerdictCard:
    number: int
    claim: str
    verdict: str
    rule_sentence: str
    numbers: list
    control: str
    reason: str
    evidence: list
    rule: str
    flip: str

    def __repr__(self) -> str:
        lines = [f"Claim {self.number}: {self.claim}", f"Verdict: {self.verdict}.", f"The rule: {self.rule_sentence}"]
        lines += [f"- {line}" for line in self.numbers] + [f"Negative control: {self.control}"]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        e = html.escape
        numbers = "".join(f"<li>{e(line)}</li>" for line in self.numbers)
        evidence = "".join(f"<li>{e(line)}</li>" for line in self.evidence)
        return (f'<div class="dftlab-verdict-card"><p class="dftlab-card-claim"><strong>Claim {self.number}.</strong> '
                f'{e(self.claim)}</p><p class="dftlab-card-verdict">Verdict: <strong>{e(self.verdict)}</strong></p>'
                f'<p><em>The rule:</em> {e(self.rule_sentence)}</p><ul>{numbers}</ul>'
                f'<p><em>Negative control:</em> {e(self.control)}</p>'
                f'<details><summary>The full evidence</summary><p>{e(self.reason)}</p><ul>{evidence}</ul>'
                f'<p><em>The rule in full:</em> {e(self.rule)}</p><p><em>What would flip it:</em> {e(self.flip)}</p>'
                f'</details></div>')


def verdict_card(item, judgement, numbers: int = 3) -> VerdictCard:
    """The card of one `ClaimVerdict` of `judgement` (from `study.judge`): its `numbers` decisive comparisons with
    the smallest adjusted p-values, in words."""
    from dftlab.study.rules import CLAIMS

    decisions = _decisive(judgement, item.number)
    decisions.sort(key=lambda c: (math.inf if c.adjusted_p is None or math.isnan(c.adjusted_p) else c.adjusted_p))
    if item.number == 5:  # one number from each group of correlated measures, the group's strongest
        from dftlab.study.rules import VARIETY_GROUPS

        decisions = [next(c for c in decisions if (c.raw_metric or c.metric) in measures)
                     for _, measures in VARIETY_GROUPS if any((c.raw_metric or c.metric) in measures for c in decisions)]
    if item.control_verdict:
        control = (f"with two samples of the truth in the models' places the same rule says '{item.control_verdict}'"
                   f" ({'the null verdict, as it must' if item.control_null else 'NOT the null verdict'}).")
    else:
        control = "not computed for these results."
    return VerdictCard(item.number, item.claim, item.verdict, RULE_IN_ONE_SENTENCE[item.number],
                       [comparison_in_words(c) for c in decisions[:numbers]], control, item.reason, item.evidence,
                       CLAIMS[item.number - 1][0], item.flip)



def _decisive(judgement, number: int) -> list:
    if judgement.decisions is None:
        raise ValueError("verdict_card needs a judgement from dftlab.study.judge (it keeps the decisive tests).")
    return list(judgement.decisions.claims[number].decisive.values())
