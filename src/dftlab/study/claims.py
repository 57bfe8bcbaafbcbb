"""The claims of science.md section 2, judged by the frozen rules (`rules`, `stats`), with their controls and history.

- `judge(results)`: every verdict, Holm-adjusted as one family, and each rule's verdict on the negative control
  (second samples of the truth in place of the models, `dftlab.study.control`), found by the truth rows it belongs to;
- `rules_sha256()`: the sha256 of the frozen rules (FROZEN_SOURCES); CLAIMS.md prints it and the replication on new
  seeds records the hash it was judged under (`replication_record_path`);
- `claims_markdown` / `write_claims`: CLAIMS.md, with each rule's history (`history.RULE_HISTORY`).
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dftlab.storage import CorruptFileError
from dftlab.study import history
from dftlab.study.config import REPLICATION_NAME, default_config
from dftlab.study.control import control_table, find_control, read_control, truth_fingerprint
from dftlab.study.rules import (CLAIM_1_RULE, CLAIM_2_RULE, CLAIM_3_RULE, CLAIM_4_RULE, CLAIM_5_RULE, CLAIM_TEXTS,
                                CLAIMS, NULL_VERDICTS, REAL_MODEL_RULE, RECONSTRUCTION_RULE, REGIME_RULE,
                                VARIETY_GROUPS, VARIETY_MEASURES, VERDICTS, Context, Decision, Decisions, adjust,
                                claim_1_evidence, claim_1_verdict, claim_2_evidence, claim_2_verdict, claim_3_evidence,
                                claim_3_verdict, claim_4_evidence, claim_4_verdict, claim_5_evidence, claim_5_verdict,
                                context_of, decide, real_model_habit_words, reconstruction_evidence,
                                reconstruction_labels, reconstruction_verdict, regime_evidence, regime_verdict,
                                variety_group_sides)
from dftlab.study.stats import minimum_p_value

# The frozen rules: these files of dftlab/study, hashed in this order (`rules_sha256`).
FROZEN_SOURCES = ("rules.py", "stats.py")
# The claims the replication on new seeds judges (on its seeds alone, in a Holm family of their own).
REPLICATED_CLAIMS = (2, 3, 5)


def rules_sha256() -> str:
    """sha256 of the frozen rules: for each file of FROZEN_SOURCES in order, its name, a NUL byte, its text (UTF-8,
    line ends as "\\n") and a NUL byte. Any edit of rules.py or stats.py changes it."""
    digest = hashlib.sha256()
    for name in FROZEN_SOURCES:
        text = (Path(__file__).parent / name).read_text(encoding="utf-8").replace("\r\n", "\n")
        digest.update(name.encode() + b"\0" + text.encode("utf-8") + b"\0")
    return digest.hexdigest()


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
        "The share of stories that SFT and Dynamic FT open with the top opener at T = 1, against its true "
        "probability; low-temperature decoding and a real chat model's habit words are reported beside it.",
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
        "SFT against Dynamic FT: the distance to the truth of six measures of variety in three groups that count "
        "once each (distinct-1, -2 and -3; self-BLEU and seq-rep-4; the Zipf coefficient).",
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
    # the same rule on the negative control (truth in place of the models); "" where no control was computed
    control_verdict: str = ""
    control_reason: str = ""
    control_evidence: list = field(default_factory=list)

    @property
    def control_null(self) -> bool | None:
        """Whether the control's verdict is a null one (NULL_VERDICTS); None without a control."""
        return self.control_verdict in NULL_VERDICTS[self.number] if self.control_verdict else None

    @property
    def history(self) -> tuple:
        return history.RULE_HISTORY[self.number]


@dataclass
class Judgement:
    claims: list
    regime: tuple
    regime_evidence: list
    reconstruction: list  # (label, verdict, reason, evidence lines)
    family_size: int
    context: Context
    control: "Judgement | None" = None   # the same rules on the control table
    shared_tests: list = field(default_factory=list)  # (test text, [where it decides]) for tests deciding twice
    control_habit_words: list = field(default_factory=list)  # the habit rule on true stories, per seed
    decisions: Decisions | None = None  # the decisive tests behind the verdicts, Holm-adjusted (rules.decide)


def _evidence_lines(decision: Decision) -> list[str]:
    return [c.text() for c in decision.decisive.values()] + [c if isinstance(c, str) else c.text() + " (context, not "
                                                             "adjusted)" for c in decision.context]


def _shared_tests(decisions: Decisions) -> list:
    where: dict = {}
    named = [(f"claim {n}", d) for n, d in decisions.claims.items()] + [("the regime question", decisions.regime)] + [
        (f"the reconstruction ({label})", d) for label, d in decisions.reconstruction.items()]
    for name, decision in named:
        for comparison in (decision.decisive.values() if decision is not None else ()):
            entry = where.setdefault(comparison.key or id(comparison), [comparison, []])
            if name not in entry[1]:
                entry[1].append(name)
    return [(f"{c.metric}: {c.a} vs {c.b}", names) for c, names in where.values() if len(names) > 1]


def judge(results: pd.DataFrame, real_model_words: pd.DataFrame | None | str = "committed", control="auto",
          claims=None) -> Judgement:
    """Every verdict of CLAIMS.md, from the numbers and the two pieces of evidence it reads by default.

    `real_model_words` is the real chat model's (reported) evidence for claim 1: "committed" reads the committed
    sample set (`rules.real_model_habit_words()`), a table gives it directly, and None leaves it out. `control` is
    the negative control: "auto" finds the cached control computed for these results' truth rows (none for a table
    made by hand), a control payload or a ready control table uses that, None skips it. `claims` judges only those
    claim numbers (and leaves the regime question and the lambda sweep out of the family), as the replication does.
    `judge_evidence` is the same judgement with every input passed in (it reads no file).
    """
    words = real_model_habit_words() if isinstance(real_model_words, str) else real_model_words
    if isinstance(control, str):
        control = find_control(results) if control == "auto" else None
    return judge_evidence(results, words, control, claims)


def judge_evidence(results: pd.DataFrame, real_model_words: pd.DataFrame | None, control, claims=None) -> Judgement:
    """Every verdict of CLAIMS.md from its inputs alone (the rules are `dftlab.study.rules`): the results table, the
    real chat model's habit-word table (or None), the control (a payload, a control table, or None) and the claim
    numbers to judge (None: all, with the regime question and the reconstruction)."""
    numbers = tuple(range(1, len(CLAIMS) + 1)) if claims is None else tuple(claims)
    decisions = decide(results, real_model_words, numbers, regime_and_reconstruction=claims is None)
    ctx = decisions.context
    verdicts = []
    for number, decision in decisions.claims.items():
        rule, _, verdict_of, flip = CLAIMS[number - 1]
        verdict, reason = verdict_of(decision, ctx)
        verdicts.append(ClaimVerdict(number, CLAIM_TEXTS[number - 1], verdict, reason, _evidence_lines(decision), flip,
                                     rule))
    recon = [(label, *reconstruction_verdict(decision, ctx), _evidence_lines(decision))
             for label, decision in decisions.reconstruction.items()]
    judgement = Judgement(verdicts, regime_verdict(decisions.regime, ctx),
                          _evidence_lines(decisions.regime) if decisions.regime else [], recon,
                          decisions.family_size, ctx, shared_tests=_shared_tests(decisions), decisions=decisions)
    if control is not None:
        table = control if isinstance(control, pd.DataFrame) else control_table(results, control)
        judgement.control = judge_evidence(table, None, None, numbers)
        judgement.control_habit_words = [] if isinstance(control, pd.DataFrame) else control.get("habit_words", [])
        for item, on_control in zip(judgement.claims, judgement.control.claims):
            item.control_verdict, item.control_reason = on_control.verdict, on_control.reason
            item.control_evidence = on_control.evidence[:len(decisions.claims[item.number].decisive)]
    return judgement


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
    judgement = judge(results, control=None)
    return pd.DataFrame([{"objective": label, "verdict": verdict, "reason": reason}
                         for label, verdict, reason, _ in judgement.reconstruction])


# ---------------------------------------------------------------------------------------------
# The replication on new seeds, and CLAIMS.md.
# ---------------------------------------------------------------------------------------------

def replication_record_path(out, config=None) -> Path:
    """Where `python -m dftlab.study --replication` records the rules' hash, seeds and time of its run."""
    from dftlab.study.cache import study_config_hash, fingerprints
    from dftlab.study.config import replication_config

    config = replication_config() if config is None else config
    return Path(out) / f"replication-record-{study_config_hash(config, fingerprints(config))}.json"


def read_replication(out=None) -> dict | None:
    """The replication's record, study payload and control (keys record, study, control), or None if it was not run."""
    from dftlab.storage import CorruptFileError, read_json_with_hash, reading_results_dir
    from dftlab.study.cache import read_study
    from dftlab.study.config import replication_config
    from dftlab.study.control import control_path

    out = reading_results_dir("replication-record-*.json") if out is None else Path(out)
    config = replication_config()
    path = replication_record_path(out, config)
    try:
        record = read_json_with_hash(path)
        study = read_study(config, out)
    except (FileNotFoundError, CorruptFileError):
        return None
    return {"record": record, "study": study, "control": read_control(control_path(out, config)), "path": path}


def _history_lines(changes) -> list[str]:
    return [f"- {c.commit} ({c.date}), {c.stage}: {c.rule} Why: {c.reason}" for c in changes]


def _control_paragraph(item: ClaimVerdict) -> list[str]:
    if not item.control_verdict:
        return []
    null = "null, as it must be" if item.control_null else "NOT NULL: the rule finds something in the truth itself"
    return ([f"Control, the same rule with second samples of the truth in place of the models (in its words, nll and "
             f"SFT stand for truth sample b, dft and Dynamic FT for truth sample c): **{item.control_verdict}** "
             f"({null}). {item.control_reason}", ""] + [f"- control: {line}" for line in item.control_evidence] + [""])


def _habit_control_line(habit: list) -> str:
    if not habit:
        return ""
    usable = [h for h in habit if h.get("controlled") is not None]
    if not usable:
        return ("- control of the habit rule: too few prompts per seed for the split-half control "
                f"({habit[0].get('error', '')})")
    raw = sum(bool(h["raw"]) for h in usable)
    controlled = [h for h in usable if h["controlled"]]
    words = sorted({w for h in usable for w in h["controlled"]})
    return (f"- control of the habit rule: on {usable[0]['texts']} true stories per seed ({usable[0]['prompts']} "
            f"prompts), drawn like arm b of the control, the rule without the topic control finds habit words in "
            f"{raw} of {len(usable)} seeds, with it in {len(controlled)} of {len(usable)}"
            + (f" ({', '.join(words)})" if words else "") + ": the rule measures distance from English at large, which "
            "a narrow register has too, so it cannot decide the claim.")


def replication_judgement(out=None) -> tuple[Judgement, dict] | None:
    """Claims 2, 3 and 5 judged on the replication's new seeds alone, with its control, and the replication's record
    and study (`read_replication`); None if `python -m dftlab.study --replication` has not been run. Chapter 7 and
    CLAIMS.md both read it."""
    replication = read_replication(out)
    if replication is None:
        return None
    from dftlab.study.results import study_table

    results = study_table(replication["study"])
    control = replication["control"]
    if control is not None and control.get("truth_sha256") != truth_fingerprint(results):
        control = None
    return judge(results, real_model_words=None, control=control, claims=REPLICATED_CLAIMS), replication


def _replication_section(main: Judgement, out) -> list[str]:
    lines = ["## The frozen-rule replication: claims 2, 3 and 5 on new seeds", ""]
    judged = replication_judgement(out)
    current = rules_sha256()
    if judged is None:
        return lines + ["Not run: `python -m dftlab.study --replication` trains nll and dft on the new seeds and records "
                        "the rules' hash it ran under.", ""]
    judgement, replication = judged
    record, study = replication["record"], replication["study"]
    config = study["config"]
    frozen = record["rules_sha256"] == current
    lines += [f"After the changes above the rules were frozen (sha256 `{record['rules_sha256']}`) and nll and dft were "
              f"trained again at the headline budget ({config['steps']} steps, {config['model']}) on seeds "
              f"{config['headline_seeds']}, which no earlier run had used, through `python -m dftlab.study "
              f"--replication` ({record['wall_seconds'] / 60:.0f} minutes of wall time on the shared 2-core machine; "
              f"`study-{config['name']}-{study['config_hash']}.json`). Claims 2, 3 and 5 are judged on these seeds "
              f"alone, their {judgement.family_size} decisive tests Holm-adjusted as a family of their own, with the "
              f"control on the same seeds.", "",
              ("The rules have not changed since: the hash of rules.py and stats.py today is the one the replication "
               "ran under." if frozen else f"**The rules have changed since the replication ran (today's hash is "
                                           f"`{current}`): its verdicts below are today's rules on its data, not a "
                                           f"replication of frozen rules. Run it again on new seeds.**"), "",
              "| claim | full study (seeds 0-4) | replication | replicated? | control on the new seeds |",
              "|---|---|---|---|---|"]
    original = {item.number: item for item in main.claims}
    for item in judgement.claims:
        before = original[item.number].verdict
        lines.append(f"| {item.number} | {before} | {item.verdict} | {'yes' if before == item.verdict else 'no'} | "
                     f"{item.control_verdict or 'not computed'} |")
    lines.append("")
    for item in judgement.claims:
        lines += [f"Claim {item.number} on the new seeds: **{item.verdict}.** {item.reason}", ""]
        lines += [f"- {line}" for line in item.evidence] + [""]
    return lines


def claims_markdown(results: pd.DataFrame, study: dict, out=None) -> str:
    """CLAIMS.md: the verdicts and their controls, then each claim's rule with its history, its verdict, the numbers
    behind it, its control and what would flip it; the regime question, the reconstruction, two user reports and
    the frozen-rule replication. `out` is the results folder holding the control and the replication (default:
    the first results folder holding study results, `dftlab.storage.reading_results_dir()`)."""
    from dftlab.storage import reading_results_dir

    out = reading_results_dir() if out is None else Path(out)
    config = study["config"]
    fingerprints = ", ".join(f"{name} {digest[:12]}" for name, digest in study["model_sha256"].items())
    lines = ["# The claims, tested", "",
             f"Generated by `python -m dftlab.study claims` from `study-{config['name']}-{study['config_hash']}.json` "
             f"(dftlab {study['version']}; base models {fingerprints}: sha256 of their weights and tokenizers). "
             f"Do not edit by hand.", ""]
    control = read_control(out / f"control-{config['name']}-{study['config_hash']}.json")
    replication = config["name"] == REPLICATION_NAME
    try:
        if control is not None and control.get("truth_sha256") != truth_fingerprint(results):
            control = None
        judgement = judge(results, control=control, claims=REPLICATED_CLAIMS if replication else None)
    except ValueError as error:
        return "\n".join(lines + [f"No verdicts: {error}", ""])
    ctx = judgement.context
    seeds = (f"nll and dft with seeds {config['headline_seeds']}, every other objective with {config['seeds']}"
             if len(config["objectives"]) > len(config["headline_objectives"]) else
             f"{' and '.join(config['headline_objectives'])} with seeds {config['headline_seeds']}")
    shared = "; ".join(f"{text} decides {' and '.join(names)}" for text, names in judgement.shared_tests)
    lines += [f"Setting: {_base_description(ctx, config)} fine-tuned on TinyTales (zipf_exponent="
              f"{config['zipf_exponent']}) for {ctx.steps} steps of {config['batch_size']} stories at lr "
              f"{config['lr']:g}; {seeds}; {config['num_prompts'] * config['samples_per_prompt']} samples per model and "
              f"decoding ({config['num_prompts']} prompts), each compared with true stories for the same prompts. "
              "In the claims, \"DFT\" is Dynamic Fine-Tuning (Wu et al. 2025), the loss the study trains.", "",
              "Statistics: each comparison is paired by seed. The per-seed differences get a two-sided t-test and a "
              "95% t-interval; where every seed gives the same difference there is no spread for a t-test, and the "
              f"exact sign-flip test over seeds answers instead: its smallest two-sided p-value is 2/2^n "
              f"({minimum_p_value(5):.4g} for 5 seeds, {minimum_p_value(3):.4g} for 3), so such a difference cannot "
              "decide a verdict on 5 seeds, however large. Shares of samples (validity, the top opener's share) get a "
              "95% Wilson interval on the effective number of samples of the seed-clustered design (Korn and "
              "Graubard 1998), inside [0, 1]; a difference of two shares, Newcombe's hybrid score interval, inside "
              f"[-1, 1]. The {judgement.family_size} decisive tests below form one family, adjusted with Holm's "
              "method" + (f"; a test that decides two verdicts is one test in it ({shared})" if shared else "")
              + ". A verdict counts a difference only if its Holm-adjusted p-value is below 0.05. Lines marked "
              "\"context\" are reported unadjusted and decide nothing.", ""]
    lines += _summary_table(judgement, out, replication)
    lines += _rules_section()
    for item in judgement.claims:
        lines += [f"## Claim {item.number}: {item.claim}", "", f"Rule: {item.rule}", "",
                  "How the rule came to be (each version, and when it was fixed relative to the data):", ""]
        lines += _history_lines(item.history) + ["", f"**Verdict: {item.verdict}.** {item.reason}", "", "Numbers:", ""]
        lines += [f"- {line}" for line in item.evidence]
        if item.number == 1:
            habit = _habit_control_line(judgement.control_habit_words)
            lines += [habit] if habit else []
        lines += [""] + _control_paragraph(item) + [f"What would flip it: {item.flip}", ""]
    if not replication:
        lines += _regime_and_reconstruction(judgement)
        scale = ctx.compare("loss_scale", "dft", 1.0, b_name="NLL's own ratio")
        nll_up = ctx.compare("cross_entropy", "dft", "base")
        lines += ["## Two user reports (science.md section 4)", "",
                  f"- Users report DFT's loss value 10-20x smaller than cross-entropy. After training here, DFT's own "
                  f"loss on the test stories is {1 / scale.mean_a:,.1f}x smaller than its NLL on the same tokens: the "
                  f"weight p(y) silences exactly the tokens it has given up on (p near 0), where the NLL is largest. "
                  + scale.text(),
                  "- Does NLL go up under DFT? Sequence cross-entropy of dft minus the base model's: " + nll_up.text(),
                  ""]
        if config["name"] == "full":
            lines += _replication_section(judgement, out) + _followups_section(out, results)
        if "lora_rank" in config:
            lines += _learning_curve_section(out, results)
    return "\n".join(lines)


def _base_description(ctx, config: dict) -> str:
    """How the setting names the headline base model: the tiny study's strong prior, or the real model's regime as
    its own measurements before fine-tuning give it (a weak prior for the grammar, a strong one for English)."""
    if "lora_rank" not in config:
        return f"the strong-prior base {ctx.base_model}"
    base = ctx.results[(ctx.results["objective"] == "base") & (ctx.results["decoding"] == ctx.first)]
    return (f"the base {ctx.base_model}, a weak prior for the TinyTales grammar (before fine-tuning it writes "
            f"{base['validity'].mean():.0%} valid stories and its KL to the true stories is {base['kl'].mean():.1f} "
            f"nats per story) though a strong one for English,")


def _learning_curve_section(out, results: pd.DataFrame) -> list[str]:
    from dftlab.study.learning_curve import BUDGET_RULE, CURVE_SEED, headline_budget, load_learning_curve

    lines = ["## The budget: SFT's learning curve on this model", "", f"Rule: {BUDGET_RULE}", "",
             "How the rule came to be:", ""] + _history_lines(history.RULE_HISTORY["real-model budget"]) + [""]
    try:
        curve = load_learning_curve(out)
    except (FileNotFoundError, CorruptFileError) as error:
        return lines + [f"Not measured yet: {error}", ""]
    base = results[(results["objective"] == "base") & (results["seed"] == CURVE_SEED)]
    base_kl = float(base["kl"].iloc[0])
    rows = curve["rows"]
    lines += [f"One SFT run (nll, seed {CURVE_SEED}), measured along the way ({curve['wall_seconds'] / 60:.0f} minutes "
              f"on one core; its learning rate decays over all {int(rows['step'].max())} steps). The base model's KL "
              f"on the same test stories: {base_kl:.1f} nats per story, so a tenth of it is {base_kl / 10:.2f}.", "",
              "| steps | KL (nats per story) | validity | share of 'Once upon a time,' | p(character) | training loss |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r.step} | {r.kl:.2f} ± {1.96 * r.kl_standard_error:.2f} | {r.validity:.3f} | "
              f"{r.top_opener_share:.3f} | {r.prob_character:.3f} | {r.train_loss:.3f} |" for r in rows.itertuples()]
    budget = headline_budget(rows, base_kl)
    study_steps = int(results.loc[results["kind"] == "finetuned", "steps"].mode().iloc[0])
    if budget is None:
        lines += ["", f"**No checkpoint meets the rule**: the study's {study_steps} steps are short of the budget the "
                      "rule asks for, by more than the curve measured."]
    else:
        lines += ["", f"**The rule's budget: {budget} steps.** The study above ran {study_steps}"
                      + (", so it measures an unconverged model. Claims 2 and 3 compare the two objectives at the "
                         "same budget and can be read as that comparison, not as one between converged models; claims "
                         "4 and 5 judge SFT by its distance to the truth and need an SFT close to its data, and validity "
                         "is 0 for every model, so the study cannot test them, nor the prior question."
                         if study_steps < budget else ".")]
    return lines + [""]


def _followups_section(out, full: pd.DataFrame) -> list[str]:
    from dftlab.study.followups import (EXPECTED_OUTCOMES, LAMBDA_50_RULE, MEDIUM_PRIOR_RULE, judge_followups,
                                        load_followup)

    lines = ["## Follow-ups: the regime question's other half, and the lambda sweep at 50 steps", "",
             "Two experiments added in review, each rule committed before its runs started, on runs of their own; "
             "their tests form a Holm family of their own (`dftlab.study.followups`).", ""]
    try:
        judged = judge_followups(load_followup("medium prior", out), load_followup("lambda sweep at 50 steps", out),
                                 full)
    except (FileNotFoundError, CorruptFileError) as error:
        return lines + [f"Not run yet: {error}", ""]
    medium = judged["medium prior"]
    gap, growth = medium["gap"], medium["growth"]
    lines += ["### The medium prior", "", f"Rule: {MEDIUM_PRIOR_RULE}", "", "How the rule came to be:", ""]
    lines += _history_lines(history.RULE_HISTORY["medium prior"])
    lines += ["", f"Expected before the runs: {EXPECTED_OUTCOMES['medium prior']}", "",
              f"**{medium['verdict']}.** {gap.text()}", "",
              f"- the gap against the weak prior's (Welch): {growth[0]:+.3f} [{growth[1]:+.3f}, {growth[2]:+.3f}], "
              f"Holm-adjusted p {growth_p(medium['growth_adjusted_p'])}: "
              + ("the gap grows with the prior." if medium["gap_grows_with_prior"] else "not significant.")]
    lines += [f"- context: {c.text()}" for c in medium["context"].values()]
    lines += ["", "### The lambda sweep at 50 steps", "", f"Rule: {LAMBDA_50_RULE}", "", "How the rule came to be:", ""]
    lines += _history_lines(history.RULE_HISTORY["lambda sweep at 50 steps"])
    lines += ["", f"Expected before the runs: {EXPECTED_OUTCOMES['lambda sweep at 50 steps']}", ""]
    for label, item in judged["lambda sweep at 50 steps"].items():
        verdict, reason = item["verdict"]
        lines += [f"**{label}: {verdict}** ({reason})."]
        lines += [f"- {c.text()}" for c in item["decision"].decisive.values()] + [""]
    lines += [f"The family: {judged['family_size']} tests.", ""]
    return lines


def growth_p(p: float) -> str:
    return "not computable (no spread)" if p != p else f"{p:.3g}"


def _summary_table(judgement: Judgement, out, replication: bool) -> list[str]:
    lines = ["## The verdicts and their negative controls", "",
             "Each rule is also run, unchanged, on a control: second and third samples of the truth for the same "
             "prompts, measured like a model's samples, stand in for nll and for dft beside the study's own truth row "
             "(`dftlab.study.control`). Two truths do not differ and the truth is not formulaic, so each rule must "
             "give a null verdict there ('not supported', or for claims 1 and 4, which compare a model with the "
             "truth, 'false'); a test fails if one does not.", "",
             "| claim | verdict | control: the truth in place of the models | control null? |", "|---|---|---|---|"]
    for item in judgement.claims:
        null = {True: "yes", False: "**no**", None: "not computed"}[item.control_null]
        lines.append(f"| {item.number} | {item.verdict} | {item.control_verdict or 'not computed'} | {null} |")
    if judgement.control is None:
        lines += ["", "The control has not been computed for these results: `python -m dftlab.study claims` computes "
                      "and caches it."]
    return lines + [""]


def _rules_section() -> list[str]:
    lines = ["## When the rules were fixed", "",
             "The rules were not all written before the data. Each claim's section below lists every version of its "
             "rule with the commit that made it and the stage of the data at that moment. The data, in order:", ""]
    lines += [f"- {commit} ({date}): {what}" for commit, date, what in history.DATA_EVENTS] + [""]
    lines += ["The statistics every rule shares:", ""] + _history_lines(history.STATISTICS_HISTORY) + [""]
    lines += [f"The rules as they stand are frozen: sha256 `{rules_sha256()}` of "
              f"{' and '.join('src/dftlab/study/' + name for name in FROZEN_SOURCES)} (`dftlab.study.claims."
              f"rules_sha256`: each file's name, a NUL byte, its text with \\n line ends, a NUL byte). A test fails if "
              f"the hash changes without a new replication on new seeds (the last section).", ""]
    return lines


def _regime_and_reconstruction(judgement: Judgement) -> list[str]:
    verdict, reason = judgement.regime
    lines = ["## The regime question (Li et al.): does the prior decide between DFT and NLL?", "",
             f"Rule: {REGIME_RULE}", "", "How the rule came to be:", ""]
    lines += _history_lines(history.RULE_HISTORY["regime"]) + ["", f"**{verdict.rstrip('.')}.** {reason}", ""]
    lines += [f"- {line}" for line in judgement.regime_evidence] + [""]
    lines += ["## A distribution-level objective (the course's reconstruction, not Rosmine's algorithm)", "",
              f"Rule: {RECONSTRUCTION_RULE} Rosmine's Distribution Fine Tuning is unpublished (its post names only "
              f"\"a sequence of LoRA\"); this tests the idea, not the method.", "", "How the rule came to be:", ""]
    lines += _history_lines(history.RULE_HISTORY["reconstruction"]) + [""]
    for label, verdict, reason, evidence in judgement.reconstruction:
        lines += [f"**{label}: {verdict}** ({reason}).", ""] + [f"- {line}" for line in evidence] + [""]
    return lines


def write_claims(quick: bool = False, out=None, real_model: bool = False, config=None, log=None) -> Path:
    """Regenerate CLAIMS.md (or, with `real_model`, the real-model study's claims file; or `config`'s) from cached
    results (`python -m dftlab.study claims [--real-model]`), computing the control first if it is not cached."""
    from dftlab.storage import atomic_write_text, results_dir
    from dftlab.study.cache import claims_path, fingerprints, read_study
    from dftlab.study.config import real_model_config
    from dftlab.study.control import ensure_control
    from dftlab.study.results import study_table

    if config is None:
        config = real_model_config(quick) if real_model else default_config(quick)
    study = read_study(config, out)  # out None: the first results folder holding it
    results = study_table(study)
    ensure_control(config, out, results, log)
    path = claims_path(results_dir() if out is None else Path(out), config, fingerprints(config))
    atomic_write_text(path, claims_markdown(results, study, out))
    return path
