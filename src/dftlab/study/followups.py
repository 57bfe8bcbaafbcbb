"""Two follow-up experiments of the tiny-model study, each rule written down before its runs existed.

1. **The regime question's other half** (`medium_prior_config`). The study's strong prior copies the title's character
   at p = 0.9997 before any fine-tuning, so it cannot show the half of Li et al. (2025) that says probability-based
   objectives *win* where the prior is strong: there is nothing left to win. The medium prior is a third base model,
   `tiny-gpt2-medium`: the weak prior (`tiny-gpt2-english`) after `MEDIUM_PRIOR_RECIPE`'s short NLL fine-tuning on
   TinyTales stories of a seed no study run uses. It copies the character at about 0.6-0.9 (`build_medium_prior`
   measures it and refuses a model outside that band), so the skill is well learnt but not perfect.
   nll and dft then fine-tune it at the headline budget on new seeds (`MEDIUM_PRIOR_SEEDS`).
2. **The lambda sweep of `distribution_matching` at 50 steps** (`lambda_sweep_config`). At the study's 200 steps SFT
   already matches the unigram frequencies, so a penalty on the unigram gap has nothing to fix; at 50 steps it has.

The rules (`MEDIUM_PRIOR_RULE`, `LAMBDA_50_RULE`) are in this module, not in the frozen `rules.py`, and their tests
form a Holm family of their own (`judge_followups`). Their history is `history.RULE_HISTORY`'s "medium prior" and
"lambda sweep at 50 steps" entries. Run both: `python -m dftlab.study --followups`.
"""
from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dftlab.study.config import StudyConfig, default_config

MEDIUM_PRIOR = "tiny-gpt2-medium"
# The recipe of the medium prior: the weak prior, fine-tuned with NLL on TinyTales stories of seed 100 (no study run
# uses seed 100). 240 steps put its p(character) in the band below (measured: bench/RESULTS.md, "Medium prior").
MEDIUM_PRIOR_RECIPE = {"base": "tiny-gpt2-english", "objective": "nll", "data_seed": 100, "steps": 240,
                       "warmup_steps": 20}
MEDIUM_PRIOR_BAND = (0.6, 0.9)  # p(character) of the medium prior before fine-tuning
MEDIUM_PRIOR_SEEDS = (10, 11, 12, 13, 14)  # new seeds: none was used by the study, its control or its replication
LAMBDA_SWEEP_STEPS = 50

MEDIUM_PRIOR_RULE = (
    "Li et al. say probability-based objectives (the -p end, Dynamic FT) do as well as or better than NLL where the "
    "base model's prior for the task is strong. The medium prior copies the title's character at p(character) 0.6-0.9 "
    "before fine-tuning. Fine-tuned from it with nll and dft at the headline budget on 5 new seeds, the rule reads "
    "dft - nll in p(character) (paired by seed): 'Dynamic FT wins' if it is significantly above 0, 'NLL wins' if "
    "significantly below, 'no difference' otherwise. Beside it, 'the gap grows with the prior' if dft - nll from the "
    "medium prior is significantly above dft - nll from the weak prior (a difference of means across seeds, Welch's "
    "t-test, since the two come from different seeds). Validity and KL are reported beside them and decide nothing.")
LAMBDA_50_RULE = (
    "The lambda sweep's rule (rules.RECONSTRUCTION_RULE), unchanged, at 50 steps instead of 200: at each lambda "
    "against plain SFT at 50 steps on the study's seeds 0-2, 'helps' if it brings the top-opener share or the unigram "
    "token L2 significantly closer to the truth, 'hurts' if it significantly lowers validity or raises the "
    "cross-entropy on true stories.")

# What the theory predicts, written before the runs (chapter 7 prints it beside what happened).
EXPECTED_OUTCOMES = {
    "medium prior": (
        "Dynamic FT's gradient is NLL's weighted by p(target). From the weak prior (p(character) about 0.0001) that "
        "weight starves the name tokens and DFT never learns to copy; from the medium prior the weight is about 0.76, "
        "so DFT should learn the copy as well as NLL, and push the already-likely name further up: 'no difference' or "
        "'Dynamic FT wins', and the gap should grow with the prior. DFT should still collapse the story's free choices "
        "(KL far above NLL's), whatever the prior."),
    "lambda sweep at 50 steps": (
        "At 50 steps SFT's unigram frequencies are still off, so a penalty on the unigram gap has something to fix: "
        "the larger lambdas may lower the unigram token L2 a little. The top opener's share is one slot among many "
        "and should not move measurably; validity and cross-entropy should not suffer at these weights."),
}


def medium_prior_folder() -> Path:
    from dftlab.models import EMBEDDED_MODELS

    return EMBEDDED_MODELS[MEDIUM_PRIOR]


MEDIUM_PRIOR_LICENCE = ("Weights: MIT, like the code. Trained by dftlab from `tiny-gpt2-english` (MIT; its own model card "
                        "gives its public-domain training text) on TinyTales stories that `dftlab.tinytales` generates.")


def build_medium_prior(target: Path | None = None, log=print) -> Path:
    """Train the medium prior by `MEDIUM_PRIOR_RECIPE` and write it (weights, tokenizer, SHA256SUMS, MODEL_CARD.md) to
    `target` (default: the package's `tiny-gpt2-medium` folder), whole or not at all. Raises ValueError if its
    p(character) falls outside `MEDIUM_PRIOR_BAND`, and writes nothing then."""
    import json
    import shutil

    from dftlab import metrics
    from dftlab.storage import replace_folder, write_checksums
    from dftlab.models import load_model
    from dftlab.runtime import torch_threads
    from dftlab.study.measurement import splits_for, tales_for
    from dftlab.train import train

    target = medium_prior_folder() if target is None else Path(target)
    recipe, config = MEDIUM_PRIOR_RECIPE, default_config()
    with torch_threads(1):
        model, tokenizer = load_model(recipe["base"])
        splits = splits_for(config, tales_for(config, recipe["data_seed"]))
        result = train(model, tokenizer, splits["train"], None, recipe["objective"], steps=recipe["steps"],
                       batch_size=config.batch_size, lr=config.lr, warmup_steps=recipe["warmup_steps"],
                       max_length=config.max_length, seed=recipe["data_seed"], progress=False)
        by_role = metrics.target_probabilities_by_role(model, tokenizer, splits["valid"])
    prob_character = float(by_role.loc[by_role["role"] == "character", "target_prob"].mean())
    prob_other = float(by_role.loc[by_role["role"] == "other", "target_prob"].mean())
    low, high = MEDIUM_PRIOR_BAND
    if not low <= prob_character <= high:
        raise ValueError(f"build_medium_prior: p(character) is {prob_character:.3f}, outside the band {low}-{high} the "
                         f"medium prior is defined by; change MEDIUM_PRIOR_RECIPE['steps'] and say why.")
    log(f"medium prior: p(character) {prob_character:.3f}, p(other tokens) {prob_other:.3f}")
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    report = {"recipe": recipe, "prob_character": prob_character, "prob_other": prob_other,
              "final_train_loss": float(result.history["train_loss"].iloc[-1]),
              "study_config": {k: getattr(config, k) for k in ("batch_size", "lr", "max_length", "train_size")}}
    (staging / "medium_prior_report.json").write_text(json.dumps(report, indent=1))
    write_checksums(staging, sorted(p.name for p in staging.iterdir()))
    (staging / "MODEL_CARD.md").write_text(
        f"# {MEDIUM_PRIOR}\n\nThe medium prior of the study's regime question (`dftlab.study.followups`): "
        f"`{recipe['base']}` fine-tuned with `{recipe['objective']}` for {recipe['steps']} steps on TinyTales stories "
        f"of seed {recipe['data_seed']} (the study's batch size, learning rate and length). Before any further "
        f"fine-tuning it gives the title's character p = {prob_character:.3f} where the story repeats it, and the "
        f"other tokens p = {prob_other:.3f}. Rebuild: `python -m dftlab.study --build-medium-prior`.\n\n"
        f"## Licence and provenance\n\n{MEDIUM_PRIOR_LICENCE}\n")
    return replace_folder(staging, target)


def medium_prior_config() -> StudyConfig:
    """nll and dft from the medium prior at the headline budget, on `MEDIUM_PRIOR_SEEDS`."""
    full = default_config()
    headline = tuple(o for o in full.objectives if o.label in full.headline_objectives)
    return StudyConfig(name="medium-prior", model=MEDIUM_PRIOR, weak_model=None, objectives=headline,
                       seeds=MEDIUM_PRIOR_SEEDS, headline_objectives=full.headline_objectives,
                       headline_seeds=MEDIUM_PRIOR_SEEDS, budget_sweep=())


def lambda_sweep_config() -> StudyConfig:
    """nll and the three distribution_matching lambdas at 50 steps, on the study's seeds 0-2."""
    full = default_config()
    chosen = tuple(o for o in full.objectives if o.label == "nll" or o.objective == "distribution_matching")
    return replace(full, name="lambda-50", weak_model=None, objectives=chosen, headline_objectives=("nll",),
                   seeds=full.seeds, headline_seeds=full.seeds, budget_sweep=(), steps=LAMBDA_SWEEP_STEPS)


FOLLOWUP_CONFIGS = {"medium prior": medium_prior_config, "lambda sweep at 50 steps": lambda_sweep_config}


def load_followup(which: str, out=None) -> pd.DataFrame:
    """The cached results of one follow-up ("medium prior" or "lambda sweep at 50 steps")."""
    from dftlab.study.results import load_results

    if which not in FOLLOWUP_CONFIGS:
        raise ValueError(f"load_followup: unknown follow-up {which!r}; choose from {sorted(FOLLOWUP_CONFIGS)}.")
    return load_results(config=FOLLOWUP_CONFIGS[which](), out=out)


def _welch(a: pd.Series, b: pd.Series) -> tuple[float, float, float, float]:
    """mean(a) - mean(b), its 95% interval and the two-sided p-value of Welch's t-test."""
    from scipy import stats

    a, b = a.dropna().astype(float), b.dropna().astype(float)
    difference = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return difference, difference, difference, math.nan
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(stats.t.ppf(0.975, df)) * se
    return difference, difference - half, difference + half, float(2 * stats.t.sf(abs(difference) / se, df))


def _sweep_context(sweep: pd.DataFrame):
    """The rules' Context for the lambda sweep (`rules.context_of` wants dft rows, which the sweep does not train)."""
    from dftlab.study.config import TRUTH_DECODING
    from dftlab.study.rules import Context
    from dftlab.study.stats import headline

    base_model, steps = headline(sweep)
    decodings = [d for d in dict.fromkeys(sweep["decoding"]) if d != TRUTH_DECODING]
    true_share = float(sweep.loc[sweep["objective"] == "truth", "top_opener_true_prob"].iloc[0])
    return Context(sweep, base_model, steps, decodings, None, [steps], true_share)


def judge_followups(medium: pd.DataFrame, sweep: pd.DataFrame, full: pd.DataFrame) -> dict:
    """Both follow-ups' verdicts, their tests Holm-adjusted as one family of their own.

    Returns {"medium prior": {...}, "lambda sweep at 50 steps": {label: {...}}, "family_size": n}; each verdict
    carries its deciding comparisons (`stats.Comparison`), their adjusted p-values filled in."""
    from dftlab.study.rules import reconstruction_evidence, reconstruction_labels, reconstruction_verdict
    from dftlab.study.stats import compare, holm

    gap = compare(medium, "prob_character", "dft", "nll", "T=1", base_model=MEDIUM_PRIOR)
    weak_rows = full[full["prior"] == "weak"]
    weak_model = str(weak_rows["base_model"].iloc[0])

    def per_seed_gap(table, model):
        rows = table[(table["base_model"] == model) & (table["decoding"] == "T=1") & (table["kind"] == "finetuned")]
        values = rows.pivot_table(index="seed", columns="objective", values="prob_character", aggfunc="first")
        return values["dft"] - values["nll"]

    growth = _welch(per_seed_gap(medium, MEDIUM_PRIOR), per_seed_gap(full, weak_model))
    context = {metric: compare(medium, metric, "dft", "nll", "T=1", base_model=MEDIUM_PRIOR, interval="auto")
               for metric in ("validity", "kl")}
    ctx = _sweep_context(sweep)
    sweep_decisions = {label: reconstruction_evidence(ctx, label) for label in reconstruction_labels(sweep)}
    tests = [gap] + [c for d in sweep_decisions.values() for c in d.decisive.values()]
    p_values = [c.p_value for c in tests] + [growth[3]]
    adjusted = holm(p_values)
    for comparison, p in zip(tests, adjusted):
        comparison.adjusted_p = p
    growth_adjusted = adjusted[-1]
    if gap.above:
        medium_verdict = "Dynamic FT wins"
    elif gap.below:
        medium_verdict = "NLL wins"
    else:
        medium_verdict = "no difference"
    grows = bool(growth_adjusted < 0.05 and growth[0] > 0)
    return {"medium prior": {"verdict": medium_verdict, "gap": gap, "growth": growth,
                             "growth_adjusted_p": growth_adjusted, "gap_grows_with_prior": grows,
                             "context": context, "rule": MEDIUM_PRIOR_RULE},
            "lambda sweep at 50 steps": {label: {"verdict": reconstruction_verdict(d, ctx), "decision": d}
                                         for label, d in sweep_decisions.items()},
            "family_size": sum(not math.isnan(p) for p in p_values)}

