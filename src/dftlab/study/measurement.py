"""Measuring one run of the study: train (for a fine-tuning), then measure the model and its samples.

What one run measures:
- with the model: the exact sequence cross-entropy on true test stories beside H(q), and KL = CE - H(q)
  (an upper bound: one tokenisation per text); the mean predictive entropy; the final loss value of the
  objective next to its NLL on the same tokens (the "loss scale"); a histogram and quantiles of p(target
  token) on the validation stories, and its mean at the character-name tokens and at the others;
- on samples, drawn for the first test prompts at each decoding: validity, the opener and ending frequency
  tables with a chi-square test against the truth, the share of the top opener beside its true probability,
  distinct-1/2/3, self-BLEU, the Zipf coefficient, seq-rep-4, and against a *matched reference* (true
  stories drawn for the very same prompts) token L2 (n = 1, 2), overuse ratios and MMD.

The truth rows are one more sample of true stories for the same prompts, measured like a model's samples:
their distances to the reference are the noise floor, and their MMD p-value is the test's control (it
should not reject in most seeds).

Every study measures its runs with the one function `compute_run`. What differs between studies (how the model is
loaded, how stories are formatted for it, how it is fine-tuned, how it is scored and sampled) is a `Pipeline` passed
in: `TINY_MODEL_PIPELINE` here, `dftlab.study.real_model.REAL_MODEL_PIPELINE` for the real chat model.
"""
from __future__ import annotations

import copy
import json
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from dftlab.runtime import torch_threads
from dftlab.study.config import (FORMULAIC_PHRASES, HISTOGRAM_BINS, PROBABILITY_QUANTILES, STRONG_PRIOR,
                                 TOP_OPENER, TRUTH_DECODING, WEAK_PRIOR, Decoding, RunSpec, StudyConfig)

# Every metric column of the results table, in order; COLUMN_DESCRIPTIONS says what each one means.
TEXT_METRICS = ("validity", "opener_chi2", "opener_p_value", "ending_chi2", "ending_p_value",
                "top_opener_share", "top_opener_true_prob", "top_opener_ratio", "distinct_1", "distinct_2",
                "distinct_3", "self_bleu", "token_l2_1", "token_l2_2", "zipf_coefficient", "seq_rep_4",
                "overuse_formulaic", "overuse_top_phrases", "mean_words", "mmd2", "mmd_p_value")
MODEL_METRICS = ("cross_entropy", "true_entropy", "kl", "kl_standard_error", "predictive_entropy",
                 "valid_nll", "valid_accuracy", "objective_loss", "objective_nll", "loss_scale",
                 "final_train_loss", "prob_character", "prob_other") + tuple(f"prob_p{q}" for q in PROBABILITY_QUANTILES)
METRIC_COLUMNS = TEXT_METRICS + MODEL_METRICS
ID_COLUMNS = ("run_id", "kind", "base_model", "prior", "steps", "zipf_exponent", "objective", "objective_name",
              "objective_kwargs", "seed", "decoding", "temperature", "top_p")
COLUMN_DESCRIPTIONS = {
    "run_id": "<base model>-<objective>-<steps>steps-seed<seed>, <base model>-base-seed<seed> or truth-seed<seed>",
    "kind": "truth (stories drawn from TinyTales), base (no fine-tuning) or finetuned",
    "base_model": f"the base model the run started from: {STRONG_PRIOR} (strong prior) or {WEAK_PRIOR} (weak prior); "
                  "in the follow-ups also tiny-gpt2-medium (the medium prior), in the real-model study "
                  "smollm2-135m-instruct; empty for the truth",
    "prior": "strong for the study's headline base model, weak for its weak-prior base; a study with one base model "
             "(the medium-prior follow-up, the real-model study) labels it strong whatever its prior: read base_model; "
             "empty for the truth",
    "steps": "the fine-tuning budget in optimiser steps (0 for the base and the truth)",
    "zipf_exponent": "the TinyTales distribution fine-tuned on and measured against (1.1: the formulaic data)",
    "objective": "the row label, e.g. power_0.5 (see objective_name and objective_kwargs)",
    "objective_name": "the name in dftlab.objectives.OBJECTIVES ('truth' or 'base' for the reference rows)",
    "objective_kwargs": "the objective's settings, as JSON",
    "seed": "picks the TinyTales splits, the data order, the initial dropout stream and the sampling stream",
    "decoding": "T=1, or T=0.7,top-p=0.9; 'data' for the truth rows",
    "temperature": "sampling temperature", "top_p": "nucleus threshold (NaN: none)",
    "validity": "share of samples TinyTales could have produced (dftlab.metrics.validity_rate)",
    "opener_chi2": "chi-square of the valid samples' openers against the true marginal",
    "opener_p_value": "its p-value (NaN: too few valid samples for two cells)",
    "ending_chi2": "chi-square of the endings", "ending_p_value": "its p-value",
    "top_opener_share": f"share of all samples that open with {TOP_OPENER!r}",
    "top_opener_true_prob": "its exact probability under TinyTales",
    "top_opener_ratio": "top_opener_share / top_opener_true_prob",
    "distinct_1": "distinct unigrams / unigrams over all samples (Li et al. 2016); this and the other word-based "
                  "columns (distinct_*, token_l2_*, zipf_coefficient, seq_rep_4, overuse_*, mean_words) count "
                  "whitespace tokens, case and punctuation kept (metrics.words.whitespace_tokens, the study's unit)",
    "distinct_2": "the same for bigrams", "distinct_3": "the same for trigrams",
    "self_bleu": "mean BLEU of each sample against the others, 0..1 (Zhu et al. 2018), on sacrebleu's 13a tokens "
                 "(metrics.words.bleu_13a_tokens, the study's unit)",
    "token_l2_1": "L2 distance of unigram frequency vectors, samples vs true stories for the same prompts (Rosmine)",
    "token_l2_2": "the same for bigrams",
    "zipf_coefficient": "Zipf exponent of the samples' word frequencies (Holtzman et al. 2019)",
    "seq_rep_4": "mean share of repeated 4-grams within a sample (Welleck et al. 2019)",
    "overuse_formulaic": f"mean overuse ratio (samples vs true stories for the same prompts) of {list(FORMULAIC_PHRASES)}",
    "overuse_top_phrases": "mean overuse ratio of the 10 most over-used 1-3-word phrases (slop-forensics)",
    "mean_words": "mean sample length in whitespace tokens (metrics.words.whitespace_tokens, the study's unit)",
    "mmd2": "unbiased MMD^2 between sample and reference embeddings (MiniLM; n-gram features in --quick); "
            "the reference is true stories for the same prompts",
    "mmd_p_value": "its permutation p-value (on the truth rows: the truth-against-truth control)",
    "cross_entropy": "-mean log p(completion | prompt) on the true test stories, nats per story (one tokenisation "
                     "per text, so it estimates an upper bound of the text-level cross-entropy)",
    "true_entropy": "H(q), the exact entropy of a TinyTales completion, nats per story",
    "kl": "cross_entropy - true_entropy, an estimate of an upper bound of KL(q || p)",
    "kl_standard_error": "standard error of that estimate",
    "predictive_entropy": "mean entropy of the next-token distribution on the test stories, nats per token",
    "valid_nll": "token-mean NLL on the validation stories",
    "valid_accuracy": "share of validation tokens where the argmax is the target",
    "objective_loss": "the objective's own loss on the test stories (token mean)",
    "objective_nll": "the NLL on the same tokens", "loss_scale": "objective_loss / objective_nll",
    "final_train_loss": "mean of the objective's per-step training loss over the final window of steps, as the "
                        "pipeline's fine-tuning reports it (FineTuning.final_train_loss): the last evaluation window "
                        "(eval_every steps) in the tiny-model studies, the last tenth of the steps in the real-model "
                        "study",
    "prob_character": "mean p(target) on the validation stories at the tokens of the character's name (copied from "
                      "the title)",
    "prob_other": "mean p(target) on the validation stories at every other completion token",
    **{f"prob_p{q}": f"{q}th percentile of p(target token) on the validation stories" for q in PROBABILITY_QUANTILES},
}
# The metrics of the summary table, in reading order.
SUMMARY_METRICS = ("validity", "cross_entropy", "true_entropy", "kl", "predictive_entropy", "distinct_1",
                   "distinct_2", "distinct_3", "self_bleu", "token_l2_1", "token_l2_2", "zipf_coefficient",
                   "top_opener_share", "top_opener_true_prob", "overuse_formulaic", "overuse_top_phrases",
                   "mmd2", "mmd_p_value", "loss_scale", "prob_character", "prob_other")
_REFERENCE_STREAM_OFFSET = 5_000  # the reference stories' draws never overlap the truth row's
# Where each stream of true stories starts among a seed's draws (seed * 10,000 + offset + chunk, chunk < 400):
# the control's two samples sit between the truth row's and the reference's, overlapping neither.
_STREAM_OFFSETS = {"samples": 0, "control_b": 1_000, "control_c": 2_000, "reference": _REFERENCE_STREAM_OFFSET}
# Temperatures at which each model's exact opener distribution is computed: training the power family at alpha
# should look like sampling the maximum-likelihood model at T = 1 - alpha (chapter 5).
OPENER_TEMPERATURES = (1.0, 0.75, 0.5)


def opener_probabilities(model, tokenizer, prompts: list[str]) -> dict:
    """{temperature: {opener: mean share over the prompts}}: the model's exact opener distribution, no sampling."""
    from dftlab import metrics
    from dftlab.tinytales import OPENERS

    out = {}
    for temperature in OPENER_TEMPERATURES:
        table = metrics.option_probabilities(model, tokenizer, prompts, OPENERS, continuations=(" a", " an"),
                                             temperature=temperature)
        out[f"{temperature:g}"] = table.groupby("option", sort=False)["share"].mean().to_dict()
    return out


def prior_of(base_model: str | None, config: StudyConfig) -> str | None:
    if base_model is None:
        return None
    return "strong" if base_model == config.model else "weak"


def tales_for(config: StudyConfig, seed: int):
    from dftlab.tinytales import TinyTales

    return TinyTales(seed=seed, zipf_exponent=config.zipf_exponent)


def splits_for(config: StudyConfig, tales) -> dict:
    return tales.splits(train=config.train_size, valid=config.valid_size, test=config.test_size)


def true_completions(tales, prompts: list[str], per_prompt: int, seed: int, chunk: int = 5000,
                     max_chunks: int = 400, stream: str = "samples") -> list[dict]:
    """`per_prompt` stories drawn from q(. | prompt) for each prompt, by rejection from fresh draws of q.

    The truth row of the study is sampled for the very prompts the models are sampled for, so the two are
    compared like for like. `stream="reference"` draws an independent second sample (the matched reference
    every row is compared with); "control_b" and "control_c" draw the two further samples of the negative control
    (`dftlab.study.control`). Returned in prompt order, like `sample_completions`.
    """
    if stream not in _STREAM_OFFSETS:
        raise ValueError(f"true_completions(stream={stream!r}) must be one of {sorted(_STREAM_OFFSETS)}.")
    offset = _STREAM_OFFSETS[stream]
    wanted = {prompt: [] for prompt in prompts}
    needed = {prompt: per_prompt * prompts.count(prompt) for prompt in wanted}
    for index in range(max_chunks):
        for story in tales.sample(chunk, seed=10_000 * seed + offset + index):
            bucket = wanted.get(story["prompt"])
            if bucket is not None and len(bucket) < needed[story["prompt"]]:
                bucket.append(story)
        if all(len(wanted[p]) >= needed[p] for p in wanted):
            break
    else:
        short = [p for p in wanted if len(wanted[p]) < needed[p]]
        raise RuntimeError(f"true_completions: too few draws match the prompts {short[:3]}; they are too rare "
                           f"under this TinyTales. Use other prompts or raise max_chunks.")
    taken = {prompt: 0 for prompt in wanted}
    samples = []
    for prompt in prompts:
        for _ in range(per_prompt):
            samples.append(wanted[prompt][taken[prompt]])
            taken[prompt] += 1
    return samples


def _embed(texts: list[str], method: str) -> np.ndarray:
    from dftlab.metrics import sentence_embeddings

    return sentence_embeddings(texts, method=method)


def reference_embeddings(reference: list[str], config: StudyConfig) -> np.ndarray:
    """The embeddings of the matched reference that MMD compares every row's samples with.

    They depend only on the reference texts and the config's `mmd_texts` and `embedding`, so a run computes them
    once and passes them to `text_metrics` for each of its decodings."""
    return _embed(_spread(reference, config.mmd_texts), config.embedding)


def _or_nan(compute):
    """The metric, or NaN when it is undefined for these samples (e.g. no valid story to tabulate)."""
    try:
        return float(compute())
    except ValueError:
        return math.nan


def _spread(texts: list[str], count: int) -> list[str]:
    """`count` texts spread evenly over the list (so every prompt is represented), in order."""
    if len(texts) <= count:
        return list(texts)
    return [texts[i] for i in np.linspace(0, len(texts) - 1, count).round().astype(int)]


def _mean_or_error(values: pd.Series) -> float:
    if len(values) == 0:
        raise ValueError("no phrase occurs often enough to be tabulated")
    return float(values.mean())


def text_metrics(samples: list[dict], reference: list[str], tales, config: StudyConfig,
                 reference_embedding: np.ndarray | None = None) -> tuple[dict, dict]:
    """Every text metric of one set of samples against the matched reference, and the opener/ending tables.

    `reference_embedding` is `reference_embeddings(reference, config)` when the caller has it already (None:
    computed here)."""
    from dftlab import metrics

    texts = [s["completion"] for s in samples]
    true_opener = tales.choice_distribution("opener")[TOP_OPENER]
    opener_share = sum(t.startswith(" " + TOP_OPENER) for t in texts) / len(texts)
    row = {"validity": metrics.validity_rate(samples, tales),
           "top_opener_share": opener_share, "top_opener_true_prob": true_opener,
           "top_opener_ratio": opener_share / true_opener}
    tables = {}
    for choice in ("opener", "ending"):
        statistic, p_value = math.nan, math.nan
        try:
            statistic, p_value = metrics.choice_chi_square(samples, tales, choice)
        except ValueError:
            pass
        row[f"{choice}_chi2"], row[f"{choice}_p_value"] = statistic, p_value
        try:
            tables[choice] = metrics.choice_frequency_table(samples, tales, choice).to_dict("records")
        except ValueError:
            tables[choice] = []
    row.update(word_metrics(texts, reference, config.self_bleu_texts))
    result = metrics.mmd(_embed(_spread(texts, config.mmd_texts), config.embedding),
                         reference_embeddings(reference, config) if reference_embedding is None
                         else reference_embedding,
                         num_permutations=config.mmd_permutations, seed=0)
    row["mmd2"], row["mmd_p_value"] = result.mmd2, result.p_value
    return row, tables


def word_metrics(texts: list[str], reference: list[str], self_bleu_texts: int) -> dict:
    """The word-based columns of one set of samples against the matched reference (distinct_*, self_bleu,
    token_l2_*, zipf_coefficient, seq_rep_4, overuse_*, mean_words).

    Measured in the study's unit, not the course's words: whitespace tokens, case and punctuation kept
    (`metrics.words.whitespace_tokens`), and sacrebleu's 13a tokens for self-BLEU (`metrics.words.bleu_13a_tokens`).
    The cached results were measured so, and their samples are not stored, so the unit stays what it was to keep
    the cached numbers what this code computes."""
    from dftlab import metrics
    from dftlab.metrics.words import bleu_13a_tokens, whitespace_tokens

    unit = {"split_words": whitespace_tokens}
    row = {}
    for n in (1, 2, 3):
        row[f"distinct_{n}"] = _or_nan(lambda: metrics.distinct_n(texts, n, **unit))
    row["self_bleu"] = _or_nan(lambda: metrics.self_bleu(texts, max_texts=self_bleu_texts, split_words=bleu_13a_tokens))
    for n in (1, 2):
        row[f"token_l2_{n}"] = _or_nan(lambda: metrics.token_l2_distance(texts, reference, n=n, **unit))
    row["zipf_coefficient"] = _or_nan(lambda: metrics.zipf_coefficient(texts, **unit))
    row["seq_rep_4"] = _or_nan(lambda: metrics.repetition_rate(texts, n=4, **unit))
    row["overuse_formulaic"] = _or_nan(lambda: metrics.overuse_table(
        texts, reference, phrases=list(FORMULAIC_PHRASES), top=None, **unit)["overuse_ratio"].mean())
    row["overuse_top_phrases"] = _or_nan(lambda: _mean_or_error(metrics.overuse_table(
        texts, reference, n=(1, 2, 3), min_count=5, top=10, **unit)["overuse_ratio"]))
    row["mean_words"] = metrics.mean_word_count(texts, **unit)
    return row


def _objective_loss_and_nll(model, batches, objective: str, kwargs: dict, base_model) -> tuple[float, float]:
    """The objective's own loss value and the NLL on the same tokens, both token means (the loss scale)."""
    import torch

    from dftlab.objectives import causal_lm_loss, num_supervised

    loss_sum = nll_sum = tokens = 0.0
    with torch.no_grad():
        for batch in batches:
            count = float(num_supervised(batch["labels"]))
            loss_sum += float(causal_lm_loss(model, batch, objective, base_model=base_model, **kwargs)) * count
            nll_sum += float(causal_lm_loss(model, batch, "nll")) * count
            tokens += count
    return loss_sum / tokens, nll_sum / tokens


def model_metrics(model, tokenizer, splits: dict, tales, config: StudyConfig) -> tuple[dict, np.ndarray]:
    """Exact cross-entropy and KL on the test stories, predictive entropy, and p(target) on the valid stories."""
    from dftlab import metrics

    fit = metrics.sequence_cross_entropy(model, tokenizer, splits["test"], tales, batch_size=config.batch_size)
    return model_metrics_given_fit(model, tokenizer, splits, config, fit)


def model_metrics_given_fit(model, tokenizer, splits: dict, config, fit: dict) -> tuple[dict, np.ndarray]:
    """The model columns around `fit`, the exact fit on splits["test"] (cross_entropy, true_entropy, kl,
    standard_error): predictive entropy on the test stories; NLL, accuracy and p(target) on the valid ones."""
    from dftlab import metrics
    from dftlab.data import make_batches
    from dftlab.train import evaluate

    test_batches = make_batches(tokenizer, splits["test"], config.batch_size, config.max_length, shuffle=False)
    valid = evaluate(model, make_batches(tokenizer, splits["valid"], config.batch_size, config.max_length,
                                         shuffle=False))
    by_role = metrics.target_probabilities_by_role(model, tokenizer, splits["valid"], batch_size=config.batch_size)
    role_means = by_role.groupby("role")["target_prob"].mean()
    row = {"cross_entropy": fit["cross_entropy"], "true_entropy": fit["true_entropy"], "kl": fit["kl"],
           "kl_standard_error": fit["standard_error"],
           "predictive_entropy": metrics.predictive_entropy(model, test_batches),
           "valid_nll": valid["nll"], "valid_accuracy": valid["accuracy"],
           "prob_character": float(role_means.get("character", math.nan)),
           "prob_other": float(role_means.get("other", math.nan))}
    row.update({f"prob_p{q}": valid[f"prob_p{q}"] for q in PROBABILITY_QUANTILES})
    return row, valid["target_probs"]


def _histogram(target_probs: np.ndarray) -> dict:
    counts, edges = np.histogram(np.asarray(target_probs, dtype=np.float64), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {"edges": edges.round(6).tolist(), "counts": counts.tolist()}


def json_safe(value):
    """NaN and infinities as None (JSON has neither); the loader turns None back into NaN."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def run_inputs(config: StudyConfig, run: RunSpec) -> tuple:
    """What every run of a seed shares: (tales, splits, the sampled prompts, the matched reference completions)."""
    tales = tales_for(config, run.seed)
    splits = splits_for(config, tales)
    prompts = [story["prompt"] for story in splits["test"][:config.num_prompts]]
    reference = [s["completion"] for s in true_completions(tales, prompts, config.samples_per_prompt,
                                                           seed=run.seed, stream="reference")]
    return tales, splits, prompts, reference


@dataclass(frozen=True)
class FineTuning:
    """What a pipeline's fine-tuning hands back: the trained model (in eval mode), its training history as JSON
    records, the `final_train_loss` column (see COLUMN_DESCRIPTIONS) and, for an objective that needs them, the
    model whose logits the objective compares with (None otherwise)."""
    model: object
    history: list
    final_train_loss: float
    base_model: object = None


@dataclass(frozen=True)
class Pipeline:
    """The steps of a run that differ from one study to another, passed to `compute_run`.

    Everything else is shared by every study: the run's inputs (`run_inputs`), the truth rows, the objective's
    loss scale, the text metrics against the matched reference, the histogram and the cached payload.

    - `format_splits(tokenizer, splits)`: the TinyTales splits as the model is trained and scored on them (the
      tiny models read the stories as they are; a chat model reads them in its chat template);
    - `finetune(model, tokenizer, splits, config, run)`: train the model for a fine-tuned run, a `FineTuning`;
    - `fit_metrics(model, tokenizer, formatted_splits, tales, config)`: the model-metric columns and the
      validation p(target) array (for the histogram);
    - `sample(model, tokenizer, prompts, config, decoding, seed)`: `config.samples_per_prompt` stories for each
      prompt ({"prompt", "completion", ...} as `dftlab.generate.sample_completions` returns them);
    - `extras(model, tokenizer, prompts, config, run)`: further entries of the payload (the exact opener
      probabilities, or the answers to open prompts);
    - `load_model(name)`: (model, tokenizer) for a base model's name or folder (default `dftlab.load_model`).
    """
    format_splits: Callable
    finetune: Callable
    fit_metrics: Callable
    sample: Callable
    extras: Callable
    load_model: Callable = None

    def load(self, name: str):
        if self.load_model is not None:
            return self.load_model(name)
        from dftlab.models import load_model

        return load_model(name)


def stories_as_written(tokenizer, splits: dict) -> dict:
    """The tiny models read the TinyTales stories as they are."""
    return splits


def finetune_with_train_loop(model, tokenizer, splits: dict, config: StudyConfig, run: RunSpec) -> FineTuning:
    """Fine-tune a tiny model with `dftlab.train.train`; its last history row's train_loss is the mean over the last
    evaluation window."""
    from dftlab.objectives import needs_base_logits
    from dftlab.train import train

    spec = run.objective
    base_model = copy.deepcopy(model).eval() if needs_base_logits(spec.objective) else None
    result = train(model, tokenizer, splits["train"], splits["valid"], spec.objective, steps=run.steps,
                   batch_size=config.batch_size, lr=config.lr, warmup_steps=min(config.warmup_steps, run.steps),
                   eval_every=config.eval_every, max_length=config.max_length, seed=run.seed,
                   objective_kwargs=dict(spec.kwargs), progress=False)
    return FineTuning(model, result.history.to_dict("records"), float(result.history["train_loss"].iloc[-1]),
                      base_model)


def sample_stories(model, tokenizer, prompts: list[str], config: StudyConfig, decoding: Decoding, seed: int) -> list:
    """A tiny model's samples: `dftlab.generate.sample_completions` at the decoding's settings."""
    from dftlab.generate import sample_completions

    return sample_completions(model, tokenizer, prompts, config.samples_per_prompt, temperature=decoding.temperature,
                              top_p=decoding.top_p, max_new_tokens=config.max_new_tokens, seed=seed)


def opener_extras(model, tokenizer, prompts: list[str], config: StudyConfig, run: RunSpec) -> dict:
    return {"opener_probs": opener_probabilities(model, tokenizer, prompts)}


TINY_MODEL_PIPELINE = Pipeline(format_splits=stories_as_written, finetune=finetune_with_train_loop,
                               fit_metrics=model_metrics, sample=sample_stories, extras=opener_extras)


def compute_run(config: StudyConfig, run: RunSpec, pipeline: Pipeline = TINY_MODEL_PIPELINE) -> dict:
    """Train (if it is a fine-tuning) and measure one run; returns the JSON payload cached for it.

    `pipeline` holds the steps that differ between studies (`Pipeline`); the truth rows need no model and are the
    same in every study. Runs use one thread (`dftlab.runtime.torch_threads(1)`): the numbers then do not depend on
    how many cores the machine has or how many runs share it, and two small processes beat one two-thread process
    here.
    """
    from dftlab.data import make_batches

    started = time.time()
    with torch_threads(1):
        tales, splits, prompts, reference = run_inputs(config, run)
        reference_embedding = reference_embeddings(reference, config)
        rows, tables, histogram, history, extras, previews = [], {}, None, [], {"opener_probs": {}}, {}
        if run.kind == "truth":
            samples = true_completions(tales, prompts, config.samples_per_prompt, seed=run.seed)
            text_row, tables[TRUTH_DECODING] = text_metrics(samples, reference, tales, config, reference_embedding)
            rows.append({"decoding": TRUTH_DECODING, "temperature": math.nan, "top_p": math.nan,
                         "true_entropy": tales.entropy(), **text_row})
            previews[TRUTH_DECODING] = [s["completion"] for s in samples[:3]]
        else:
            model, tokenizer = pipeline.load(run.base_model)
            formatted = pipeline.format_splits(tokenizer, splits)
            model_row = {}
            if run.kind == "finetuned":
                spec = run.objective
                tuning = pipeline.finetune(model, tokenizer, splits, config, run)
                model, history = tuning.model, tuning.history
                test_batches = make_batches(tokenizer, formatted["test"], config.batch_size, config.max_length,
                                            shuffle=False)
                loss, loss_nll = _objective_loss_and_nll(model, test_batches, spec.objective, spec.kwargs,
                                                         tuning.base_model)
                model_row.update(objective_loss=loss, objective_nll=loss_nll, loss_scale=loss / loss_nll,
                                 final_train_loss=tuning.final_train_loss)
            fit_row, target_probs = pipeline.fit_metrics(model, tokenizer, formatted, tales, config)
            model_row.update(fit_row)
            histogram = _histogram(target_probs)
            extras = pipeline.extras(model, tokenizer, prompts, config, run)
            for index, decoding in enumerate(config.decodings):
                samples = pipeline.sample(model, tokenizer, prompts, config, decoding, seed=1000 * run.seed + index)
                text_row, tables[decoding.name] = text_metrics(samples, reference, tales, config, reference_embedding)
                rows.append({"decoding": decoding.name, "temperature": decoding.temperature,
                             "top_p": math.nan if decoding.top_p is None else decoding.top_p,
                             **text_row, **model_row})
                previews[decoding.name] = [s["completion"] for s in samples[:3]]
    return {"run": run.to_dict(), "rows": json_safe(rows_with_identity(config, run, rows)),
            "choice_tables": json_safe(tables), "histogram": histogram, "history": json_safe(history),
            "previews": previews, **extras, "seconds": round(time.time() - started, 1)}


def rows_with_identity(config: StudyConfig, run: RunSpec, rows: list[dict]) -> list[dict]:
    """Each measured row with the run's identity columns in front and NaN for every metric it did not measure."""
    from pathlib import Path

    identity = {"run_id": run.run_id, "kind": run.kind,
                "base_model": Path(run.base_model).name if run.base_model else None,
                "prior": prior_of(run.base_model, config), "steps": run.steps,
                "zipf_exponent": config.zipf_exponent, "objective": run.label,
                "objective_name": run.objective.objective if run.objective else run.kind,
                "objective_kwargs": json.dumps(run.objective.kwargs if run.objective else {}, sort_keys=True),
                "seed": run.seed}
    return [{**identity, **{c: math.nan for c in METRIC_COLUMNS}, **row} for row in rows]
