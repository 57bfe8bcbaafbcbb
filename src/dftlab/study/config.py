"""What the study trains and measures: objectives, base models, budgets, seeds, decodings (`StudyConfig`).

The study's design, in one place (chapter "The verdict" states it in prose):

- Two base models, a measured manipulation of the prior. `tiny-gpt2` (the *strong* prior) was pretrained on
  English and on TinyTales stories drawn from a flatter distribution, so it writes valid stories before any
  fine-tuning but picks its openers, adjectives and endings with the wrong frequencies. `tiny-gpt2-english`
  (the *weak* prior) was pretrained on the same English alone and has never seen a story.
- Every objective fine-tunes the strong prior at the headline budget; the headline objectives (nll and dft) get
  more seeds, a step-budget sweep, and a run from the weak prior as well.
- One learning rate for every objective: a per-objective tuning would mix "which loss" with "how well tuned".
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from dftlab.models import REAL_CHAT_MODEL, STRONG_PRIOR_MODEL, WEAK_PRIOR_MODEL
from dftlab.validation import check_int, check_number

TOP_OPENER = "Once upon a time,"
# The first (most frequent) option of the TinyTales choices that show up as a phrase of their own.
FORMULAIC_PHRASES = ("Once upon a time,", "small", "One day,", "felt happy.", "The end.")
HISTOGRAM_BINS = 20
PROBABILITY_QUANTILES = (10, 25, 50, 75, 90)
STRONG_PRIOR, WEAK_PRIOR = STRONG_PRIOR_MODEL, WEAK_PRIOR_MODEL


def plain_json(spec) -> dict:
    """A dataclass (a config, a run) as plain JSON types: tuples become lists, as they are once written to a file,
    so a spec compares equal to what a cached file records of it."""
    return json.loads(json.dumps(asdict(spec)))


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
    ObjectiveSpec("asft", "asft", {"lam": 0.05}),
    ObjectiveSpec("distribution_matching_0.3", "distribution_matching", {"lam": 0.3}),
    ObjectiveSpec("distribution_matching_1", "distribution_matching", {"lam": 1.0}),
    ObjectiveSpec("distribution_matching_3", "distribution_matching", {"lam": 3.0}),
)
DEFAULT_DECODINGS = (Decoding("T=1", 1.0, None), Decoding("T=0.7,top-p=0.9", 0.7, 0.9))
TRUTH_DECODING = "data"


def setting(default, meaning: str):
    """A config field: its default and what it means (read with `dataclasses.fields`, printed by `--help`)."""
    return field(default=default, metadata={"meaning": meaning})


def _positive_int(config, name: str, low: int = 1) -> None:
    check_int(getattr(config, name), f"StudyConfig({name})", low)


def _seed_tuple(config, name: str) -> None:
    seeds = getattr(config, name)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ValueError(f"StudyConfig({name}={seeds!r}) must be a non-empty list of ints >= 0.")


@dataclass
class StudyConfig:
    """Everything that shapes the study's numbers. Two configs with equal fields give equal results.

    `model` is the strong-prior base (the headline), `weak_model` the weak-prior one (None: no prior
    manipulation); each is an embedded model name or a folder holding a saved model and tokenizer.
    Every objective fine-tunes `model` for `steps` steps with `seeds`; the `headline_objectives` do so
    with `headline_seeds`, and also (with `seeds`) at every budget of `budget_sweep` and from `weak_model`.
    """
    name: str = setting("full", "names the study's files (study-<name>-<hash>.json)")
    model: str = setting(STRONG_PRIOR, "the strong-prior base model: an embedded name or a saved model's folder")
    weak_model: str | None = setting(WEAK_PRIOR, "the weak-prior base model (None: one base model only)")
    objectives: tuple = setting(DEFAULT_OBJECTIVES, "the objectives (ObjectiveSpec), each fine-tuned from `model`")
    seeds: tuple = setting((0, 1, 2), "seeds of every objective's runs")
    headline_objectives: tuple = setting(("nll", "dft"), "labels of the objectives that get the headline seeds, "
                                                          "the budget sweep and the weak prior")
    headline_seeds: tuple = setting((0, 1, 2, 3, 4), "seeds of the headline objectives' runs at `steps`")
    budget_sweep: tuple = setting((50, 100), "smaller step budgets the headline objectives also run at")
    zipf_exponent: float = setting(1.1, "Zipf exponent of the TinyTales choices fine-tuned on and measured against "
                                        "(1.1: the formulaic data)")
    train_size: int = setting(3000, "training stories")
    valid_size: int = setting(100, "validation stories, for the loss during fine-tuning")
    test_size: int = setting(300, "test stories: the exact fit is measured on them, and the prompts are their titles")
    steps: int = setting(200, "the headline budget: optimiser steps of each fine-tuning")
    batch_size: int = setting(16, "stories per step (and per batch when measuring)")
    lr: float = setting(1e-3, "peak learning rate, the same for every objective (after the warm-up)")
    warmup_steps: int = setting(20, "steps of linear warm-up")
    eval_every: int = setting(100, "steps between two validation losses")
    max_length: int = setting(128, "tokens kept of each story in training and measuring")
    num_prompts: int = setting(32, "prompts sampled from: the titles of the first test stories")
    samples_per_prompt: int = setting(5, "stories sampled per prompt and decoding")
    max_new_tokens: int = setting(96, "tokens sampled at most per story")
    decodings: tuple = setting(DEFAULT_DECODINGS, "how the samples are drawn (Decoding: temperature, top-p)")
    embedding: str = setting("minilm", "sentence embeddings for MMD: 'minilm' (MiniLM) or 'ngram' (hashed "
                                       "n-grams, fast)")
    mmd_texts: int = setting(160, "texts per side in MMD")
    mmd_permutations: int = setting(200, "permutations of MMD's test")
    self_bleu_texts: int = setting(160, "texts in self-BLEU")

    def __post_init__(self):
        self.objectives = tuple(o if isinstance(o, ObjectiveSpec) else ObjectiveSpec(**o) for o in self.objectives)
        self.decodings = tuple(d if isinstance(d, Decoding) else Decoding(**d) for d in self.decodings)
        self.seeds, self.headline_seeds = tuple(self.seeds), tuple(self.headline_seeds)
        self.headline_objectives, self.budget_sweep = tuple(self.headline_objectives), tuple(self.budget_sweep)
        labels = [o.label for o in self.objectives]
        if len(set(labels)) != len(labels) or {"base", "truth"} & set(labels):
            raise ValueError(f"StudyConfig(objectives=...): labels must be unique and not 'base' or 'truth', "
                             f"got {labels}.")
        unknown = [label for label in self.headline_objectives if label not in labels]
        if unknown:
            raise ValueError(f"StudyConfig(headline_objectives={self.headline_objectives!r}): {unknown} are not "
                             f"objective labels; use some of {labels}.")
        for name in ("model", "weak_model"):
            value = getattr(self, name)
            if not (isinstance(value, str) and value.strip()) and not (name == "weak_model" and value is None):
                raise ValueError(f"StudyConfig({name}={value!r}) must be a model name such as {STRONG_PRIOR!r}"
                                 f"{' or None' if name == 'weak_model' else ''}.")
        if self.weak_model is not None and _base_name(self.weak_model) == _base_name(self.model):
            raise ValueError(f"StudyConfig(model={self.model!r}, weak_model={self.weak_model!r}): the two base models "
                             f"need different folder names, which name their runs; use weak_model=None for one base.")
        _seed_tuple(self, "seeds")
        _seed_tuple(self, "headline_seeds")
        if self.embedding not in ("minilm", "ngram"):
            raise ValueError(f"StudyConfig(embedding={self.embedding!r}) must be 'minilm' or 'ngram'.")
        for name in ("train_size", "valid_size", "test_size", "steps", "batch_size", "eval_every", "max_length",
                     "num_prompts", "samples_per_prompt", "max_new_tokens", "mmd_texts", "self_bleu_texts"):
            _positive_int(self, name)
        _positive_int(self, "warmup_steps", 0)
        if not all(isinstance(s, int) and not isinstance(s, bool) and 0 < s for s in self.budget_sweep) \
                or self.steps in self.budget_sweep:
            raise ValueError(f"StudyConfig(budget_sweep={self.budget_sweep!r}) must hold step budgets > 0 other "
                             f"than steps={self.steps} (which every headline objective runs anyway).")
        check_number(self.lr, "StudyConfig(lr)", 0.0, low_open=True, hint="Such as 1e-3.")
        check_number(self.zipf_exponent, "StudyConfig(zipf_exponent)", 0.0, hint="1.1 is the default.")
        from dftlab.distributions import check_decoding_settings
        from dftlab.objectives import check_objective_kwargs

        for spec in self.objectives:
            check_objective_kwargs(spec.objective, spec.kwargs)  # unknown names and keywords fail here, not mid-study
        for decoding in self.decodings:
            check_decoding_settings(decoding.temperature, None, decoding.top_p)
        if self.num_prompts > self.test_size:
            raise ValueError(f"StudyConfig(num_prompts={self.num_prompts}) cannot exceed test_size={self.test_size}: "
                             f"the prompts are those of the first test stories.")

    @property
    def base_models(self) -> tuple:
        return (self.model,) if self.weak_model is None else (self.model, self.weak_model)

    def to_dict(self) -> dict:
        return plain_json(self)


def default_config(quick: bool = False) -> StudyConfig:
    """The full study, or (quick=True) the same design on tiny budgets: one seed, every objective and column.

    quick uses the n-gram embeddings for MMD (`dftlab.metrics.sentence_embeddings(method="ngram")`),
    because loading and running MiniLM alone would take a third of its time budget.
    """
    if not quick:
        return StudyConfig()
    return StudyConfig(name="quick", seeds=(0,), headline_seeds=(0,), budget_sweep=(4,), train_size=320,
                       valid_size=24, test_size=40, steps=8, warmup_steps=2, eval_every=4, num_prompts=4,
                       samples_per_prompt=4, max_new_tokens=72, embedding="ngram", mmd_texts=16,
                       mmd_permutations=50, self_bleu_texts=16)


# The frozen-rule replication (CLAIMS.md): nll and dft again at the headline budget from the strong prior, on seeds
# that no study run had used (the full study's are 0-4, the real-model study's 0-2), and judged on them alone.
REPLICATION_SEEDS = (5, 6, 7, 8, 9)
REPLICATION_NAME = "replication"


def replication_config(seeds: tuple = REPLICATION_SEEDS) -> StudyConfig:
    """The replication study (`python -m dftlab.study --replication`): the full study's settings, nll and dft only,
    the strong prior only, no budget sweep, on `seeds` (default REPLICATION_SEEDS)."""
    full = default_config()
    headline = tuple(o for o in full.objectives if o.label in full.headline_objectives)
    return StudyConfig(name=REPLICATION_NAME, model=full.model, weak_model=None, objectives=headline,
                       seeds=tuple(seeds), headline_objectives=full.headline_objectives, headline_seeds=tuple(seeds),
                       budget_sweep=())


REAL_MODEL = REAL_CHAT_MODEL


# The real-model study is the tiny study's design with these settings changed: one base model (SmolLM2, no weak
# prior), the headline objectives only, no budget sweep, T = 1 only, and budgets sized for 2 CPU cores
# (bench/RESULTS.md: one run is a few minutes).
REAL_MODEL_SETTINGS = dict(
    name="smollm2", model=REAL_MODEL, weak_model=None,
    objectives=(ObjectiveSpec("nll", "nll"), ObjectiveSpec("dft", "dft")), headline_seeds=(0, 1, 2), budget_sweep=(),
    train_size=600, valid_size=32, test_size=64, steps=64, batch_size=8,
    lr=2e-3, warmup_steps=6, eval_every=64, max_length=192, num_prompts=16, samples_per_prompt=4,
    decodings=(Decoding("T=1", 1.0, None),), mmd_texts=64, self_bleu_texts=64,
)


@dataclass
class RealModelStudyConfig(StudyConfig):
    """The experiment on a real LLM (`python -m dftlab.study --real-model`, chapter 7): SmolLM2-135M-Instruct.

    Build it with `real_model_config()`, which starts from `REAL_MODEL_SETTINGS`. The same design and the same
    measurements as the tiny-model study, for the headline objectives only, with what a real instruction-tuned
    model needs: each title goes in the chat template as the user's turn and the loss falls on the assistant's turn
    (`dftlab.chat_samples.chat_examples`); training runs through TRL's SFTTrainer (`dftlab.study.scale.build_trainer`)
    with LoRA adapters of rank `lora_rank`; exact KL is scored under SmolLM2's own tokenizer. Each model also answers
    `open_prompts` of chapter 0's open writing prompts (`dftlab.chat_samples.WRITING_PROMPTS`), so its word overuse
    against English can be set beside the base model's.
    """
    lora_rank: int = setting(16, "rank of the LoRA adapters (on the attention's q and v projections)")
    lora_alpha: float = setting(32.0, "LoRA's scale: the adapters' update is multiplied by lora_alpha / lora_rank")
    open_prompts: int = setting(16, "open writing prompts each model answers (chapter 0's)")
    open_responses_per_prompt: int = setting(2, "answers per open prompt")
    open_max_new_tokens: int = setting(96, "tokens sampled at most per answer")

    def __post_init__(self):
        super().__post_init__()
        if self.weak_model is not None:
            raise ValueError("RealModelStudyConfig(weak_model=...) must be None: the real-model study has one base model. "
                             "Build it with dftlab.study.real_model_config(), which sets weak_model=None.")
        for name in ("lora_rank", "open_prompts", "open_responses_per_prompt", "open_max_new_tokens"):
            _positive_int(self, name)
        check_number(self.lora_alpha, "RealModelStudyConfig(lora_alpha)", 0.0, low_open=True, hint="Such as 32.")
        from dftlab.chat_samples import WRITING_PROMPTS

        if self.open_prompts > len(WRITING_PROMPTS):
            raise ValueError(f"RealModelStudyConfig(open_prompts={self.open_prompts}) cannot exceed the "
                             f"{len(WRITING_PROMPTS)} open writing prompts of dftlab.chat_samples.")


def real_model_config(quick: bool = False) -> RealModelStudyConfig:
    """The real-model study, or (quick=True) its smallest version: one seed, 2 steps, a handful of samples."""
    if not quick:
        return RealModelStudyConfig(**REAL_MODEL_SETTINGS)
    quick_settings = dict(name="smollm2-quick", seeds=(0,), headline_seeds=(0,), train_size=16, valid_size=4,
                          test_size=8, steps=2, warmup_steps=0, eval_every=2, num_prompts=2, samples_per_prompt=2,
                          max_new_tokens=24, embedding="ngram", mmd_texts=4, mmd_permutations=20, self_bleu_texts=4,
                          open_prompts=2, open_responses_per_prompt=1, open_max_new_tokens=16)
    return RealModelStudyConfig(**{**REAL_MODEL_SETTINGS, **quick_settings})


def config_from_dict(data: dict) -> StudyConfig:
    """The config a `to_dict()` came from: a real-model study's dict has its LoRA settings."""
    return RealModelStudyConfig(**data) if "lora_rank" in data else StudyConfig(**data)


@dataclass
class RunSpec:
    """One unit of work: the truth, a base model, or one fine-tuning of `base_model` for `steps` steps."""
    kind: str  # "truth", "base" or "finetuned"
    seed: int
    base_model: str | None = None
    steps: int = 0
    objective: ObjectiveSpec | None = None

    @property
    def label(self) -> str:
        return self.objective.label if self.objective is not None else self.kind

    @property
    def run_id(self) -> str:
        if self.kind == "truth":
            return f"truth-seed{self.seed}"
        base = _base_name(self.base_model)
        if self.kind == "base":
            return f"{base}-base-seed{self.seed}"
        return f"{base}-{self.label}-{self.steps}steps-seed{self.seed}"

    def to_dict(self) -> dict:
        """The run as plain JSON (what a cached payload records under "run"); `from_dict` reads it back."""
        return plain_json(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunSpec":
        data = dict(data)
        objective = data.pop("objective")
        return cls(**data, objective=ObjectiveSpec(**objective) if objective else None)


def _base_name(model: str | None) -> str:
    from pathlib import Path

    return Path(str(model)).name


def plan_runs(config: StudyConfig) -> list[RunSpec]:
    """Every run of the study, grouped by seed and base model (so shared inputs are computed once)."""
    runs = []
    seeds = sorted(set(config.seeds) | set(config.headline_seeds))
    for seed in seeds:
        runs.append(RunSpec("truth", seed))
        for base in config.base_models:
            runs.append(RunSpec("base", seed, base))
        for spec in config.objectives:
            headline = spec.label in config.headline_objectives
            if seed in (config.headline_seeds if headline else config.seeds):
                runs.append(RunSpec("finetuned", seed, config.model, config.steps, spec))
            if headline and seed in config.seeds:  # the sweep and the weak prior: `seeds`, like the other objectives
                runs += [RunSpec("finetuned", seed, config.model, steps, spec) for steps in config.budget_sweep]
                if config.weak_model is not None:
                    runs.append(RunSpec("finetuned", seed, config.weak_model, config.steps, spec))
    return runs
