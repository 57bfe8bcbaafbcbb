"""The rules that decide the claims of science.md section 2: one evidence function and one verdict function per claim.

This file and `stats` are the frozen rules: `dftlab.study.claims.rules_sha256` hashes the two, CLAIMS.md prints the
hash, and the replication on new seeds records the hash it was judged under. Change either and the replication
must be run again. When each rule was fixed, relative to the data, and why it changed, is `history.RULE_HISTORY`.

Each claim has a rule (stated in prose here, in CLAIMS.md and in chapter 7), a set of *decisive* comparisons and a
decision. The decisive comparisons of the claims judged together form one family whose p-values are adjusted with
Holm's method (a comparison that decides two claims is one test and counts once), so the chance of any false
"significant" among them stays under 5%. Sample statistics are judged by their distance to the truth,
|model - truth| (per seed), never by "more is better": a model can be too varied as well as too formulaic.
Every rule is also run on a control (`dftlab.study.control`): second samples of the truth in place of the models,
where each rule must return a null verdict (`NULL_VERDICTS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from dftlab.study.config import TOP_OPENER, TRUTH_DECODING
from dftlab.study.stats import Comparison, compare, headline, holm, seed_test, t_interval

VERDICTS = ("true", "false", "true for Dynamic FT, but not what the original post said", "not supported at this scale")
CLAIM_TEXTS = (
    "LLMs overuse familiar, formulaic tokens and phrases, and that limits natural writing.",
    "A model trained with DFT fails to match the token distribution of its training data, which makes its writing stilted.",
    "DFT optimises one aspect of performance instead of the whole language distribution.",
    "SFT does not always capture the nuances of the data distribution.",
    "Maximum likelihood training gives more natural, more varied writing than DFT.",
)
# The verdicts a rule may give when the truth stands in for the models (the control): it finds no difference.
# Claims 1 and 4 compare a model with the truth, so "false" (no gap) is null as well; claims 2, 3 and 5 compare two
# models, and two samples of the truth must come out "not supported" (a "false" would be a difference too).
NULL_VERDICTS = {1: (VERDICTS[1], VERDICTS[3]), 2: (VERDICTS[3],), 3: (VERDICTS[3],), 4: (VERDICTS[1], VERDICTS[3]),
                 5: (VERDICTS[3],)}
# Claim 5's measures of variety in groups of strongly correlated measures; each group counts once.
VARIETY_GROUPS = (("lexical diversity", ("distinct_1", "distinct_2", "distinct_3")),
                  ("repetition", ("self_bleu", "seq_rep_4")),
                  ("word-frequency shape", ("zipf_coefficient",)))
VARIETY_MEASURES = tuple(m for _, measures in VARIETY_GROUPS for m in measures)


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
    # The real chat model's habit words (REAL_MODEL_RULE), or None where its sample set is missing.
    real_model_words: pd.DataFrame | None = None

    @property
    def first(self) -> str:
        return self.decodings[0]

    def compare(self, metric, a, b, decoding=None, **kwargs) -> Comparison:
        kwargs.setdefault("base_model", self.base_model)
        kwargs.setdefault("steps", self.steps)
        kwargs.setdefault("interval", "auto")  # shares of samples get their bounded (Wilson) interval
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
                   "sample set decoded at T=0.7 with top-p 0.9), a habit word is a word that passes the habit rule on "
                   "each half of the prompts separately (dftlab.metrics.controlled_habit_words: found on the odd-numbered "
                   "prompts, confirmed on the even-numbered ones), so that words which a few prompts' topics call for "
                   "drop out. The habit rule: rare in English (wordfreq frequency below 10 per million words), in "
                   "answers to at least 10% of that half's prompts, and the 95% bootstrap interval of its overuse ratio "
                   "against English (resampling prompts) above 10.")
CLAIM_1_RULE = (f"Decided on the fine-tuned tiny models sampled at T = 1, their own distribution: for nll and for dft, "
                f"the share of samples that open with the top opener {TOP_OPENER!r} against its true probability (a "
                f"one-sample test per objective). True if either share is significantly above it; false if both are "
                f"at or below it; otherwise not supported. Decoding at T = 0.7 with top-p 0.9 pushes any model towards "
                f"its mode, so its share is reported as a finding of its own and decides nothing. The real "
                f"instruction-tuned model's habit words are reported beside the verdict and decide nothing either: "
                f"there are no human answers to the same prompts to serve as their truth, and the same rule, run on "
                f"text drawn from this study's truth, finds habit words there too (see the control). "
                f"{REAL_MODEL_RULE}")


def real_model_habit_words() -> pd.DataFrame | None:
    """REAL_MODEL_RULE on the committed sample set of the real chat model: the words that survive the split-half topic
    control (`controlled_habit_words`), by discovery ratio; None if the sample set is missing."""
    from dftlab.chat_samples import REAL_MODEL_DECODING, load_sample_set, prompt_groups_of, responses_of
    from dftlab.metrics.formulaic import controlled_habit_words

    try:
        sample_set = load_sample_set()
    except FileNotFoundError:
        return None
    table = controlled_habit_words(responses_of(sample_set, REAL_MODEL_DECODING),
                                   prompt_groups_of(sample_set, REAL_MODEL_DECODING))
    return table[table["survives"]].reset_index(drop=True)


def _habit_word_line(words: pd.DataFrame | None) -> str:
    if words is None:
        return ("real instruction-tuned model: its sample set is missing (`python -m dftlab.chat_samples` builds it), "
                "so nothing is reported")
    listed = ", ".join(f"{row.word} ({row.discovery_ratio:,.0f}x English on one half of the prompts, "
                       f"{row.held_out_ratio:,.0f}x on the other)" for row in words.head(8).itertuples())
    return (f"real instruction-tuned model (SmolLM2-135M-Instruct, T=0.7 with top-p 0.9), reported, not counted: "
            f"{len(words)} habit word{'s' if len(words) != 1 else ''} survive the split-half topic control"
            + (f": {listed}" if listed else ""))


def claim_1_evidence(ctx: Context) -> Decision:
    decisive = {(o, ctx.first): ctx.compare("top_opener_share", o, ctx.true_share, ctx.first,
                                            b_name="the true probability") for o in ("nll", "dft")}
    context = [ctx.compare("top_opener_share", o, ctx.true_share, d, b_name="the true probability")
               for d in ctx.decodings[1:] for o in ("nll", "dft")]
    context += [ctx.compare("overuse_formulaic", o, "truth", ctx.first) for o in ("nll", "dft")]
    context.append(_habit_word_line(ctx.real_model_words))
    return Decision(decisive, context)


def _decoding_finding(decision: Decision, ctx: Context) -> str:
    shares = [c for c in decision.context if isinstance(c, Comparison) and c.raw_metric == "top_opener_share"
              and c.a == "nll"]
    if not shares:
        return ""
    c, own = shares[0], decision.decisive[("nll", ctx.first)]
    if c.above and c.mean_a > own.mean_a:
        return (f" Decoding, a finding of its own: sampling the same SFT models at {c.decoding} raises the share to "
                f"{c.mean_a:.3f} (from {own.mean_a:.3f} at {ctx.first}), as it would for any model close to the data: "
                f"a lower temperature moves mass to the mode.")
    return (f" Decoding, a finding of its own: sampling the same SFT models at {c.decoding} gives a share of "
            f"{c.mean_a:.3f} ({own.mean_a:.3f} at {ctx.first}), not significantly above the truth.")


def claim_1_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    over = [o for (o, _), c in decision.decisive.items() if c.above]
    words = ctx.real_model_words
    real = ""
    if words is not None:
        real = (f" The real instruction-tuned model SmolLM2-135M-Instruct has {len(words)} habit word"
                f"{'s' if len(words) != 1 else ''} that survive the split-half topic control"
                + (" (" + ", ".join(repr(w) for w in words["word"].head(5)) + ")" if len(words) else "")
                + "; they are reported, not counted, since the same rule finds habit words in text drawn from the "
                  "truth.")
    decoding = _decoding_finding(decision, ctx)
    shares = ", ".join(f"{o} {c.mean_a:.3f}" for (o, _), c in decision.decisive.items())
    if over:
        reason = (f"At {ctx.first}, the model's own distribution, the top opener {TOP_OPENER!r} (true probability "
                  f"{ctx.true_share:.3f}) is significantly over-used by {' and '.join(over)} ({shares}).")
        if "nll" not in over:
            reason += (" Maximum likelihood does not over-use it, so at this scale the over-use comes from Dynamic "
                       "FT's objective, not from fine-tuning as such.")
        return "true", reason + decoding + real
    if all(c.difference <= 0 for c in decision.decisive.values()):
        return "false", (f"At {ctx.first} no fine-tuned model opens with the top opener more often than the data "
                         f"does ({shares}; true probability {ctx.true_share:.3f})." + decoding + real)
    flat = [(o, c) for (o, _), c in decision.decisive.items() if c.no_spread and c.difference > 0]
    reason = (f"At {ctx.first} no share of the top opener is significantly above its true probability "
              f"{ctx.true_share:.3f} ({shares}).")
    for o, c in flat:
        reason += (f" {o} opens {c.mean_a:.0%} of its samples with it in every one of its {c.n} seeds, but a "
                   f"difference with no spread over seeds can only be tested exactly, and {c.n} seeds cannot give "
                   f"a two-sided p-value below {c.p_value:.3g}: more seeds would decide it.")
    return VERDICTS[3], reason + decoding + real


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
                "prompts (the noise floor): validity below 1, the truth's own validity (1 - validity is a lower bound on "
                "the total-variation distance to q), unigram token L2 above the truth's, and |top-opener share - true "
                "probability| above the truth's. True if any gap is significant; not supported if a gap cannot be "
                "tested on these seeds (one seed, or the same gap in every seed, which too few seeds cannot make "
                "significant) and no other is significant; otherwise "
                "false at this budget, with the smallest budget of the sweep showing what an unconverged SFT looks "
                "like. The exact KL is reported but does not decide: with one tokenisation per text it estimates an "
                "upper bound.")


def claim_4_evidence(ctx: Context) -> Decision:
    decisive = {"validity": ctx.compare("validity", "nll", 1.0, b_name="the truth's validity"),
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
        context += [ctx.compare("validity", "nll", 1.0, steps=ctx.budgets[0], b_name="the truth's validity"),
                    ctx.compare("kl", "nll", 0.0, steps=ctx.budgets[0], b_name="a perfect fit")]
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
    untested = [name for name, c in d.items() if (c.no_spread or math.isnan(c.p_value))
                and (c.difference < 0 if name == "validity" else c.difference > 0)]
    if untested:
        c = d[untested[0]]
        why = (f"it is the same in every one of its {c.n} seeds, and {c.n} seeds cannot give an exact two-sided "
               f"p-value below {c.p_value:.3g}" if c.no_spread else
               f"{c.n} seed{'s' if c.n != 1 else ''} cannot be tested")
        return VERDICTS[3], (f"At {ctx.steps} steps SFT differs from the truth in {', '.join(untested)} ({c.metric}: "
                             f"{c.mean_a:.3g} against {c.mean_b:.3g}), but {why}: a gap the seeds cannot test is no "
                             f"evidence either way. No other gap is significant; more seeds would decide it.")
    early = ""
    if len(decision.context) >= 4:
        early_validity, early_kl = decision.context[2], decision.context[3]
        early = (f" Stopped early, it does fall short: at {ctx.budgets[0]} steps its validity is "
                 f"{early_validity.mean_a:.3f} and its KL {early_kl.mean_a:.3g} nats per story.")
    return "false", (f"At {ctx.steps} steps SFT's samples cannot be told from a second sample of the truth on any of "
                     f"these measures ({floor}; exact KL {kl.mean_a:.3g} nats per story, an upper bound). Maximum "
                     f"likelihood is a proper scoring rule, and with this budget it gets there.{early}")


CLAIM_5_RULE = ("Each measure of variety is judged by its distance to the truth, |metric - truth| per seed, for SFT "
                "against Dynamic FT. The measures come in groups of strongly correlated ones, and each group counts "
                "once: " + "; ".join(f"{name} ({', '.join(measures)})" for name, measures in VARIETY_GROUPS) + ". A "
                "group goes to the side on which more than half of its measures are significantly closer, with none "
                "significantly further. True for Dynamic FT if SFT is closer in at least 2 of the 3 groups and further "
                "in none; false if DFT is closer in more groups than SFT; otherwise not supported.")


def claim_5_evidence(ctx: Context) -> Decision:
    return Decision({m: ctx.compare(m, "nll", "dft", distance_to_truth=True) for m in VARIETY_MEASURES},
                    [ctx.compare("validity", "nll", "dft")])


def variety_group_sides(decision: Decision) -> dict:
    """Each group of VARIETY_GROUPS -> "closer" (SFT closer to the truth), "further" or "undecided"."""
    sides = {}
    for name, measures in VARIETY_GROUPS:
        present = [decision.decisive[m] for m in measures if m in decision.decisive]
        closer, further = sum(c.below for c in present), sum(c.above for c in present)
        if closer * 2 > len(present) and not further:
            sides[name] = "closer"
        elif further * 2 > len(present) and not closer:
            sides[name] = "further"
        else:
            sides[name] = "undecided"
    return sides


def claim_5_verdict(decision: Decision, ctx: Context) -> tuple[str, str]:
    sides = variety_group_sides(decision)
    closer = [g for g, side in sides.items() if side == "closer"]
    further = [g for g, side in sides.items() if side == "further"]
    measures = {g: [m for m in ms if decision.decisive[m].below or decision.decisive[m].above]
                for g, ms in VARIETY_GROUPS}
    detail = "; ".join(f"{g}: {sides[g]}" + (f" ({', '.join(measures[g])} significant)" if measures[g] else "")
                       for g, _ in VARIETY_GROUPS)
    if len(closer) >= 2 and not further:
        return VERDICTS[2], (f"SFT's samples are closer to the truth than Dynamic FT's in {len(closer)} of "
                             f"{len(VARIETY_GROUPS)} groups of measures of variety and further in none ({detail}). "
                             f"The original post claimed the opposite order for its own DFT, Distribution Fine Tuning, "
                             f"which it says beats maximum likelihood.")
    if len(further) > len(closer):
        return "false", f"Dynamic FT's samples are closer to the truth in more groups ({detail})."
    return VERDICTS[3], f"No clear winner by groups ({detail})."


CLAIMS = (
    (CLAIM_1_RULE, claim_1_evidence, claim_1_verdict,
     "'true' needs a fine-tuned model's share at T = 1 significantly above the true probability: for Dynamic FT, whose "
     "share is the same in every seed, that takes more seeds (7 seeds: smallest p 0.016 before adjustment). 'false' "
     "needs both shares at or below it."),
    (CLAIM_2_RULE, claim_2_evidence, claim_2_verdict, "It flips to 'not supported' if either difference loses significance."),
    (CLAIM_3_RULE, claim_3_evidence, claim_3_verdict, "Either difference losing significance makes it 'not supported'."),
    (CLAIM_4_RULE, claim_4_evidence, claim_4_verdict,
     "A significant gap in any of the three measures makes it 'true'; a shorter budget does (see the sweep)."),
    (CLAIM_5_RULE, claim_5_evidence, claim_5_verdict,
     "SFT closer in fewer than 2 groups, or further in one, makes it 'not supported'."),
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
    p_value, test = seed_test(differences)
    return Comparison(metric, "dft - nll (strong prior)", "dft - nll (weak prior)", ctx.first,
                      float(gaps[ctx.base_model][seeds].mean()), float(gaps[ctx.weak_model][seeds].mean()),
                      mean, low, high, len(differences), p_value, raw_metric=metric, test=test or "t",
                      key=("difference of differences", metric, ctx.base_model, ctx.weak_model, ctx.steps))


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
# The family: which tests are adjusted together, each once.
# ---------------------------------------------------------------------------------------------

def adjust(decisions: list) -> int:
    """Holm-adjust the decisive comparisons of every decision in place; returns the family size.

    Comparisons with the same `key` are one test (e.g. dft's KL against nll, which decides claims 2 and 3): it
    enters the family once and every copy gets its adjusted p-value."""
    tests: dict = {}
    for decision in decisions:
        if decision is None:
            continue
        for comparison in decision.decisive.values():
            tests.setdefault(comparison.key or ("object", id(comparison)), []).append(comparison)
    keys = list(tests)
    p_values = [tests[key][0].p_value for key in keys]
    for key, adjusted in zip(keys, holm(p_values)):
        for comparison in tests[key]:
            comparison.adjusted_p = adjusted
    return sum(not math.isnan(p) for p in p_values)


@dataclass
class Decisions:
    """Every decision of one judgement, adjusted as one family: per claim (number -> Decision), the regime (or None)
    and the reconstruction (label -> Decision)."""
    context: Context
    claims: dict
    regime: Decision | None
    reconstruction: dict
    family_size: int


def decide(results: pd.DataFrame, real_model_words: pd.DataFrame | None = None, claims=(1, 2, 3, 4, 5),
           regime_and_reconstruction: bool = True) -> Decisions:
    """The evidence of the chosen claims (and of the regime question and the lambda sweep), Holm-adjusted together."""
    ctx = context_of(results)
    ctx.real_model_words = real_model_words
    chosen = {number: CLAIMS[number - 1][1](ctx) for number in claims}
    regime = regime_evidence(ctx) if regime_and_reconstruction else None
    labels = reconstruction_labels(results) if regime_and_reconstruction else []
    reconstruction = {label: reconstruction_evidence(ctx, label) for label in labels}
    family_size = adjust(list(chosen.values()) + [regime] + list(reconstruction.values()))
    return Decisions(ctx, chosen, regime, reconstruction, family_size)
