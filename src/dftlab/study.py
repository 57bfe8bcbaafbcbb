"""The study (chapter "The study"): every objective, one budget, every measurement, with seeds and CIs.

    python -m dftlab.study            # the full study, about 30 minutes on 2 cores; resumes if interrupted
    python -m dftlab.study --quick    # every column on tiny budgets, under 3 minutes
    python -m dftlab.study claims     # rewrite results/CLAIMS.md from the cached results

What one *run* is. The embedded tiny-gpt2 is fine-tuned on TinyTales (zipf_exponent=1.1, the formulaic
data) with one objective and one seed. Every objective gets the same budget: the same steps, batch
size, learning rate and schedule (one learning rate for all; see `StudyConfig`). The seed picks the
TinyTales splits, the data order and the sampling stream, so the confidence intervals cover all three.
Then the run is measured:

- with the model: the exact sequence cross-entropy on true test stories beside H(q), and KL = CE - H(q);
  the mean predictive entropy; the final loss value of the objective next to its NLL on the same tokens
  (the "loss scale"); a histogram and quantiles of p(target token) on the validation stories;
- on samples, drawn for the test prompts at T = 1 and at (T = 0.7, top-p = 0.9): validity, the opener and
  ending frequency tables with a chi-square test against the truth, the share of the top opener
  "Once upon a time," beside its true probability, distinct-1/2/3, self-BLEU, token L2 (n = 1, 2) and MMD
  against held-out true stories, the Zipf coefficient, seq-rep-4 and two overuse ratios.

Reference rows: the *base* model (no fine-tuning) and the *truth* (stories drawn from TinyTales itself for
the same prompts; decoding "data"), which shows how far two samples of the true distribution lie apart.
The regime question of Li et al. adds nll and dft runs on TinyTales(zipf_exponent=0.3), the distribution
the base model was pretrained on.

The table is tidy with one row per run x decoding and one column per metric (`METRIC_COLUMNS`);
measurements that do not depend on the decoding (cross-entropy, KL, predictive entropy, loss scale,
p(target) quantiles) repeat on both decoding rows. Caching: each run is written to
`results/runs/run-<run id>-<hash>.json` as soon as it finishes, keyed by a hash of everything that
shapes it (model weights included), so an interrupted study resumes and a changed setting recomputes
exactly the runs it touches. The assembled study goes to `results/study-<name>-<hash>.json` with its
config and `dftlab.__version__`. Every cache file carries a sha256 (`dftlab.storage`): a damaged one is
detected and recomputed, never read.
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

import dftlab
from dftlab.storage import CorruptFileError, atomic_write_text, read_json_with_hash, write_json_with_hash

TOP_OPENER = "Once upon a time,"
# The first (most frequent) option of the TinyTales choices that show up as a phrase of their own.
FORMULAIC_PHRASES = ("Once upon a time,", "small", "One day,", "felt happy.", "The end.")
HISTOGRAM_BINS = 20
PROBABILITY_QUANTILES = (10, 25, 50, 75, 90)

# Every metric column of the results table, in order; COLUMN_DESCRIPTIONS says what each one means.
TEXT_METRICS = ("validity", "opener_chi2", "opener_p_value", "ending_chi2", "ending_p_value",
                "top_opener_share", "top_opener_true_prob", "top_opener_ratio", "distinct_1", "distinct_2",
                "distinct_3", "self_bleu", "token_l2_1", "token_l2_2", "zipf_coefficient", "seq_rep_4",
                "overuse_formulaic", "overuse_top_phrases", "mean_words", "mmd2", "mmd_p_value")
MODEL_METRICS = ("cross_entropy", "true_entropy", "kl", "kl_standard_error", "predictive_entropy",
                 "valid_nll", "valid_accuracy", "objective_loss", "objective_nll", "loss_scale",
                 "final_train_loss") + tuple(f"prob_p{q}" for q in PROBABILITY_QUANTILES)
METRIC_COLUMNS = TEXT_METRICS + MODEL_METRICS
ID_COLUMNS = ("run_id", "kind", "zipf_exponent", "objective", "objective_name", "objective_kwargs", "seed",
              "decoding", "temperature", "top_p")
COLUMN_DESCRIPTIONS = {
    "run_id": "zipf<exponent>-<objective>-seed<seed>: one truth sample, base model or fine-tuning",
    "kind": "truth (stories drawn from TinyTales), base (no fine-tuning) or finetuned",
    "zipf_exponent": "the TinyTales distribution: 1.1 is the fine-tuning data, 0.3 the pretraining-like one",
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
    "distinct_1": "distinct unigrams / unigrams over all samples (Li et al. 2016)",
    "distinct_2": "the same for bigrams", "distinct_3": "the same for trigrams",
    "self_bleu": "mean BLEU of each sample against the others, 0..1 (Zhu et al. 2018)",
    "token_l2_1": "L2 distance of unigram frequency vectors, samples vs held-out true stories (Rosmine)",
    "token_l2_2": "the same for bigrams",
    "zipf_coefficient": "Zipf exponent of the samples' word frequencies (Holtzman et al. 2019)",
    "seq_rep_4": "mean share of repeated 4-grams within a sample (Welleck et al. 2019)",
    "overuse_formulaic": f"mean overuse ratio (samples vs held-out true stories) of {list(FORMULAIC_PHRASES)}",
    "overuse_top_phrases": "mean overuse ratio of the 10 most over-used 1-3-word phrases (slop-forensics)",
    "mean_words": "mean sample length in words",
    "mmd2": "unbiased MMD^2 between sample and held-out-story embeddings (MiniLM; n-gram features in --quick)",
    "mmd_p_value": "its permutation p-value",
    "cross_entropy": "exact -mean log p(completion | prompt) on the true test stories, nats per story",
    "true_entropy": "H(q), the exact entropy of a TinyTales completion, nats per story",
    "kl": "cross_entropy - true_entropy, an estimate of KL(q || p) (an upper bound: one tokenisation per text)",
    "kl_standard_error": "standard error of that estimate",
    "predictive_entropy": "mean entropy of the next-token distribution on the test stories, nats per token",
    "valid_nll": "token-mean NLL on the validation stories after training",
    "valid_accuracy": "share of validation tokens where the argmax is the target",
    "objective_loss": "the objective's own loss on the test stories (token mean)",
    "objective_nll": "the NLL on the same tokens", "loss_scale": "objective_loss / objective_nll",
    "final_train_loss": "mean training loss over the last evaluation window",
    **{f"prob_p{q}": f"{q}th percentile of p(target token) on the validation stories" for q in PROBABILITY_QUANTILES},
}
# The metrics of the summary table (the brief of the study chapter), in reading order.
SUMMARY_METRICS = ("validity", "cross_entropy", "true_entropy", "kl", "predictive_entropy", "distinct_1",
                   "distinct_2", "distinct_3", "self_bleu", "token_l2_1", "token_l2_2", "zipf_coefficient",
                   "top_opener_share", "top_opener_true_prob", "overuse_formulaic", "overuse_top_phrases",
                   "mmd2", "loss_scale")


# ---------------------------------------------------------------------------------------------
# The configuration: what is trained, how long, and how it is measured.
# ---------------------------------------------------------------------------------------------

@dataclass
class ObjectiveSpec:
    """One row label of the study: `label` (e.g. "power_0.5") trains `objective` with `kwargs`."""
    label: str
    objective: str
    kwargs: dict = field(default_factory=dict)


@dataclass
class Decoding:
    """How samples are drawn: a name for the table, a temperature and an optional top-p."""
    name: str
    temperature: float
    top_p: float | None = None


# The power family at alpha = 1 has exactly DFT's gradient (1 - p versus -sg(p) log p), so with the same seed
# it trains the same model up to rounding: the "dft" row is also power_1.0, so the study spends no runs on a copy.
DEFAULT_OBJECTIVES = (
    ObjectiveSpec("nll", "nll"),
    ObjectiveSpec("dft", "dft"),
    ObjectiveSpec("dft_floored", "dft_floored", {"floor": 0.1}),
    ObjectiveSpec("power_0.25", "power", {"alpha": 0.25}),
    ObjectiveSpec("power_0.5", "power", {"alpha": 0.5}),
    ObjectiveSpec("mix_0.5", "mix", {"lam": 0.5}),
    ObjectiveSpec("asft", "asft", {"lam": 0.05}),
    ObjectiveSpec("distribution_matching", "distribution_matching", {"lam": 1.0}),
)
DEFAULT_DECODINGS = (Decoding("T=1", 1.0, None), Decoding("T=0.7,top-p=0.9", 0.7, 0.9))
TRUTH_DECODING = "data"


@dataclass
class StudyConfig:
    """Everything that shapes the study's numbers. Two configs with equal fields give equal results.

    One learning rate for every objective: a per-objective tuning would need its own budget and would
    mix "which loss" with "how well tuned". DFT's gradient is p times NLL's, so at the same lr it moves
    less per step on unlikely tokens; that is part of what the study measures, not a handicap to undo.
    The budget, 300 steps of 16 stories (1.6 epochs of the 3,000 training stories), was sized on 2 CPU
    cores: a run costs about 80 s. Fewer steps are not enough here: with 240 steps or fewer, SFT has not
    yet learnt to keep the title's character through the story, and almost none of its samples are valid.
    `model` is an embedded model name or a folder holding a saved model and tokenizer (tests use one).
    """
    name: str = "full"
    model: str = "tiny-gpt2"
    objectives: tuple = DEFAULT_OBJECTIVES
    seeds: tuple = (0, 1, 2)
    zipf_exponent: float = 1.1
    regime_zipf_exponent: float | None = 0.3
    regime_objectives: tuple = ("nll", "dft")
    train_size: int = 3000
    valid_size: int = 100
    test_size: int = 300
    steps: int = 300
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 30
    eval_every: int = 150
    max_length: int = 128
    num_prompts: int = 16
    samples_per_prompt: int = 10
    max_new_tokens: int = 96
    decodings: tuple = DEFAULT_DECODINGS
    embedding: str = "minilm"
    mmd_texts: int = 120
    mmd_permutations: int = 200
    self_bleu_texts: int = 160

    def __post_init__(self):
        self.objectives = tuple(o if isinstance(o, ObjectiveSpec) else ObjectiveSpec(**o) for o in self.objectives)
        self.decodings = tuple(d if isinstance(d, Decoding) else Decoding(**d) for d in self.decodings)
        self.seeds, self.regime_objectives = tuple(self.seeds), tuple(self.regime_objectives)
        labels = [o.label for o in self.objectives]
        if len(set(labels)) != len(labels) or {"base", "truth"} & set(labels):
            raise ValueError(f"StudyConfig(objectives=...): labels must be unique and not 'base' or 'truth', "
                             f"got {labels}.")
        unknown = [label for label in self.regime_objectives if label not in labels]
        if unknown:
            raise ValueError(f"StudyConfig(regime_objectives={self.regime_objectives!r}): {unknown} are not "
                             f"objective labels; use some of {labels}.")
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds):
            raise ValueError(f"StudyConfig(seeds={self.seeds!r}) must be a non-empty list of ints >= 0.")
        if self.embedding not in ("minilm", "ngram"):
            raise ValueError(f"StudyConfig(embedding={self.embedding!r}) must be 'minilm' or 'ngram'.")
        for name in ("train_size", "valid_size", "test_size", "steps", "batch_size", "eval_every", "max_length",
                     "num_prompts", "samples_per_prompt", "max_new_tokens", "mmd_texts", "self_bleu_texts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"StudyConfig({name}={value!r}) must be a positive int.")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) or self.warmup_steps < 0:
            raise ValueError(f"StudyConfig(warmup_steps={self.warmup_steps!r}) must be an int >= 0.")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or self.lr <= 0:
            raise ValueError(f"StudyConfig(lr={self.lr!r}) must be a positive number such as 1e-3.")
        for name in ("zipf_exponent", "regime_zipf_exponent"):
            value = getattr(self, name)
            if value is None and name == "regime_zipf_exponent":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"StudyConfig({name}={value!r}) must be a finite number >= 0 "
                                 f"(1.1 is the formulaic default, 0.3 the flat regime).")
        from dftlab.distributions import check_decoding_settings
        from dftlab.objectives import check_objective_kwargs

        for spec in self.objectives:
            check_objective_kwargs(spec.objective, spec.kwargs)  # unknown names and keywords fail here, not mid-study
        for decoding in self.decodings:
            check_decoding_settings(decoding.temperature, None, decoding.top_p)
        if self.num_prompts > self.test_size:
            raise ValueError(f"StudyConfig(num_prompts={self.num_prompts}) cannot exceed test_size={self.test_size}: "
                             f"the prompts are those of the first test stories.")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


def default_config(quick: bool = False) -> StudyConfig:
    """The full study, or (quick=True) the same study on tiny budgets: one seed, every objective and column.

    quick uses the n-gram embeddings for MMD (`dftlab.metrics.sentence_embeddings(method="ngram")`),
    because loading and running MiniLM alone would take a third of its time budget.
    """
    if not quick:
        return StudyConfig()
    return StudyConfig(name="quick", seeds=(0,), train_size=320, valid_size=24, test_size=40, steps=16,
                       warmup_steps=2, eval_every=8, num_prompts=4, samples_per_prompt=5, max_new_tokens=72,
                       embedding="ngram", mmd_texts=20, mmd_permutations=50, self_bleu_texts=20)


@dataclass
class RunSpec:
    """One unit of work: the truth, the base model, or one fine-tuning, on one distribution and seed."""
    kind: str  # "truth", "base" or "finetuned"
    zipf_exponent: float
    seed: int
    objective: ObjectiveSpec | None = None

    @property
    def label(self) -> str:
        return self.objective.label if self.objective is not None else self.kind

    @property
    def run_id(self) -> str:
        return f"zipf{self.zipf_exponent:g}-{self.label}-seed{self.seed}"


def plan_runs(config: StudyConfig) -> list[RunSpec]:
    """Every run of the study, grouped by distribution and seed (so shared inputs are computed once)."""
    distributions = [(config.zipf_exponent, config.objectives)]
    if config.regime_zipf_exponent is not None:
        regime = tuple(o for o in config.objectives if o.label in config.regime_objectives)
        if regime:
            distributions.append((config.regime_zipf_exponent, regime))
    runs = []
    for zipf_exponent, objectives in distributions:
        for seed in config.seeds:
            runs.append(RunSpec("truth", zipf_exponent, seed))
            runs.append(RunSpec("base", zipf_exponent, seed))
            runs += [RunSpec("finetuned", zipf_exponent, seed, spec) for spec in objectives]
    return runs


# ---------------------------------------------------------------------------------------------
# Hashes and file names.
# ---------------------------------------------------------------------------------------------

def _sha256_text(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(model: str) -> str:
    """sha256 of the model's weights and tokenizer, so that a retrained model invalidates every cached result.

    The files decide, not the name: runs computed from a folder are reused once the same files are
    installed as the embedded model.
    """
    from dftlab.models import EMBEDDED_MODELS
    from dftlab.storage import sha256_of_file

    folder = Path(EMBEDDED_MODELS.get(model, model))
    weights = folder / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(f"No model weights for {model!r} (looked for {weights}). Pass an embedded model "
                                f"name such as 'tiny-gpt2' or a folder saved with save_pretrained(..., safe_serialization=True).")
    recorded = {}
    if (folder / "SHA256SUMS").exists():
        for line in (folder / "SHA256SUMS").read_text().splitlines():
            digest, name = line.split(maxsplit=1)
            recorded[name] = digest
    parts = [recorded.get(name) or sha256_of_file(folder / name)
             for name in ("model.safetensors", "tokenizer.json", "vocab.json", "merges.txt") if (folder / name).exists()]
    return _sha256_text(" ".join(parts))


# Fields that name or select runs but do not change what any one run computes.
# The model enters through its fingerprint (its files), not its name.
_NOT_IN_RUN_HASH = ("name", "model", "objectives", "seeds", "regime_objectives", "regime_zipf_exponent")


def run_hash(config: StudyConfig, run: RunSpec, fingerprint: str) -> str:
    shared = {k: v for k, v in config.to_dict().items() if k not in _NOT_IN_RUN_HASH}
    key = {"shared": shared, "run": json.loads(json.dumps(asdict(run))), "model_sha256": fingerprint}
    return _sha256_text(json.dumps(key, sort_keys=True))[:12]


def config_hash(config: StudyConfig, fingerprint: str) -> str:
    """12 hex digits of the sha256 of the config and the model's files (the model's name or path does not count)."""
    settings = {k: v for k, v in config.to_dict().items() if k != "model"}
    key = {"config": settings, "model_sha256": fingerprint}
    return _sha256_text(json.dumps(key, sort_keys=True))[:12]


def results_dir() -> Path:
    """Where results live: $DFTLAB_RESULTS, else `results/` at the root of the repository."""
    return Path(os.environ.get("DFTLAB_RESULTS", Path(__file__).resolve().parents[2] / "results"))


def study_path(out, config: StudyConfig, fingerprint: str) -> Path:
    return Path(out) / f"study-{config.name}-{config_hash(config, fingerprint)}.json"


def run_path(out, config: StudyConfig, run: RunSpec, fingerprint: str) -> Path:
    return Path(out) / "runs" / f"run-{run.run_id}-{run_hash(config, run, fingerprint)}.json"


def claims_path(out, config: StudyConfig, fingerprint: str) -> Path:
    """results/CLAIMS.md for the default full study; a name of its own for any other config."""
    out = Path(out)
    for quick, name in ((False, "CLAIMS.md"), (True, "CLAIMS-quick.md")):
        default = default_config(quick)
        if replace(config, model=default.model) == default:
            return out / name
    return out / f"CLAIMS-{config.name}-{config_hash(config, fingerprint)}.md"


# ---------------------------------------------------------------------------------------------
# Inputs of a run: the model, the data, the prompts, the reference texts.
# ---------------------------------------------------------------------------------------------

def load_base_model(model: str):
    """(model, tokenizer) for an embedded name (via `dftlab.load_model`) or a local folder, in eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    from dftlab.models import EMBEDDED_MODELS

    bar_was_on = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()  # one "Loading weights" bar per run would bury the study's own bar
    try:
        if model in EMBEDDED_MODELS or not Path(model).is_dir():
            return dftlab.load_model(model)
        tokenizer = AutoTokenizer.from_pretrained(model)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        return AutoModelForCausalLM.from_pretrained(model, use_safetensors=True).eval(), tokenizer
    finally:
        if bar_was_on:
            transformers_logging.enable_progress_bar()


def _tales(zipf_exponent: float, seed: int):
    from dftlab.tinytales import TinyTales

    return TinyTales(seed=seed, zipf_exponent=zipf_exponent)


def _splits(config: StudyConfig, tales) -> dict:
    return tales.splits(train=config.train_size, valid=config.valid_size, test=config.test_size)


def true_completions(tales, prompts: list[str], per_prompt: int, seed: int, chunk: int = 5000,
                     max_chunks: int = 400) -> list[dict]:
    """`per_prompt` stories drawn from q(. | prompt) for each prompt, by rejection from fresh draws of q.

    The truth row of the study is sampled for the very prompts the models are sampled for, so the
    two are compared like for like. Returned in prompt order, like `sample_completions`.
    """
    wanted = {prompt: [] for prompt in prompts}
    needed = {prompt: per_prompt * prompts.count(prompt) for prompt in wanted}
    for index in range(max_chunks):
        for story in tales.sample(chunk, seed=10_000 * seed + index):
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


_REFERENCE_EMBEDDINGS: dict = {}  # (embedding, texts) -> array; held-out references are embedded once per process


def _embed(texts: list[str], method: str) -> np.ndarray:
    from dftlab.metrics import sentence_embeddings

    return sentence_embeddings(texts, method=method)


def _reference_embeddings(texts: list[str], method: str) -> np.ndarray:
    key = (method, tuple(texts))
    if key not in _REFERENCE_EMBEDDINGS:
        _REFERENCE_EMBEDDINGS.clear()  # keep one: runs come grouped by distribution and seed
        _REFERENCE_EMBEDDINGS[key] = _embed(texts, method)
    return _REFERENCE_EMBEDDINGS[key]


# ---------------------------------------------------------------------------------------------
# Measuring a run.
# ---------------------------------------------------------------------------------------------

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


def _text_metrics(samples: list[dict], reference: list[str], tales, config: StudyConfig) -> tuple[dict, dict]:
    """Every text metric of one set of samples, and the opener/ending frequency tables."""
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
    for n in (1, 2, 3):
        row[f"distinct_{n}"] = _or_nan(lambda: metrics.distinct_n(texts, n))
    row["self_bleu"] = _or_nan(lambda: metrics.self_bleu(texts, max_texts=config.self_bleu_texts))
    for n in (1, 2):
        row[f"token_l2_{n}"] = _or_nan(lambda: metrics.token_l2_distance(texts, reference, n=n))
    row["zipf_coefficient"] = _or_nan(lambda: metrics.zipf_coefficient(texts))
    row["seq_rep_4"] = _or_nan(lambda: metrics.repetition_rate(texts, n=4))
    row["overuse_formulaic"] = _or_nan(lambda: metrics.overuse_table(
        texts, reference, phrases=list(FORMULAIC_PHRASES), top=None)["overuse_ratio"].mean())
    row["overuse_top_phrases"] = _or_nan(lambda: _mean_or_error(metrics.overuse_table(
        texts, reference, n=(1, 2, 3), min_count=5, top=10)["overuse_ratio"]))
    row["mean_words"] = float(np.mean([len(t.split()) for t in texts]))
    mmd_texts = _spread(texts, config.mmd_texts)
    reference_texts = _spread(reference, config.mmd_texts)
    result = metrics.mmd(_embed(mmd_texts, config.embedding), _reference_embeddings(reference_texts, config.embedding),
                         num_permutations=config.mmd_permutations, seed=0)
    row["mmd2"], row["mmd_p_value"] = result.mmd2, result.p_value
    return row, tables


def _mean_or_error(values: pd.Series) -> float:
    if len(values) == 0:
        raise ValueError("no phrase occurs often enough to be tabulated")
    return float(values.mean())


def _objective_loss_and_nll(model, batches, spec: ObjectiveSpec, base_model) -> tuple[float, float]:
    """The objective's own loss value and the NLL on the same tokens, both token means (the loss scale)."""
    import torch

    from dftlab.objectives import causal_lm_loss

    loss_sum = nll_sum = tokens = 0.0
    with torch.no_grad():
        for batch in batches:
            count = float((batch["labels"][:, 1:] != -100).sum())
            extra = {"base_model": base_model} if spec.objective == "asft" else {}
            loss_sum += float(causal_lm_loss(model, batch, spec.objective, **extra, **spec.kwargs)) * count
            nll_sum += float(causal_lm_loss(model, batch, "nll")) * count
            tokens += count
    return loss_sum / tokens, nll_sum / tokens


def _model_metrics(model, tokenizer, splits: dict, tales, config: StudyConfig) -> tuple[dict, np.ndarray]:
    """Exact cross-entropy and KL on the test stories, predictive entropy, and p(target) on the valid stories."""
    from dftlab import metrics
    from dftlab.data import make_batches
    from dftlab.train import evaluate

    fit = metrics.sequence_cross_entropy(model, tokenizer, splits["test"], tales, batch_size=config.batch_size)
    test_batches = make_batches(tokenizer, splits["test"], config.batch_size, config.max_length, shuffle=False)
    valid = evaluate(model, make_batches(tokenizer, splits["valid"], config.batch_size, config.max_length,
                                         shuffle=False))
    row = {"cross_entropy": fit["cross_entropy"], "true_entropy": fit["true_entropy"], "kl": fit["kl"],
           "kl_standard_error": fit["standard_error"],
           "predictive_entropy": metrics.predictive_entropy(model, test_batches),
           "valid_nll": valid["nll"], "valid_accuracy": valid["accuracy"]}
    row.update({f"prob_p{q}": valid[f"prob_p{q}"] for q in PROBABILITY_QUANTILES})
    return row, valid["target_probs"]


def _histogram(target_probs: np.ndarray) -> dict:
    counts, edges = np.histogram(np.asarray(target_probs, dtype=np.float64), bins=HISTOGRAM_BINS, range=(0.0, 1.0))
    return {"edges": edges.round(6).tolist(), "counts": counts.tolist()}


def compute_run(config: StudyConfig, run: RunSpec) -> dict:
    """Train (if it is a fine-tuning) and measure one run; returns the JSON payload cached for it.

    Runs use one thread (`torch.set_num_threads(1)`): the numbers then do not depend on how many cores
    the machine has or how many runs share it, and two small processes beat one two-thread process here.
    """
    import torch

    from dftlab.data import make_batches
    from dftlab.generate import sample_completions
    from dftlab.train import train

    started, threads = time.time(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tales = _tales(run.zipf_exponent, run.seed)
        splits = _splits(config, tales)
        prompts = [story["prompt"] for story in splits["test"][:config.num_prompts]]
        reference = [story["completion"] for story in splits["test"]]
        rows, tables, histogram, history = [], {}, None, []
        if run.kind == "truth":
            samples = true_completions(tales, prompts, config.samples_per_prompt, seed=run.seed)
            text_row, tables[TRUTH_DECODING] = _text_metrics(samples, reference, tales, config)
            rows.append({"decoding": TRUTH_DECODING, "temperature": math.nan, "top_p": math.nan,
                         "true_entropy": tales.entropy(), **text_row})
            previews = {TRUTH_DECODING: [s["completion"] for s in samples[:3]]}
        else:
            model, tokenizer = load_base_model(config.model)
            model_row = {}
            if run.kind == "finetuned":
                spec = run.objective
                base_model = copy.deepcopy(model).eval() if spec.objective == "asft" else None
                result = train(model, tokenizer, splits["train"], splits["valid"], spec.objective,
                               steps=config.steps, batch_size=config.batch_size, lr=config.lr,
                               warmup_steps=config.warmup_steps, eval_every=config.eval_every,
                               max_length=config.max_length, seed=run.seed, objective_kwargs=dict(spec.kwargs),
                               progress=False)
                history = result.history.to_dict("records")
                test_batches = make_batches(tokenizer, splits["test"], config.batch_size, config.max_length,
                                            shuffle=False)
                loss, loss_nll = _objective_loss_and_nll(model, test_batches, spec, base_model)
                model_row.update(objective_loss=loss, objective_nll=loss_nll, loss_scale=loss / loss_nll,
                                 final_train_loss=float(result.history["train_loss"].iloc[-1]))
            fit_row, target_probs = _model_metrics(model, tokenizer, splits, tales, config)
            model_row.update(fit_row)
            histogram = _histogram(target_probs)
            previews = {}
            for index, decoding in enumerate(config.decodings):
                samples = sample_completions(model, tokenizer, prompts, config.samples_per_prompt,
                                             temperature=decoding.temperature, top_p=decoding.top_p,
                                             max_new_tokens=config.max_new_tokens, seed=1000 * run.seed + index)
                text_row, tables[decoding.name] = _text_metrics(samples, reference, tales, config)
                rows.append({"decoding": decoding.name, "temperature": decoding.temperature,
                             "top_p": math.nan if decoding.top_p is None else decoding.top_p,
                             **text_row, **model_row})
                previews[decoding.name] = [s["completion"] for s in samples[:3]]
    finally:
        torch.set_num_threads(threads)
    identity = {"run_id": run.run_id, "kind": run.kind, "zipf_exponent": run.zipf_exponent,
                "objective": run.label, "objective_name": run.objective.objective if run.objective else run.kind,
                "objective_kwargs": json.dumps(run.objective.kwargs if run.objective else {}, sort_keys=True),
                "seed": run.seed}
    rows = [{**identity, **{c: math.nan for c in METRIC_COLUMNS}, **row} for row in rows]
    return {"run": json.loads(json.dumps(asdict(run))), "rows": _json_safe(rows), "choice_tables": _json_safe(tables),
            "histogram": histogram, "history": _json_safe(history), "previews": previews,
            "seconds": round(time.time() - started, 1)}


def _json_safe(value):
    """NaN and infinities as None (JSON has neither); the loader turns None back into NaN."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------------------------
# Running the study: cached runs, resumable, optionally on several processes.
# ---------------------------------------------------------------------------------------------

def _read_cached(path: Path, run: RunSpec) -> dict | None:
    """The cached payload of `run`, or None if it is missing, damaged or belongs to another run."""
    if not path.exists():
        return None
    try:
        payload = read_json_with_hash(path)
    except CorruptFileError as error:
        print(f"dftlab.study: {error} Recomputing {run.run_id}.", file=sys.stderr)
        return None
    if payload.get("run") != json.loads(json.dumps(asdict(run))):
        return None
    return payload


def _compute_and_store(config: StudyConfig, run: RunSpec, path: Path) -> dict:
    payload = compute_run(config, run)
    write_json_with_hash(path, payload)
    return payload


def _worker(config_dict: dict, run_dict: dict, path: str) -> str:
    """Entry point of a worker process (module level, so it can be pickled)."""
    run_dict = dict(run_dict)
    objective = run_dict.pop("objective")
    run = RunSpec(**run_dict, objective=ObjectiveSpec(**objective) if objective else None)
    _compute_and_store(StudyConfig(**config_dict), run, Path(path))
    return run.run_id


def run_study(config: StudyConfig | None = None, out=None, *, force: bool = False, workers: int = 1,
              progress: bool | None = None) -> pd.DataFrame:
    """Run (or resume) the study of `config` and write its results under `out`; returns the results table.

    Finished runs are read from their cache files; only the missing ones are computed, `workers` at a
    time in separate processes. `force=True` recomputes everything. Ctrl-C keeps every finished run.
    """
    from dftlab.train import progress_enabled

    config = default_config() if config is None else config
    out = results_dir() if out is None else Path(out)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int (processes running runs side by side), got {workers!r}.")
    fingerprint = model_fingerprint(config.model)
    runs = plan_runs(config)
    paths = {run.run_id: run_path(out, config, run, fingerprint) for run in runs}
    todo = [run for run in runs if force or _read_cached(paths[run.run_id], run) is None]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(runs), initial=len(runs) - len(todo), desc=f"study ({config.name})", unit="run",
               disable=not progress_enabled(progress))
    try:
        if workers == 1 or len(todo) <= 1:
            for run in todo:
                bar.set_postfix_str(run.run_id)
                _compute_and_store(config, run, paths[run.run_id])
                bar.update(1)
        else:
            _run_in_processes(config, todo, paths, workers, bar)
    except KeyboardInterrupt:
        print(f"\ndftlab.study: interrupted. Finished runs are cached in {out / 'runs'}; rerun the same command "
              f"to resume.", file=sys.stderr)
        raise
    finally:
        bar.close()
    payloads = [_read_cached(paths[run.run_id], run) for run in runs]
    missing = [run.run_id for run, payload in zip(runs, payloads) if payload is None]
    if missing:
        raise RuntimeError(f"dftlab.study: runs {missing} did not leave a readable cache file; rerun to retry them.")
    study = _assemble(config, fingerprint, payloads)
    path = study_path(out, config, fingerprint)
    write_json_with_hash(path, study)
    _remove_stale(out, config, path)
    results = _table(study)
    atomic_write_text(path.with_name(path.stem.replace("study-", "summary-") + ".csv"),
                      summary_table(results).to_csv(index=False, float_format="%.6g"))
    atomic_write_text(claims_path(out, config, fingerprint), claims_markdown(results, study))
    atomic_write_text(out / "README.md", results_readme())
    return results


def _run_in_processes(config, todo, paths, workers, bar) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools in a bad state
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_worker, config.to_dict(), json.loads(json.dumps(asdict(run))), str(paths[run.run_id]))
                   for run in todo]
        try:
            for future in as_completed(futures):
                bar.set_postfix_str(future.result())
                bar.update(1)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def _assemble(config: StudyConfig, fingerprint: str, payloads: list[dict]) -> dict:
    rows = [row for payload in payloads for row in payload["rows"]]
    per_run = {payload["rows"][0]["run_id"]: payload for payload in payloads}
    return {"config": config.to_dict(), "config_hash": config_hash(config, fingerprint),
            "model_sha256": fingerprint, "version": dftlab.__version__,
            "columns": list(ID_COLUMNS + METRIC_COLUMNS), "rows": rows,
            "histograms": {run_id: p["histogram"] for run_id, p in per_run.items() if p["histogram"]},
            "choice_tables": {run_id: p["choice_tables"] for run_id, p in per_run.items()},
            "histories": {run_id: p["history"] for run_id, p in per_run.items() if p["history"]},
            "previews": {run_id: p["previews"] for run_id, p in per_run.items()},
            "seconds": {run_id: p["seconds"] for run_id, p in per_run.items()}}


def results_readme() -> str:
    """results/README.md: what the files are and what every column of the table means."""
    lines = ["# Study results", "", "Written by `python -m dftlab.study` (see `src/dftlab/study.py`); do not edit by hand.", "",
             "- `study-<name>-<hash>.json`: the results table (`rows`, one per run x decoding), the p(target) histograms, "
             "the opener/ending frequency tables, the training histories, three sample texts per run and decoding, "
             "the config and `dftlab.__version__`, wrapped with its sha256. `<hash>` is that of the config and the "
             "model weights. Read it with `dftlab.study.load_results()` (`quick=True` for the --quick study).",
             "- `summary-<name>-<hash>.csv`: mean and 95% t-interval over seeds of the main metrics.",
             "- `CLAIMS.md` (full study) and `CLAIMS-quick.md`: the verdicts on the claims, generated from the numbers.",
             "- `runs/` (not in git): one cache file per run; an interrupted study resumes from them.", "",
             "## Columns of the table", "", "| column | meaning |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in COLUMN_DESCRIPTIONS.items()]
    return "\n".join(lines) + "\n"


def _remove_stale(out: Path, config: StudyConfig, keep: Path) -> None:
    """Older results of the same study name (another config or model): they would only mislead."""
    for pattern in (f"study-{config.name}-*.json", f"summary-{config.name}-*.csv", f"CLAIMS-{config.name}-*.md"):
        for old in out.glob(pattern):
            if old.stem.split("-")[-1] != keep.stem.split("-")[-1]:
                old.unlink()


def _table(study: dict) -> pd.DataFrame:
    table = pd.DataFrame(study["rows"], columns=study["columns"])
    for column in METRIC_COLUMNS + ("temperature", "top_p", "zipf_exponent"):
        table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    table["seed"] = table["seed"].astype(int)
    return table


# ---------------------------------------------------------------------------------------------
# Reading the results (what the chapters call).
# ---------------------------------------------------------------------------------------------

def load_study(quick: bool = False, config: StudyConfig | None = None, out=None) -> dict:
    """The cached study payload (table rows, histograms, choice tables, histories, config, version)."""
    config = default_config(quick) if config is None else config
    out = results_dir() if out is None else Path(out)
    fingerprint = model_fingerprint(config.model)
    path = study_path(out, config, fingerprint)
    command = "python -m dftlab.study" + (" --quick" if config.name == "quick" else "")
    if not path.exists():
        others = sorted(p.name for p in out.glob(f"study-{config.name}-*.json"))
        hint = (f" Found {others}: results for another configuration or another model (they are stale)."
                if others else "")
        raise FileNotFoundError(f"No cached study results at {path}.{hint} Run `{command}` from the repository "
                                f"root to compute them (the full study takes about 30 minutes, --quick 3).")
    try:
        return read_json_with_hash(path)
    except CorruptFileError as error:
        raise CorruptFileError(f"{error} Rerun `{command}` to rebuild it from the cached runs.") from error


def load_results(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The results table, one row per run x decoding, one column per metric (instant: read from the cache)."""
    return _table(load_study(quick, config, out))


def load_histograms(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """Histograms of p(target token) on the validation stories after training, one row per run x bin.

    Columns: run_id, kind, zipf_exponent, objective, seed, bin_left, bin_right, count, share (of that run's
    tokens). DFT pushes mass to both ends; NLL keeps the middle.
    """
    study = load_study(quick, config, out)
    identity = {row["run_id"]: row for row in study["rows"]}
    rows = []
    for run_id, histogram in study["histograms"].items():
        total = sum(histogram["counts"]) or 1
        info = identity[run_id]
        for left, right, count in zip(histogram["edges"][:-1], histogram["edges"][1:], histogram["counts"]):
            rows.append({"run_id": run_id, "kind": info["kind"], "zipf_exponent": info["zipf_exponent"],
                         "objective": info["objective"], "seed": info["seed"], "bin_left": left,
                         "bin_right": right, "count": count, "share": count / total})
    return pd.DataFrame(rows)


def load_choice_tables(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The opener and ending frequency tables of every run x decoding, long format.

    Columns: run_id, objective, zipf_exponent, seed, decoding, choice, option, count, sample_freq,
    true_prob, ratio (as `dftlab.metrics.choice_frequency_table`).
    """
    study = load_study(quick, config, out)
    identity = {row["run_id"]: row for row in study["rows"]}
    rows = []
    for run_id, by_decoding in study["choice_tables"].items():
        info = identity[run_id]
        for decoding, tables in by_decoding.items():
            for choice, records in tables.items():
                for record in records:
                    rows.append({"run_id": run_id, "objective": info["objective"], "zipf_exponent": info["zipf_exponent"],
                                 "seed": info["seed"], "decoding": decoding, "choice": choice, **record})
    table = pd.DataFrame(rows)
    for column in ("sample_freq", "true_prob", "ratio"):
        if column in table:
            table[column] = pd.to_numeric(table[column], errors="coerce").astype(float)
    return table


def load_histories(quick: bool = False, config: StudyConfig | None = None, out=None) -> pd.DataFrame:
    """The training history (`TrainResult.history`) of every fine-tuning run, with its run_id and objective."""
    study = load_study(quick, config, out)
    identity = {row["run_id"]: row for row in study["rows"]}
    frames = [pd.DataFrame(history).assign(run_id=run_id, objective=identity[run_id]["objective"],
                                           zipf_exponent=identity[run_id]["zipf_exponent"], seed=identity[run_id]["seed"])
              for run_id, history in study["histories"].items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def t_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the Student t confidence interval of the mean. NaN bounds for fewer than 2 values."""
    from scipy import stats

    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number between 0 and 1, such as 0.95, got {confidence!r}.")
    values = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + confidence / 2, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))
    return mean, mean - half, mean + half


def summary_table(results: pd.DataFrame, metrics=SUMMARY_METRICS, confidence: float = 0.95) -> pd.DataFrame:
    """Mean and t-interval over seeds of each metric, per distribution x objective x decoding (long format).

    Columns: zipf_exponent, objective, decoding, metric, mean, ci_low, ci_high, n (seeds).
    """
    missing = [m for m in metrics if m not in results.columns]
    if missing:
        raise ValueError(f"summary_table: results has no column(s) {missing}; pass a table from load_results().")
    rows = []
    for (zipf_exponent, objective, decoding), group in results.groupby(
            ["zipf_exponent", "objective", "decoding"], sort=False):
        for metric in metrics:
            values = group[metric].dropna()
            mean, low, high = t_interval(values, confidence)
            rows.append({"zipf_exponent": zipf_exponent, "objective": objective, "decoding": decoding,
                         "metric": metric, "mean": mean, "ci_low": low, "ci_high": high, "n": len(values)})
    return pd.DataFrame(rows)


def format_summary(summary: pd.DataFrame, metrics=None, zipf_exponent: float | None = None,
                   digits: int = 3) -> pd.DataFrame:
    """A wide, readable view of `summary_table`: one row per objective x decoding, cells "mean ± half-width"."""
    table = summary if zipf_exponent is None else summary[summary["zipf_exponent"] == zipf_exponent]
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
    wide = table.pivot_table(index=["zipf_exponent", "objective", "decoding"], columns="metric", values="cell",
                             aggfunc="first", sort=False)
    return wide[[m for m in order if m in wide.columns]]


# ---------------------------------------------------------------------------------------------
# The claims of science.md section 2, decided by the numbers.
# ---------------------------------------------------------------------------------------------

VERDICTS = ("true", "false", "true for Dynamic FT, but not what the original post said", "not supported at this scale")
CLAIM_TEXTS = (
    "LLMs overuse familiar, formulaic tokens and phrases, and that limits natural writing.",
    "A model trained with DFT fails to match the token distribution of its training data, which makes its writing stilted.",
    "DFT optimises one aspect of performance instead of the whole language distribution.",
    "SFT does not always capture the nuances of the data distribution.",
    "Maximum likelihood training gives more natural, more varied writing than DFT.",
)


@dataclass
class Comparison:
    """A difference a - b of one metric, paired by seed, with its t-interval."""
    metric: str
    a: str
    b: str
    decoding: str
    mean_a: float
    mean_b: float
    difference: float
    low: float
    high: float
    n: int

    @property
    def above(self) -> bool:  # a is significantly larger than b
        return self.low > 0

    @property
    def below(self) -> bool:
        return self.high < 0

    def text(self, digits: int = 3) -> str:
        interval = "n/a (one seed)" if math.isnan(self.low) else f"[{self.low:+.{digits}g}, {self.high:+.{digits}g}]"
        where = "" if self.metric in MODEL_METRICS else f" ({self.decoding})"  # model metrics ignore the decoding
        return (f"{self.metric}{where}: {self.a} {self.mean_a:.{digits}g} vs {self.b} {self.mean_b:.{digits}g}; "
                f"difference {self.difference:+.{digits}g}, 95% CI {interval}, {self.n} seeds")


def _values(results, objective, decoding, metric, zipf_exponent) -> pd.Series:
    rows = results[(results["objective"] == objective) & (results["zipf_exponent"] == zipf_exponent)]
    if objective != "truth":
        rows = rows[rows["decoding"] == decoding]
    return rows.set_index("seed")[metric]


def compare(results: pd.DataFrame, metric: str, a: str, b: str | float, decoding: str = "T=1",
            zipf_exponent: float = 1.1, b_name: str = "the reference value") -> Comparison:
    """Compare objective `a` with objective `b` (or with a constant) on `metric`, paired by seed.

    The seed fixes the data split, the data order and the sampling stream, so a - b within one seed
    removes the variation they share; the interval is a t-interval over the per-seed differences.
    The "truth" rows have one decoding ("data") and serve every decoding. A number `b` is a fixed
    reference (named `b_name` in the text), e.g. an exact probability.
    """
    missing = [column for column in ("objective", "zipf_exponent", "decoding", "seed", metric) if column not in results]
    if missing:
        raise ValueError(f"compare: results has no column(s) {missing}; pass a table from load_results() and a metric "
                         f"among its columns.")
    first = _values(results, a, decoding, metric, zipf_exponent)
    if isinstance(b, str):
        second = _values(results, b, decoding, metric, zipf_exponent)
        seeds = sorted(set(first.index) & set(second.index))
        differences = [first[s] - second[s] for s in seeds]
        mean_b, label_b = float(second[seeds].mean()) if seeds else math.nan, b
    else:
        seeds = list(first.index)
        differences = [first[s] - b for s in seeds]
        mean_b, label_b = float(b), b_name
    mean, low, high = t_interval(differences)
    return Comparison(metric, a, label_b, decoding, float(first[seeds].mean()) if seeds else math.nan, mean_b,
                      mean, low, high, len([d for d in differences if not math.isnan(d)]))


@dataclass
class ClaimVerdict:
    number: int
    claim: str
    verdict: str
    reason: str
    evidence: list
    flip: str


def _has(results, objective, zipf_exponent=1.1) -> bool:
    return bool(((results["objective"] == objective) & (results["zipf_exponent"] == zipf_exponent)).any())


def judge_claims(results: pd.DataFrame, zipf_exponent: float = 1.1) -> list[ClaimVerdict]:
    """A verdict for each claim of science.md section 2, from the numbers alone (the rules are in the code)."""
    for needed in ("nll", "dft", "truth"):
        if not _has(results, needed, zipf_exponent):
            raise ValueError(f"judge_claims needs the {needed!r} rows at zipf_exponent={zipf_exponent}; "
                             f"run the study with that objective.")
    decodings = [d for d in dict.fromkeys(results["decoding"]) if d != TRUTH_DECODING]
    first = decodings[0]
    z = zipf_exponent
    verdicts = []

    # Claim 1: overuse of the formulaic options, against the exact truth.
    true_share = float(results.loc[results["objective"] == "truth", "top_opener_true_prob"].iloc[0])
    share = {(o, d): compare(results, "top_opener_share", o, true_share, d, z, "the true probability")
             for o in ("nll", "dft") for d in decodings}
    over = [key for key, c in share.items() if c.above]
    under = [key for key, c in share.items() if c.below]
    formulaic = {(o, d): compare(results, "overuse_formulaic", o, "truth", d, z) for o in ("nll", "dft") for d in decodings}
    if over:
        verdict = "true"
        who = ", ".join(f"{o} at {d}" for o, d in over)
        reason = f"The top opener {TOP_OPENER!r} is significantly over-used by: {who}."
        if ("nll", first) not in over:
            reason += (f" Maximum likelihood sampled at {first} does not over-use it, so at this scale the overuse "
                       f"comes from DFT or from low-temperature decoding, not from language modelling as such.")
    elif under and not over:
        verdict, reason = "false", "Every fine-tuned model under-uses the top opener or matches it."
    else:
        verdict, reason = "not supported at this scale", "No fine-tuned model's top-opener share differs significantly from the truth."
    verdicts.append(ClaimVerdict(1, CLAIM_TEXTS[0], verdict, reason,
                                 [c.text() for c in share.values()] + [c.text() for c in formulaic.values()],
                                 f"'true' needs some fine-tuned model whose top-opener share has a 95% CI entirely above "
                                 f"the true probability {true_share:.3f}; it becomes 'false' if all were at or below it."))

    # Claim 2: DFT and the token distribution.
    l2 = compare(results, "token_l2_1", "dft", "nll", first, z)
    l2_bigram = compare(results, "token_l2_2", "dft", "nll", first, z)
    kl = compare(results, "kl", "dft", "nll", first, z)
    stilted = [compare(results, m, "dft", "nll", first, z) for m in ("distinct_2", "self_bleu", "seq_rep_4")]
    if l2.above and kl.above:
        verdict = VERDICTS[2]
        reason = ("Dynamic FT's samples are further from the training data's token frequencies than SFT's, and its "
                  "exact KL to the data is larger. But the post this claim comes from is about *Distribution* Fine "
                  "Tuning, which it presents as the fix for SFT's mismatch: the rewrite turned its source around.")
    elif l2.below and kl.below:
        verdict, reason = "false", "Dynamic FT matches the token distribution better than SFT here."
    else:
        verdict, reason = VERDICTS[3], "The token-L2 and KL differences between DFT and SFT are not both significant."
    verdicts.append(ClaimVerdict(2, CLAIM_TEXTS[1], verdict, reason, [c.text() for c in (l2, l2_bigram, kl, *stilted)],
                                 "The verdict needs the 95% CIs of dft - nll in token L2 (n=1) and in KL both above 0; "
                                 "it flips to 'not supported' if either reaches 0."))

    # Claim 3: one aspect (the probability of the likely token) instead of the distribution.
    median_probability = compare(results, "prob_p50", "dft", "nll", first, z)
    accuracy = compare(results, "valid_accuracy", "dft", "nll", first, z)
    entropy = compare(results, "predictive_entropy", "dft", "nll", first, z)
    if kl.above and entropy.below:
        verdict = VERDICTS[2]
        reason = (f"Dynamic FT climbs the expected probability of the target token (its gradient is that of -E[p]), a "
                  f"linear score whose optimum is the one-hot mode: its predictions are sharper (predictive entropy "
                  f"{entropy.mean_a:.3g} vs {entropy.mean_b:.3g} nats per token) and the whole distribution fits worse "
                  f"(KL {kl.mean_a:.3g} vs {kl.mean_b:.3g} nats per story).")
        if median_probability.above and accuracy.below:
            reason += (f" It is surer of the tokens it predicts (median p(target) {median_probability.mean_a:.4g} vs "
                       f"{median_probability.mean_b:.4g}) but right less often (token accuracy {accuracy.mean_a:.3g} "
                       f"vs {accuracy.mean_b:.3g}).")
        elif median_probability.above:
            reason += (f" The median p(target) is higher than SFT's ({median_probability.mean_a:.4g} vs "
                       f"{median_probability.mean_b:.4g}).")
        reason += " The original post made no such claim about Dynamic FT: its DFT is Distribution Fine Tuning."
    elif kl.below:
        verdict, reason = "false", "Dynamic FT fits the whole distribution better than SFT (lower KL)."
    else:
        verdict, reason = VERDICTS[3], "DFT's KL and predictive entropy do not both differ significantly from SFT's."
    verdicts.append(ClaimVerdict(3, CLAIM_TEXTS[2], verdict, reason,
                                 [c.text() for c in (kl, entropy, median_probability, accuracy)],
                                 "Needs dft - nll: KL CI above 0 and predictive-entropy CI below 0; either CI reaching "
                                 "0 makes it 'not supported', a KL CI below 0 makes it 'false'."))

    # Claim 4: SFT against the truth, with the reconstruction of a distribution-level fix beside it.
    nll_l2 = {d: compare(results, "token_l2_1", "nll", "truth", d, z) for d in decodings}
    nll_kl = compare(results, "kl", "nll", 0.0, first, z, "a perfect fit")
    nll_rows = results[(results["objective"] == "nll") & (results["zipf_exponent"] == z) & (results["decoding"] == first)]
    chi_rejections = int((nll_rows["opener_p_value"] < 0.05).sum())
    evidence = [c.text() for c in nll_l2.values()] + [
        nll_kl.text() + " (an upper bound: one tokenisation per text)",
        f"opener chi-square against the truth rejects at 5% in {chi_rejections} of {len(nll_rows)} seeds ({first})"]
    text_gap = [d for d in decodings if nll_l2[d].above]
    if nll_kl.above or text_gap:
        verdict = "true"
        found = []
        if nll_kl.above:
            found.append(f"its exact KL(q || p) to the data is {nll_kl.mean_a:.3g} nats per story, with a 95% CI above 0")
        if text_gap:
            found.append(f"its samples' token frequencies are further from the data than a second sample of the truth "
                         f"({', '.join(text_gap)})")
        else:
            found.append("yet its samples' token L2 stays within the truth's own noise floor, so the gap is too small "
                         "to see in text statistics of this many samples")
        reason = ("At this budget SFT has not captured the data distribution: " + "; ".join(found) + ". This is what "
                  "the original post said, about SFT; it does not make DFT the cure (claims 2, 3 and 5).")
    else:
        verdict, reason = VERDICTS[3], ("SFT's KL to the data is not significantly above 0 and its token L2 is within "
                                        "the noise floor of the truth at every decoding.")
    if _has(results, "distribution_matching", z):
        evidence.append("whether a distribution-level objective closes the gap: see the section on the reconstruction below")
    verdicts.append(ClaimVerdict(4, CLAIM_TEXTS[3], verdict, reason, evidence,
                                 "'true' needs the 95% CI of SFT's KL above 0, or that of nll - truth in token L2 (n=1) "
                                 "above 0 at some decoding; with enough steps and data SFT converges to q (its loss is "
                                 "a proper scoring rule), and the gap, and this verdict, would go."))

    # Claim 5: more natural, more varied writing under maximum likelihood.
    better_if_higher = {"distinct_1": True, "distinct_2": True, "distinct_3": True, "self_bleu": False,
                        "token_l2_1": False, "mmd2": False}
    contrasts = {m: compare(results, m, "nll", "dft", first, z) for m in better_if_higher}
    nll_better = [m for m, c in contrasts.items() if (c.above if better_if_higher[m] else c.below)]
    nll_worse = [m for m, c in contrasts.items() if (c.below if better_if_higher[m] else c.above)]
    if len(nll_better) >= 4 and not nll_worse:
        verdict = VERDICTS[2]
        reason = (f"SFT beats Dynamic FT on {len(nll_better)} of {len(contrasts)} measures of variety and "
                  f"naturalness ({', '.join(nll_better)}) and loses on none. The original post claimed the "
                  f"opposite order for its own DFT, Distribution Fine Tuning, which it says beats maximum likelihood.")
    elif len(nll_worse) > len(nll_better):
        verdict, reason = "false", f"Dynamic FT does better than SFT on {', '.join(nll_worse)}."
    else:
        verdict = VERDICTS[3]
        reason = f"SFT is better on {nll_better or 'nothing'} and worse on {nll_worse or 'nothing'}: no clear winner."
    verdicts.append(ClaimVerdict(5, CLAIM_TEXTS[4], verdict, reason, [c.text() for c in contrasts.values()],
                                 "The verdict needs SFT significantly better on at least 4 of the 6 measures and worse "
                                 "on none (paired 95% CIs of nll - dft)."))
    return verdicts


def regime_comparison(results: pd.DataFrame, strong_prior: float = 0.3, weak_prior: float = 1.1) -> pd.DataFrame:
    """Li et al.'s regime question: how dft compares with nll where the base model's prior is strong or weak.

    One row per distribution x metric (kl, validity): the gains over the base model of nll and dft and
    their paired difference dft - nll with its 95% CI, all at the first decoding.
    """
    rows = []
    decoding = [d for d in dict.fromkeys(results["decoding"]) if d != TRUTH_DECODING][0]
    for zipf_exponent in (strong_prior, weak_prior):
        if not (_has(results, "nll", zipf_exponent) and _has(results, "dft", zipf_exponent)):
            continue
        for metric in ("kl", "validity"):
            gains = {o: compare(results, metric, o, "base", decoding, zipf_exponent) for o in ("nll", "dft")}
            gap = compare(results, metric, "dft", "nll", decoding, zipf_exponent)
            rows.append({"zipf_exponent": zipf_exponent, "prior": "strong" if zipf_exponent == strong_prior else "weak",
                         "metric": metric, "base": gains["nll"].mean_b, "nll": gains["nll"].mean_a,
                         "dft": gains["dft"].mean_a, "nll_change": gains["nll"].difference,
                         "dft_change": gains["dft"].difference, "dft_minus_nll": gap.difference,
                         "ci_low": gap.low, "ci_high": gap.high, "n": gap.n})
    return pd.DataFrame(rows)


def reconstruction_comparison(results: pd.DataFrame, zipf_exponent: float = 1.1,
                              label: str = "distribution_matching") -> tuple[str, str, list]:
    """Does the distribution-level objective (a reconstruction) beat plain SFT? (verdict, reason, comparisons).

    "helps": it lowers token L2 (n = 1 or 2) or the top opener's distance from its true share at some
    decoding, and does not significantly lower validity or raise the cross-entropy on true stories.
    "hurts": validity significantly lower or cross-entropy significantly higher. Otherwise "no measurable effect".
    """
    if not (_has(results, label, zipf_exponent) and _has(results, "nll", zipf_exponent)):
        return "not measured", f"The study has no {label!r} and 'nll' runs.", []
    table = results.assign(top_opener_gap=(results["top_opener_share"] - results["top_opener_true_prob"]).abs())
    decodings = [d for d in dict.fromkeys(table["decoding"]) if d != TRUTH_DECODING]
    gains = [compare(table, m, label, "nll", d, zipf_exponent)
             for m in ("token_l2_1", "token_l2_2", "top_opener_gap") for d in decodings]
    costs = [compare(table, "validity", label, "nll", d, zipf_exponent) for d in decodings]
    costs.append(compare(table, "cross_entropy", label, "nll", decodings[0], zipf_exponent))
    better = [c for c in gains if c.below]
    hurt = [c for c in costs if (c.below if c.metric == "validity" else c.above)]
    if hurt:
        verdict = "hurts"
        reason = ("It does significantly worse than SFT on " + ", ".join(f"{c.metric} ({c.decoding})" for c in hurt)
                  + (("; it does lower " + ", ".join(f"{c.metric} ({c.decoding})" for c in better)) if better else "")
                  + ".")
    elif better:
        verdict = "helps"
        reason = "It lowers " + ", ".join(f"{c.metric} ({c.decoding})" for c in better) + " without a significant cost."
    else:
        verdict, reason = "no measurable effect", "No difference from SFT is significant at this number of seeds."
    return verdict, reason, gains + costs


def _regime_verdict(table: pd.DataFrame) -> tuple[str, str]:
    """Li et al. predict: dft no worse than nll under the strong prior, worse under the weak one (decided on KL)."""
    if table.empty or set(table["prior"]) != {"strong", "weak"}:
        return "not measured", "The study has no nll and dft runs on both distributions."
    kl = table[table["metric"] == "kl"].set_index("prior")
    worse = {prior: kl.loc[prior, "ci_low"] > 0 for prior in ("strong", "weak")}
    gap = {prior: kl.loc[prior, "dft_minus_nll"] for prior in ("strong", "weak")}
    if worse["weak"] and not worse["strong"]:
        verdict, reason = "consistent with Li et al.", (
            f"DFT's KL is significantly worse than NLL's only where the prior is weak (dft - nll: {gap['weak']:+.3g} "
            f"nats where it is weak, {gap['strong']:+.3g} where it is strong).")
    elif worse["weak"] and worse["strong"]:
        smaller = gap["strong"] < gap["weak"]
        verdict = "partly consistent with Li et al." if smaller else "not consistent with Li et al."
        reason = (f"DFT fits worse than NLL under both priors; the gap is {'smaller' if smaller else 'not smaller'} "
                  f"where the prior is strong ({gap['strong']:+.3g} vs {gap['weak']:+.3g} nats per story).")
    else:
        verdict, reason = "not supported at this scale", "The KL gap between DFT and NLL is not significant under the weak prior."
    validity = table[table["metric"] == "validity"].set_index("prior")
    parts = []
    for prior in ("strong", "weak"):
        row = validity.loc[prior]
        interval = "n/a" if math.isnan(row["ci_low"]) else f"[{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
        parts.append(f"{row['dft_minus_nll']:+.3g}, 95% CI {interval}, under the {prior} prior")
    reason += (" Li et al. measured task accuracy, not distribution fit; the closest analogue here, validity, gives "
               "dft - nll " + "; ".join(parts) + ".")
    if validity.loc["strong", "base"] < 0.5:
        reason += (f" Caveat: even on the distribution it was pretrained on, the base model writes only "
                   f"{validity.loc['strong', 'base']:.0%} valid stories, and its KL there ({kl.loc['strong', 'base']:.3g} "
                   f"nats per story) is not much below its KL on the fine-tuning data ({kl.loc['weak', 'base']:.3g}): "
                   f"its prior is strong on word choice, not on keeping the title's character through the story, so "
                   f"this is a weak test of the regime.")
    return verdict, reason


def claims_markdown(results: pd.DataFrame, study: dict) -> str:
    """results/CLAIMS.md: each claim, its verdict, the numbers behind it and what would flip it."""
    config = study["config"]
    lines = ["# The claims, tested", "",
             f"Generated by `python -m dftlab.study claims` from `study-{config['name']}-{study['config_hash']}.json` "
             f"(dftlab {study['version']}, model fingerprint {study['model_sha256'][:12]}, a sha256 of its weights and "
             f"tokenizer). Do not edit by hand.", "",
             f"Setting: the model {Path(config['model']).name} fine-tuned on TinyTales (zipf_exponent={config['zipf_exponent']}) "
             f"for {config['steps']} steps of {config['batch_size']} stories at lr {config['lr']:g}, seeds "
             f"{config['seeds']}; {config['num_prompts'] * config['samples_per_prompt']} samples per model and decoding. "
             "Each comparison is paired by seed; intervals are 95% t-intervals over the per-seed differences. "
             "In the claims, \"DFT\" is Dynamic Fine-Tuning (Wu et al. 2025), the loss the study trains.", ""]
    try:
        verdicts = judge_claims(results, config["zipf_exponent"])
    except ValueError as error:
        return "\n".join(lines + [f"No verdicts: {error}", ""])
    for item in verdicts:
        lines += [f"## Claim {item.number}: {item.claim}", "", f"**Verdict: {item.verdict}.** {item.reason}", "",
                  "Numbers:", ""] + [f"- {line}" for line in item.evidence] + ["", f"What would flip it: {item.flip}", ""]
    regime = regime_comparison(results, config.get("regime_zipf_exponent") or 0.3, config["zipf_exponent"])
    verdict, reason = _regime_verdict(regime)
    lines += ["## The regime question (Li et al.): does DFT do better when the prior is strong?", "",
              f"**{verdict.rstrip('.')}.** {reason}", ""]
    if not regime.empty:
        lines += ["| zipf | prior | metric | base | nll | dft | dft - nll | 95% CI |", "|---|---|---|---|---|---|---|---|"]
        for _, row in regime.iterrows():
            interval = "n/a" if math.isnan(row["ci_low"]) else f"[{row['ci_low']:+.3g}, {row['ci_high']:+.3g}]"
            lines.append(f"| {row['zipf_exponent']:g} | {row['prior']} | {row['metric']} | {row['base']:.4g} | "
                         f"{row['nll']:.4g} | {row['dft']:.4g} | {row['dft_minus_nll']:+.3g} | {interval} |")
        lines.append("")
    verdict, reason, comparisons = reconstruction_comparison(results, config["zipf_exponent"])
    lines += ["## A distribution-level objective (the course's reconstruction, not Rosmine's algorithm)", "",
              "`dftlab.objectives.distribution_matching` adds to NLL a penalty on the gap between the model's average "
              "predicted token distribution and the batch's target-token frequencies. Rosmine's Distribution Fine "
              "Tuning is unpublished; this only tests the idea. Compared with plain SFT (top_opener_gap is "
              "|share of the top opener - its true probability|):", "",
              f"**{verdict}.** {reason}", ""] + [f"- {c.text()}" for c in comparisons] + [""]
    first = [d for d in dict.fromkeys(results["decoding"]) if d != TRUTH_DECODING][0]
    scale = compare(results, "loss_scale", "dft", 1.0, first, config["zipf_exponent"], "NLL's own ratio")
    nll_up = compare(results, "cross_entropy", "dft", "base", scale.decoding, config["zipf_exponent"])
    lines += ["## Two user reports (science.md section 4)", "",
              f"- Users report DFT's loss value 10-20x smaller than cross-entropy. After training here, DFT's own "
              f"loss on the test stories is {1 / scale.mean_a:,.0f}x smaller than its NLL on the same tokens: the "
              f"weight p(y) silences exactly the tokens it has given up on (p near 0), where the NLL is largest. "
              + scale.text(),
              f"- Does NLL go up under DFT? Sequence cross-entropy of dft minus the base model's: " + nll_up.text(), ""]
    return "\n".join(lines)


def write_claims(quick: bool = False, out=None) -> Path:
    """Regenerate CLAIMS.md from the cached results of the default study (`python -m dftlab.study claims`)."""
    config = default_config(quick)
    study = load_study(quick, config, out)
    path = claims_path(results_dir() if out is None else Path(out), config, study["model_sha256"])
    atomic_write_text(path, claims_markdown(_table(study), study))
    return path


# ---------------------------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dftlab.study",
        description="Fine-tune the embedded model with every objective under one budget, measure the samples "
                    "and the fit, and write the results table, its summary and CLAIMS.md. Finished runs are "
                    "cached: an interrupted study resumes where it stopped.",
    )
    parser.add_argument("command", nargs="?", choices=("run", "claims"), default="run",
                        help="run: compute (or resume) the study; claims: only rewrite CLAIMS.md from cached results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets (1 seed, few steps and samples, n-gram MMD): every column in under 3 minutes; "
                             "results go to study-quick-*.json and CLAIMS-quick.md")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run (default: 0 1 2, or 0 with --quick); the config gets the name 'custom'")
    parser.add_argument("--objectives", nargs="+", default=None,
                        help=f"objective labels to run, from: {' '.join(o.label for o in DEFAULT_OBJECTIVES)} "
                             f"(default: all); the config gets the name 'custom'")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: $DFTLAB_RESULTS, else results/ in the repository)")
    parser.add_argument("--force", action="store_true", help="recompute every run, ignoring the cache")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="runs computed side by side in separate processes, each on one CPU thread "
                             "(default: 2, or 1 on a one-core machine); the results do not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    # transformers warns once per process that generation passes no attention mask (none is needed: no padding).
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    out = results_dir() if args.out is None else args.out
    if args.command == "claims":
        if args.seeds or args.objectives:
            raise SystemExit("`claims` reads the default study's results; drop --seeds and --objectives.")
        try:
            print(f"wrote {write_claims(args.quick, out)}")
        except (FileNotFoundError, CorruptFileError) as error:
            raise SystemExit(f"dftlab.study claims: {error}") from None
        return 0
    config = default_config(args.quick)
    if args.seeds is not None:
        config = replace(config, name="custom", seeds=tuple(args.seeds))
    if args.objectives is not None:
        labels = [o.label for o in config.objectives]
        unknown = [label for label in args.objectives if label not in labels]
        if unknown:
            raise SystemExit(f"--objectives: unknown label(s) {unknown}; choose from {labels}.")
        chosen = tuple(o for o in config.objectives if o.label in args.objectives)
        config = replace(config, name="custom", objectives=chosen,
                         regime_objectives=tuple(r for r in config.regime_objectives if r in args.objectives))
    started = time.time()
    results = run_study(config, out, force=args.force, workers=args.workers,
                        progress=False if args.no_progress else None)
    fingerprint = model_fingerprint(config.model)
    print(f"dftlab.study: {len(results)} rows in {time.time() - started:.0f} s -> "
          f"{study_path(out, config, fingerprint)}; claims in {claims_path(out, config, fingerprint)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
