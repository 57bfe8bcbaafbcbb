"""The claims of science.md section 2, decided by the numbers: one small function per claim.

Each claim has a `rule` (stated in prose in chapter 7 and in CLAIMS.md), a set of *decisive* comparisons
and a decision. All decisive comparisons of all claims form one family whose p-values are adjusted with
Holm's method, so the chance of any false "significant" among them stays under 5%. Sample statistics are
judged by their distance to the truth, |model - truth| (per seed), never by "more is better": a model can
be too varied as well as too formulaic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dftlab.study.config import TOP_OPENER, TRUTH_DECODING, default_config
from dftlab.study.results import Comparison, compare, headline, holm, study_table, t_interval, t_test_p_value

VERDICTS = ("true", "false", "true for Dynamic FT, but not what the original post said", "not supported at this scale")
CLAIM_TEXTS = (
    "LLMs overuse familiar, formulaic tokens and phrases, and that limits natural writing.",
    "A model trained with DFT fails to match the token distribution of its training data, which makes its writing stilted.",
    "DFT optimises one aspect of performance instead of the whole language distribution.",
    "SFT does not always capture the nuances of the data distribution.",
    "Maximum likelihood training gives more natural, more varied writing than DFT.",
)
VARIETY_MEASURES = ("distinct_1", "distinct_2", "distinct_3", "self_bleu", "zipf_coefficient", "seq_rep_4")


@dataclass(frozen=True)
class ClaimProvenance:
    """Where one claim came from and where the course tests it (chapter 7's provenance table)."""

    blog: str          # what Rosmine's post said on the point (paraphrased; the post is about Distribution FT)
    tested: str        # what the course measures to decide it (the full rule is the claim's *_RULE)
    chapters: tuple    # the chapters of the book that check it


# One entry per claim of CLAIM_TEXTS, in order. CLAIM_TEXTS is what the news rewrite said.
CLAIM_PROVENANCE = (
    ClaimProvenance(
        "Agrees, as its starting point: fine-tuned models write formulaically. Its example is SFT samples that open "
        "three sentences in a row with the same word far more often than human text does.",
        "The share of stories that SFT and Dynamic FT open with the top opener, against its true probability, under "
        "each decoding; and formulaic habit words in a real instruction-tuned chat model.",
        (0, 5, 7)),
    ClaimProvenance(
        "Says it of SFT, not of its DFT: models trained with SFT fail to match the distribution of their training "
        "data (by MMD, a judge's score and token L2), and Distribution Fine Tuning is the fix.",
        "Dynamic FT against SFT: unigram token-L2 between samples and true stories for the same prompts, and the "
        "exact KL from the data to the model.",
        (5, 6, 7)),
    ClaimProvenance(
        "Nothing of the kind: its DFT, Distribution Fine Tuning, is built to match the whole output distribution.",
        "Dynamic FT against SFT: is its exact KL larger and its predictive entropy smaller (sharper, worse fit)?",
        (4, 5, 7)),
    ClaimProvenance(
        "Agrees; it is the post's central claim: even the best SFT setting it tried (its 'super-baseline') stays "
        "measurably away from the data's distribution.",
        "SFT against a second sample of the truth: validity, unigram token-L2, and the top opener's distance from "
        "its true probability.",
        (3, 6, 7)),
    ClaimProvenance(
        "The opposite: it reports its Distribution Fine Tuning closer to human text than the SFT super-baseline, so "
        "going beyond maximum likelihood is its point.",
        "SFT against Dynamic FT: the distance to the truth of six measures of variety (distinct-1, -2 and -3, "
        "self-BLEU, the Zipf coefficient, seq-rep-4).",
        (2, 5, 7)),
)

# What Rosmine's post reported (chapter 7), against its SFT "super-baseline" (the best SFT over hyperparameters and
# samplers). Its "DFT" is Distribution Fine Tuning, which is unpublished. MMD: Gaussian RBF over Llama-embed-nemotron-8B
# embeddings; JMQ: 2 x the win rate against human text by a judge model (1.0 = indistinguishable); token L2 over
# 1-gram frequency vectors. The post's appendix lists other 14B numbers than its main table (a row of its own here).
ROSMINE_REPORTED = (
    {"model": "Qwen3 14B", "method": "Distribution FT", "MMD": 0.018, "JMQ": 0.80, "token L2": 0.0036},
    {"model": "Qwen3 14B", "method": "SFT super-baseline", "MMD": 0.037, "JMQ": 0.49, "token L2": 0.0039},
    {"model": "Qwen3 14B", "method": "Distribution FT (appendix)", "MMD": math.nan, "JMQ": 0.73, "token L2": 0.0039},
    {"model": "Qwen3 4B", "method": "Distribution FT", "MMD": 0.025, "JMQ": 0.40, "token L2": 0.0042},
    {"model": "Qwen3 4B", "method": "SFT super-baseline", "MMD": 0.047, "JMQ": 0.27, "token L2": 0.0040},
)


@dataclass
class ClaimVerdict:
    number: int
    claim: str
    verdict: str
    reason: str
    evidence: list
    flip: str
    rule: str = ""


@dataclass
class Context:
    """What every claim needs to know about the table: the headline runs and the decodings."""
    results: pd.DataFrame
    base_model: str
    steps: int
    decodings: list
    weak_model: str | None
    budgets: list
    true_share: float
    # The real chat model's formulaic habit words (REAL_MODEL_RULE), or None where its sample set is missing.
    real_model_words: pd.DataFrame | None = None

    @property
    def first(self) -> str:
        return self.decodings[0]

    def compare(self, metric, a, b, decoding=None, **kwargs) -> Comparison:
        kwargs.setdefault("base_model", self.base_model)
        kwargs.setdefault("steps", self.steps)
        return compare(self.results, metric, a, b, self.first if decoding is None else decoding, **kwargs)


def context_of(results: pd.DataFrame) -> Context:
    for needed in ("nll", "dft", "truth"):
        if not (results["objective"] == needed).any():
            raise ValueError(f"judge_claims needs the {needed!r} rows; run the study with that objective.")
    base_model, steps = headline(results)
    decodings = [d for d in dict.fromkeys(results["decoding"]) if d != TRUTH_DECODING]
    weak = results.loc[results["prior"] == "weak", "base_model"]
    budgets = sorted(set(results.loc[(results["kind"] == "finetuned") & (results["base_model"] == base_model)
                                     & (results["objective"] == "nll"), "steps"]))
    true_share = float(results.loc[results["objective"] == "truth", "top_opener_true_prob"].iloc[0])
    return Context(results, base_model, steps, decodings, str(weak.iloc[0]) if len(weak) else None, budgets, true_share)


@dataclass
class Decision:
    """The decisive comparisons of one claim (adjusted together with every other claim's) and the rest."""
    decisive: dict
    context: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# One function pair per claim: the evidence, then the verdict.
# ---------------------------------------------------------------------------------------------

REAL_MODEL_RULE = ("In the real instruction-tuned model's answers to open prompts (SmolLM2-135M-Instruct, the committed "
                   "sample set decoded at T=0.7 with top-p 0.9), a word is a formulaic habit if it is rare in English "
                   "(wordfreq frequency below 10 per million words), appears in answers to at least 10% of the prompts, "
                   "and the 95% bootstrap interval of its overuse ratio (resampling prompts) lies above 10.")
CLAIM_1_RULE = (f"True if some fine-tuned tiny model's share of the top opener {TOP_OPENER!r} is significantly above its "
                f"true probability (a one-sample test per objective and decoding), or if the real instruction-tuned "
                f"model has at least one formulaic habit word; false if every such share is at or below the truth and "
                f"the real model has none; otherwise not supported. {REAL_MODEL_RULE}")


def real_model_formulaic_words() -> pd.DataFrame | None:
    """REAL_MODEL_RULE applied to the committed sample set of the real chat model (None if the set is missing)."""
    from dftlab.chat_samples import REAL_MODEL_DECODING, formulaic_words_of, load_sample_set

    try:
        sample_set = load_sample_set()
    except FileNotFoundError:
        return None
    return formulaic_words_of(sample_set, REAL_MODEL_DECODING)


def claim_1_evidence(ctx: Context) -> Decision:
    decisive = {(o, d): ctx.compare("top_opener_share", o, ctx.true_share, d, b_name="the true probability")
                for o in ("nll", "dft") for d in ctx.decodings}
    context = [ctx.compare("overuse_formulaic", o, "truth", d) for o in ("nll", "dft") for d in ctx.decodings]
    words = ctx.real_model_words
    if words is None:
        context.append("real instruction-tuned model: its sample set is missing (`python -m dftlab.chat_samples` "
                       "builds it), so it gives no evidence here")
    else:
        context.append(f"real instruction-tuned model (SmolLM2-135M-Instruct, T=0.7 with top-p 0.9): {len(words)} "
                       f"formulaic habit word{'s' if len(words) != 1 else ''}" + (": " + ", ".join(
                           f"{row.word} ({row.overuse_ratio:,.0f}x English, 95% CI [{row.ci_low:,.0f}, "
                           f"{row.ci_high:,.0f}], in answers to {row.groups} prompts)"
                           for row in words.head(8).itertuples()) if len(words) else ""))
    return Decision(decisive, context)


def claim_1_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    over = [key for key, c in decision.decisive.items() if c.above]
    words = ctx.real_model_words
    habits = words is not None and len(words) > 0
    real = ""
    if habits:
        real = (f" The real instruction-tuned model SmolLM2-135M-Instruct has {len(words)} formulaic habit word"
                f"{'s' if len(words) != 1 else ''} (rare in English, used across prompts, over-used beyond its "
                f"bootstrap interval), led by " + ", ".join(repr(w) for w in words["word"].head(5)) +
                "; one quantised model without its base cannot say whether SFT, preference tuning or decoding put "
                "them there.")
    elif words is not None:
        real = " The real instruction-tuned model shows no formulaic habit word by the rule."
    if over:
        reason = (f"The top opener {TOP_OPENER!r} (true probability {ctx.true_share:.3f}) is significantly over-used "
                  f"by: " + ", ".join(f"{o} at {d} ({decision.decisive[(o, d)].mean_a:.3f})" for o, d in over) + ".")
        if ("nll", ctx.first) not in over:
            reason += (f" Maximum likelihood sampled at {ctx.first} does not over-use it, so at this scale the "
                       f"overuse comes from Dynamic FT or from low-temperature decoding, not from fine-tuning as such.")
        return "true", reason + real
    if habits:
        tiny = "tiny " if ctx.base_model.startswith("tiny") else ""
        return "true", f"No fine-tuned {tiny}model over-uses the top opener significantly." + real
    if all(c.difference <= 0 for c in decision.decisive.values()) and words is not None:
        return "false", "No fine-tuned model opens with the top opener more often than the data does." + real
    return VERDICTS[3], "No fine-tuned model's top-opener share is significantly above the truth." + real


CLAIM_2_RULE = ("Decided on Dynamic FT against SFT: if DFT's samples are significantly further from the true stories "
                "for the same prompts in unigram token L2 and its exact KL is significantly larger, the claim holds "
                "for Dynamic FT (which is not the DFT of the original post); if both are significantly smaller it is false.")


def claim_2_evidence(ctx: Context) -> Decision:
    decisive = {"token_l2_1": ctx.compare("token_l2_1", "dft", "nll"), "kl": ctx.compare("kl", "dft", "nll")}
    context = [ctx.compare("token_l2_2", "dft", "nll")] + [ctx.compare(m, "dft", "nll", distance_to_truth=True)
                                                           for m in ("distinct_2", "self_bleu", "seq_rep_4")]
    return Decision(decisive, context)


def claim_2_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    l2, kl = decision.decisive["token_l2_1"], decision.decisive["kl"]
    if l2.above and kl.above:
        return VERDICTS[2], (
            f"Dynamic FT's samples are further from the true stories' token frequencies than SFT's (unigram L2 "
            f"{l2.mean_a:.3g} vs {l2.mean_b:.3g}) and its exact KL to the data is larger ({kl.mean_a:.3g} vs "
            f"{kl.mean_b:.3g} nats per story). But the post this claim comes from is about *Distribution* Fine Tuning, "
            f"which it presents as the fix for SFT's mismatch: the rewrite turned its source around.")
    if l2.below and kl.below:
        return "false", "Dynamic FT matches the token distribution better than SFT here."
    return VERDICTS[3], "The token-L2 and KL differences between DFT and SFT are not both significant."


CLAIM_3_RULE = ("Holds for Dynamic FT if, against SFT, its exact KL is significantly larger and its predictive entropy "
                "significantly smaller: sharper predictions and a worse fit of the whole distribution, which is what "
                "maximising expected probability (a linear score) does. False if its KL is significantly smaller.")


def claim_3_evidence(ctx: Context) -> Decision:
    decisive = {"kl": ctx.compare("kl", "dft", "nll"), "entropy": ctx.compare("predictive_entropy", "dft", "nll")}
    context = [ctx.compare("prob_p50", "dft", "nll"), ctx.compare("valid_accuracy", "dft", "nll"),
               ctx.compare("top_opener_share", "dft", ctx.true_share, b_name="the true probability")]
    return Decision(decisive, context)


def claim_3_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    kl, entropy = decision.decisive["kl"], decision.decisive["entropy"]
    share = decision.context[2]
    if kl.above and entropy.below:
        return VERDICTS[2], (
            f"Dynamic FT climbs the expected probability of the target token (its gradient is that of -E[p]), a linear "
            f"score whose optimum is the one-hot mode: its predictions are sharper (predictive entropy "
            f"{entropy.mean_a:.3g} vs {entropy.mean_b:.3g} nats per token), it opens {share.mean_a:.0%} of its stories "
            f"with the modal opener (true: {ctx.true_share:.0%}), and the whole distribution fits worse (KL "
            f"{kl.mean_a:.3g} vs {kl.mean_b:.3g} nats per story). The original post made no such claim about Dynamic "
            f"FT: its DFT is Distribution Fine Tuning.")
    if kl.below:
        return "false", "Dynamic FT fits the whole distribution better than SFT (lower KL)."
    return VERDICTS[3], "DFT's KL and predictive entropy do not both differ significantly from SFT's."


CLAIM_4_RULE = ("Decided on SFT's samples at the headline budget against a second sample of the truth for the same "
                "prompts (the noise floor): validity below 1 (1 - validity is a lower bound on the total-variation "
                "distance to q), unigram token L2 above the truth's, and |top-opener share - true probability| above "
                "the truth's. True if any gap is significant; otherwise false at this budget, with the smallest "
                "budget of the sweep showing what an unconverged SFT looks like. The exact KL is reported but does "
                "not decide: with one tokenisation per text it estimates an upper bound.")


def claim_4_evidence(ctx: Context) -> Decision:
    decisive = {"validity": ctx.compare("validity", "nll", 1.0, b_name="a perfect score"),
                "token_l2_1": ctx.compare("token_l2_1", "nll", "truth")}
    # the opener gap |share - true probability|, against the truth row's own gap
    table = ctx.results.assign(top_opener_gap=(ctx.results["top_opener_share"] - ctx.results["top_opener_true_prob"]).abs())
    decisive["top_opener_gap"] = compare(table, "top_opener_gap", "nll", "truth", ctx.first, ctx.base_model, ctx.steps)
    rows = ctx.results[(ctx.results["objective"] == "nll") & (ctx.results["base_model"] == ctx.base_model)
                       & (ctx.results["steps"] == ctx.steps) & (ctx.results["decoding"] == ctx.first)]
    context = [ctx.compare("kl", "nll", 0.0, b_name="a perfect fit"),
               f"opener chi-square against the truth rejects at 5% in {int((rows['opener_p_value'] < 0.05).sum())} "
               f"of {rows['opener_p_value'].notna().sum()} seeds, the ending chi-square in "
               f"{int((rows['ending_p_value'] < 0.05).sum())} ({ctx.first})"]
    if len(ctx.budgets) > 1 and ctx.budgets[0] != ctx.steps:
        context += [compare(ctx.results, "validity", "nll", 1.0, ctx.first, ctx.base_model, ctx.budgets[0],
                            "a perfect score"),
                    compare(ctx.results, "kl", "nll", 0.0, ctx.first, ctx.base_model, ctx.budgets[0], "a perfect fit")]
    return Decision(decisive, context)


def claim_4_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    d = decision.decisive
    gaps = [name for name, c in d.items() if (c.below if name == "validity" else c.above)]
    validity = d["validity"].mean_a
    floor = f"1 - validity = {1 - validity:.3f} is a lower bound on its total-variation distance to q"
    kl = decision.context[0]
    if gaps:
        return "true", (f"At {ctx.steps} steps SFT still falls short of the truth in {', '.join(gaps)} ({floor}; exact "
                        f"KL {kl.mean_a:.3g} nats per story, an upper bound). This is what the original post said, "
                        f"about SFT; it does not make DFT the cure (claims 2, 3 and 5).")
    early = ""
    if len(decision.context) >= 4:
        early_validity, early_kl = decision.context[2], decision.context[3]
        early = (f" Stopped early, it does fall short: at {ctx.budgets[0]} steps its validity is "
                 f"{early_validity.mean_a:.3f} and its KL {early_kl.mean_a:.3g} nats per story.")
    return "false", (f"At {ctx.steps} steps SFT's samples cannot be told from a second sample of the truth on any of "
                     f"these measures ({floor}; exact KL {kl.mean_a:.3g} nats per story, an upper bound). Maximum "
                     f"likelihood is a proper scoring rule, and with this budget it gets there.{early}")


CLAIM_5_RULE = ("Each measure of variety is judged by its distance to the truth, |metric - truth| per seed, for SFT "
                f"against Dynamic FT: {', '.join(VARIETY_MEASURES)}. True for Dynamic FT if SFT is significantly "
                "closer on at least 4 of the 6 and significantly further on none; false if DFT is closer on more.")


def claim_5_evidence(ctx: Context) -> Decision:
    return Decision({m: ctx.compare(m, "nll", "dft", distance_to_truth=True) for m in VARIETY_MEASURES},
                    [ctx.compare("validity", "nll", "dft")])


def claim_5_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    closer = [m for m, c in decision.decisive.items() if c.below]
    further = [m for m, c in decision.decisive.items() if c.above]
    if len(closer) >= 4 and not further:
        return VERDICTS[2], (f"SFT's samples are closer to the truth than Dynamic FT's on {len(closer)} of "
                             f"{len(decision.decisive)} measures of variety ({', '.join(closer)}) and further on none. "
                             f"The original post claimed the opposite order for its own DFT, Distribution Fine Tuning, "
                             f"which it says beats maximum likelihood.")
    if len(further) > len(closer):
        return "false", f"Dynamic FT's samples are closer to the truth on {', '.join(further)}."
    return VERDICTS[3], f"SFT is closer on {closer or 'nothing'} and further on {further or 'nothing'}: no clear winner."


CLAIMS = (
    (CLAIM_1_RULE, claim_1_evidence, claim_1_verdict,
     "It flips to 'false' only if every fine-tuned model's top-opener share were at or below the true probability "
     "and the real model had no formulaic habit word."),
    (CLAIM_2_RULE, claim_2_evidence, claim_2_verdict, "It flips to 'not supported' if either difference loses significance."),
    (CLAIM_3_RULE, claim_3_evidence, claim_3_verdict, "Either difference losing significance makes it 'not supported'."),
    (CLAIM_4_RULE, claim_4_evidence, claim_4_verdict,
     "A significant gap in any of the three measures makes it 'true'; a shorter budget does (see the sweep)."),
    (CLAIM_5_RULE, claim_5_evidence, claim_5_verdict,
     "Fewer than 4 significant wins for SFT, or one loss, makes it 'not supported'."),
)


# ---------------------------------------------------------------------------------------------
# The prior manipulation (Li et al.'s regime question) and the distribution-level reconstruction.
# ---------------------------------------------------------------------------------------------

REGIME_RULE = ("Li et al. find probability-based objectives (the -p end, Dynamic FT) competitive where the base model "
               "already has a strong prior for the task, and NLL better where it is weak. Here the prior is manipulated "
               "by the base model: tiny-gpt2 (strong: it writes valid stories before fine-tuning) against "
               "tiny-gpt2-english (weak: it has never seen one). The task skill the weak prior lacks is copying the "
               "title's character into the story, measured as the mean p(target) at the character-name tokens "
               "(prob_character). Consistent if NLL beats DFT on it under the weak prior and the gap dft - nll is "
               "significantly smaller under the strong one (a paired difference of differences). Validity is reported "
               "beside it but cannot decide: from the weak prior both objectives write 0% valid stories at this budget.")


def _difference_of_differences(ctx: Context, metric: str) -> Comparison:
    """(dft - nll) under the strong prior minus (dft - nll) under the weak one, paired by seed."""
    table = ctx.results[ctx.results["decoding"].isin([ctx.first])]
    gaps = {}
    for model in (ctx.base_model, ctx.weak_model):
        rows = table[(table["base_model"] == model) & (table["steps"] == ctx.steps)]
        values = rows.pivot_table(index="seed", columns="objective", values=metric, aggfunc="first")
        gaps[model] = values["dft"] - values["nll"]
    seeds = sorted(set(gaps[ctx.base_model].dropna().index) & set(gaps[ctx.weak_model].dropna().index))
    differences = [gaps[ctx.base_model][s] - gaps[ctx.weak_model][s] for s in seeds]
    mean, low, high = t_interval(differences)
    return Comparison(metric, "dft - nll (strong prior)", "dft - nll (weak prior)", ctx.first,
                      float(gaps[ctx.base_model][seeds].mean()), float(gaps[ctx.weak_model][seeds].mean()),
                      mean, low, high, len(differences), t_test_p_value(differences), raw_metric=metric)


def regime_evidence(ctx: Context) -> Decision | None:
    if ctx.weak_model is None or not ((ctx.results["base_model"] == ctx.weak_model)
                                      & (ctx.results["kind"] == "finetuned")).any():
        return None
    decisive = {"weak": ctx.compare("prob_character", "dft", "nll", base_model=ctx.weak_model),
                "did": _difference_of_differences(ctx, "prob_character")}
    context = [ctx.compare("prob_character", "dft", "nll"),
               ctx.compare("validity", "dft", "nll"), ctx.compare("validity", "dft", "nll", base_model=ctx.weak_model),
               ctx.compare("kl", "dft", "nll"), ctx.compare("kl", "dft", "nll", base_model=ctx.weak_model)]
    return Decision(decisive, context)


def regime_verdict(decision: Decision | None, ctx: Context) -> tuple[str, str]:
    if decision is None:
        return "not testable here", "The study has no weak-prior base model, so the prior was not manipulated."
    weak, did = decision.decisive["weak"], decision.decisive["did"]
    strong = decision.context[0]
    numbers = (f"p(character-name token), dft - nll: {strong.difference:+.3f} from the strong prior, "
               f"{weak.difference:+.3f} from the weak one")
    if weak.below and did.above:
        return "consistent with Li et al.", (f"NLL beats Dynamic FT at the skill the base lacks only where the prior is "
                                             f"weak ({numbers}). With a strong prior DFT keeps what the base model "
                                             f"already does; with a weak one its weight p(y) starves the tokens the "
                                             f"model does not yet predict, so it never learns to copy the name.")
    if weak.below:
        return "partly consistent with Li et al.", (f"NLL beats Dynamic FT where the prior is weak, but the gap is not "
                                                    f"significantly smaller where it is strong ({numbers}).")
    return VERDICTS[3], f"DFT is not significantly worse than NLL under the weak prior ({numbers})."


RECONSTRUCTION_RULE = ("`dftlab.objectives.distribution_matching` adds to NLL a penalty (weight lambda) on the gap "
                       "between the model's average predicted token distribution and the batch's target-token "
                       "frequencies. It 'helps' at a lambda if, against plain SFT at the same budget, it brings the "
                       "top-opener share or the unigram token L2 significantly closer to the truth, and 'hurts' if it "
                       "significantly lowers validity or raises the cross-entropy on true stories.")


def reconstruction_labels(results: pd.DataFrame) -> list[str]:
    labels = results.loc[results["objective_name"] == "distribution_matching", "objective"]
    return sorted(set(labels), key=lambda label: float(label.rsplit("_", 1)[-1]) if label[-1].isdigit() else 0.0)


def reconstruction_evidence(ctx: Context, label: str) -> Decision:
    table = ctx.results.assign(top_opener_gap=(ctx.results["top_opener_share"] - ctx.results["top_opener_true_prob"]).abs())
    decisive = {"top_opener_gap": compare(table, "top_opener_gap", label, "nll", ctx.first, ctx.base_model, ctx.steps),
                "token_l2_1": ctx.compare("token_l2_1", label, "nll"),
                "validity": ctx.compare("validity", label, "nll"),
                "cross_entropy": ctx.compare("cross_entropy", label, "nll")}
    return Decision(decisive, [])


def reconstruction_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    d = decision.decisive
    better = [m for m in ("top_opener_gap", "token_l2_1") if d[m].below]
    hurt = [m for m in ("validity", "cross_entropy") if (d[m].below if m == "validity" else d[m].above)]
    if hurt:
        return "hurts", f"significantly worse than SFT on {', '.join(hurt)}" + (
            f"; it does lower {', '.join(better)}" if better else "")
    if better:
        return "helps", f"lowers {', '.join(better)} without a significant cost"
    return "no measurable effect", "no difference from SFT is significant"


# ---------------------------------------------------------------------------------------------
# All verdicts together, with Holm's adjustment over every decisive comparison.
# ---------------------------------------------------------------------------------------------

def _adjust(decisions: list) -> int:
    """Holm-adjust the decisive comparisons of every decision in place; returns the family size."""
    family = [c for decision in decisions if decision is not None for c in decision.decisive.values()]
    for comparison, adjusted in zip(family, holm([c.p_value for c in family])):
        comparison.adjusted_p = adjusted
    return sum(not math.isnan(c.p_value) for c in family)


def _evidence_lines(decision: Decision) -> list[str]:
    return [c.text() for c in decision.decisive.values()] + [c if isinstance(c, str) else c.text() + " (context, not "
                                                             "adjusted)" for c in decision.context]


@dataclass
class Judgement:
    claims: list
    regime: tuple
    regime_evidence: list
    reconstruction: list  # (label, verdict, reason, evidence lines)
    family_size: int
    context: Context


def judge(results: pd.DataFrame, real_model_words: pd.DataFrame | None | str = "committed") -> Judgement:
    """Every verdict of CLAIMS.md, from the numbers alone (the rules are the *_RULE texts above).

    `real_model_words` is the real chat model's evidence for claim 1: "committed" reads the committed sample set
    (`real_model_formulaic_words()`), a table gives it directly, and None leaves it out."""
    ctx = context_of(results)
    ctx.real_model_words = real_model_formulaic_words() if isinstance(real_model_words, str) else real_model_words
    claim_decisions = [evidence(ctx) for _, evidence, _, _ in CLAIMS]
    regime = regime_evidence(ctx)
    labels = reconstruction_labels(results)
    reconstruction = [reconstruction_evidence(ctx, label) for label in labels]
    family_size = _adjust(claim_decisions + [regime] + reconstruction)
    claims = []
    for number, ((rule, _, verdict_of, flip), decision) in enumerate(zip(CLAIMS, claim_decisions), start=1):
        verdict, reason = verdict_of(decision, ctx)
        claims.append(ClaimVerdict(number, CLAIM_TEXTS[number - 1], verdict, reason, _evidence_lines(decision), flip,
                                   rule))
    recon = [(label, *reconstruction_verdict(decision, ctx), _evidence_lines(decision))
             for label, decision in zip(labels, reconstruction)]
    return Judgement(claims, regime_verdict(regime, ctx), _evidence_lines(regime) if regime else [], recon,
                     family_size, ctx)


def judge_claims(results: pd.DataFrame) -> list[ClaimVerdict]:
    """The verdict on each claim of science.md section 2 (Holm-adjusted over the whole CLAIMS.md family)."""
    return judge(results).claims


def claim_provenance_table(results: pd.DataFrame, judgement: Judgement | None = None) -> pd.DataFrame:
    """One row per claim: what the news rewrite said, what Rosmine's post said, what the course tests, the
    verdict from the study and where in the book (chapter 7). Pass `judgement` (from `judge(results)`) to reuse it.
    """
    judgement = judge(results) if judgement is None else judgement
    rows = []
    for item, source in zip(judgement.claims, CLAIM_PROVENANCE):
        rows.append({"claim": item.number, "news rewrite": item.claim, "blog post": source.blog,
                     "tested in the course": source.tested, "verdict": item.verdict,
                     "where in the book": "chapters " + ", ".join(map(str, source.chapters[:-1])) + " and "
                                          + str(source.chapters[-1])})
    return pd.DataFrame(rows).set_index("claim")


def regime_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """The prior manipulation: validity and KL of base, nll and dft from each base model (means over seeds)."""
    ctx = context_of(results)
    rows = []
    for prior, model in (("strong", ctx.base_model), ("weak", ctx.weak_model)):
        if model is None:
            continue
        for metric in ("validity", "kl", "prob_character"):
            gap = ctx.compare(metric, "dft", "nll", base_model=model)
            base = results[(results["base_model"] == model) & (results["objective"] == "base")
                           & (results["decoding"] == ctx.first)][metric].mean()
            rows.append({"prior": prior, "base_model": model, "metric": metric, "base": base, "nll": gap.mean_b,
                         "dft": gap.mean_a, "dft_minus_nll": gap.difference, "ci_low": gap.low, "ci_high": gap.high,
                         "n": gap.n})
    return pd.DataFrame(rows)


def reconstruction_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """The lambda sweep of the distribution-level reconstruction against SFT: one row per lambda."""
    judgement = judge(results)
    return pd.DataFrame([{"objective": label, "verdict": verdict, "reason": reason}
                         for label, verdict, reason, _ in judgement.reconstruction])


def claims_markdown(results: pd.DataFrame, study: dict) -> str:
    """CLAIMS.md: each claim, its rule, its verdict, the numbers behind it and what would flip it."""
    config = study["config"]
    fingerprints = ", ".join(f"{name} {digest[:12]}" for name, digest in study["model_sha256"].items())
    lines = ["# The claims, tested", "",
             f"Generated by `python -m dftlab.study claims` from `study-{config['name']}-{study['config_hash']}.json` "
             f"(dftlab {study['version']}; base models {fingerprints}: sha256 of their weights and tokenizers). "
             f"Do not edit by hand.", ""]
    try:
        judgement = judge(results)
    except ValueError as error:
        return "\n".join(lines + [f"No verdicts: {error}", ""])
    ctx = judgement.context
    lines += [f"Setting: the strong-prior base {ctx.base_model} fine-tuned on TinyTales (zipf_exponent="
              f"{config['zipf_exponent']}) for {ctx.steps} steps of {config['batch_size']} stories at lr "
              f"{config['lr']:g}; nll and dft with seeds {config['headline_seeds']}, every other objective with "
              f"{config['seeds']}; {config['num_prompts'] * config['samples_per_prompt']} samples per model and "
              f"decoding ({config['num_prompts']} prompts), each compared with true stories for the same prompts. "
              "In the claims, \"DFT\" is Dynamic Fine-Tuning (Wu et al. 2025), the loss the study trains.", "",
              "Statistics: each comparison is paired by seed, with a 95% t-interval and a two-sided t-test over the "
              f"per-seed differences. The {judgement.family_size} decisive tests below (every verdict's, the regime's "
              f"and the reconstruction's) form one family, adjusted with Holm's method: a verdict counts a difference "
              f"only if its Holm-adjusted p-value is below 0.05. Lines marked \"context\" are reported unadjusted "
              f"and decide nothing.", ""]
    for item in judgement.claims:
        lines += [f"## Claim {item.number}: {item.claim}", "", f"Rule: {item.rule}", "",
                  f"**Verdict: {item.verdict}.** {item.reason}", "", "Numbers:", ""]
        lines += [f"- {line}" for line in item.evidence] + ["", f"What would flip it: {item.flip}", ""]
    verdict, reason = judgement.regime
    lines += ["## The regime question (Li et al.): does the prior decide between DFT and NLL?", "",
              f"Rule: {REGIME_RULE}", "", f"**{verdict.rstrip('.')}.** {reason}", ""]
    lines += [f"- {line}" for line in judgement.regime_evidence] + [""]
    lines += ["## A distribution-level objective (the course's reconstruction, not Rosmine's algorithm)", "",
              f"Rule: {RECONSTRUCTION_RULE} Rosmine's Distribution Fine Tuning is unpublished (its post names only "
              f"\"a sequence of LoRA\"); this tests the idea, not the method.", ""]
    for label, verdict, reason, evidence in judgement.reconstruction:
        lines += [f"**{label}: {verdict}** ({reason}).", ""] + [f"- {line}" for line in evidence] + [""]
    scale = ctx.compare("loss_scale", "dft", 1.0, b_name="NLL's own ratio")
    nll_up = ctx.compare("cross_entropy", "dft", "base")
    lines += ["## Two user reports (science.md section 4)", "",
              f"- Users report DFT's loss value 10-20x smaller than cross-entropy. After training here, DFT's own "
              f"loss on the test stories is {1 / scale.mean_a:,.1f}x smaller than its NLL on the same tokens: the "
              f"weight p(y) silences exactly the tokens it has given up on (p near 0), where the NLL is largest. "
              + scale.text(),
              f"- Does NLL go up under DFT? Sequence cross-entropy of dft minus the base model's: " + nll_up.text(), ""]
    return "\n".join(lines)


def write_claims(quick: bool = False, out=None, real_model: bool = False) -> Path:
    """Regenerate CLAIMS.md (or, with `real_model`, the real-model study's claims file) from cached results
    (`python -m dftlab.study claims [--real-model]`)."""
    from dftlab.storage import atomic_write_text
    from dftlab.study.cache import claims_path, fingerprints, read_study, results_dir
    from dftlab.study.config import real_model_config

    config = real_model_config(quick) if real_model else default_config(quick)
    study = read_study(config, out)
    path = claims_path(results_dir() if out is None else Path(out), config, fingerprints(config))
    atomic_write_text(path, claims_markdown(study_table(study), study))
    return path
