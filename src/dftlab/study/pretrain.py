"""Pretrain the embedded model, tiny-gpt2, from scratch: `python -m dftlab.study.pretrain` (chapter 0 and the model card).

The recipe, top to bottom:
1. Corpus: public-domain English (King James Bible, The Devil's Dictionary) plus TinyTales-style
   stories drawn with *flatter* choice probabilities than the fine-tuning set, so the base model
   knows the story domain but not the target frequencies, as a real pretrained LLM would.
2. Tokenizer: byte-level BPE (GPT-2's algorithm) trained with `tokenizers` on that corpus.
3. Model: a small `GPT2LMHeadModel`, trained with next-token cross-entropy on fixed-length blocks.
4. Output: safetensors weights, config, tokenizer, SHA256SUMS and MODEL_CARD.md, written to a
   temporary folder and swapped in only when everything is complete.
Everything is seeded, so the same command gives the same model on the same machine.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import torch

from dftlab.corpus import kjv_passages, load_corpus
from dftlab.data import IGNORE_INDEX
from dftlab.models import EMBEDDED_MODELS, STRONG_PRIOR_MODEL, WEAK_PRIOR_MODEL
from dftlab.objectives import num_supervised
from dftlab.runtime import torch_global_seed
from dftlab.storage import replace_folder, write_checksums
from dftlab.study.config import setting
from dftlab.validation import check_int, check_number

EOS = "<|endoftext|>"
CORPORA = ("english+tinytales", "english")
# The two embedded base models: their names and the recipe fields that differ from PretrainConfig's defaults
# (which are the strong prior's). bench/RESULTS.md records the search that chose them.
PRIORS = {
    "strong": {"name": STRONG_PRIOR_MODEL, "recipe": {}},
    "weak": {"name": WEAK_PRIOR_MODEL,
             "recipe": {"corpus": "english", "story_fraction": 0.0, "steps": 1200, "anneal_steps": 0}},
}


@dataclass
class PretrainConfig:
    """The pretraining recipe; the defaults are the strong prior's (`PRIORS` lists what the others change)."""
    vocab_size: int = setting(4096, "tokens in the byte-level BPE vocabulary (at least 257: the bytes and end-of-text)")
    n_layer: int = setting(4, "transformer blocks")
    n_embd: int = setting(128, "width of the residual stream")
    n_head: int = setting(4, "attention heads per block (n_embd must be divisible by it)")
    n_positions: int = setting(128, "context length in tokens: the length of every training block")
    steps: int = setting(3000, "optimiser steps of the first (mixed) stage")
    batch_size: int = setting(24, "blocks per step")
    lr: float = setting(2e-3, "peak learning rate of the first stage (AdamW, warm-up then cosine decay)")
    warmup_steps: int = setting(100, "steps of linear warm-up")
    weight_decay: float = setting(0.1, "AdamW's weight decay")
    tinytales_stories: int = setting(20000, "TinyTales stories in the pretraining text")
    tinytales_zipf_exponent: float = setting(0.3, "Zipf exponent of those stories' choices: flatter than the "
                                                   "fine-tuning data's 1.1, so the model knows the domain but not its "
                                                   "frequencies")
    corpus: str = setting("english+tinytales", "'english+tinytales': the strong prior (writes TinyTales stories "
                                                "before any fine-tuning); 'english': the weak prior (public-domain "
                                                "English only; the tokenizer still sees the stories)")
    story_fraction: float = setting(0.75, "share of each batch's rows that are story blocks (each starts at a "
                                           "story and holds whole stories); 0 packs the stories into the English "
                                           "stream, cut anywhere")
    anneal_steps: int = setting(600, "steps of a second stage on story blocks only, with a fresh optimiser, its "
                                      "own warm-up and cosine decay, to settle the story grammar (0: none)")
    anneal_lr: float = setting(1e-3, "peak learning rate of the second stage")
    valid_fraction: float = setting(0.02, "share of the blocks held out to measure the validation loss")
    max_documents: int = setting(0, "documents of each corpus to use (0: all; tests use a few hundred)")
    seed: int = setting(0, "seed of the TinyTales stories drawn, the data order, the initial weights and the batches")

    def __post_init__(self):
        """Refuse a recipe that would fail (or train nonsense) only minutes in, deep inside transformers."""
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "n_positions", "steps", "batch_size",
                     "tinytales_stories"):
            check_int(getattr(self, name), f"PretrainConfig({name})")
        for name in ("warmup_steps", "max_documents", "seed", "anneal_steps"):
            check_int(getattr(self, name), f"PretrainConfig({name})", 0)
        if self.vocab_size < 257:
            raise ValueError(f"PretrainConfig(vocab_size={self.vocab_size}) must be at least 257: byte-level BPE starts "
                             f"from the 256 bytes, plus the end-of-text token.")
        if self.n_embd % self.n_head:
            raise ValueError(f"PretrainConfig(n_embd={self.n_embd}) must be divisible by n_head={self.n_head}: "
                             f"each attention head gets n_embd / n_head dimensions.")
        for name, low in (("lr", 0.0), ("anneal_lr", 0.0), ("weight_decay", None), ("tinytales_zipf_exponent", None)):
            check_number(getattr(self, name), f"PretrainConfig({name})", 0.0, low_open=low is not None)
        if self.corpus not in CORPORA:
            raise ValueError(f"PretrainConfig(corpus={self.corpus!r}) must be one of {sorted(CORPORA)}: "
                             f"'english+tinytales' is the strong prior, 'english' the weak one.")
        check_number(self.story_fraction, "PretrainConfig(story_fraction)", 0.0, 1.0, high_open=True,
                     hint="Such as 0.75 (three story blocks to one English block).")
        if self.corpus == "english" and self.anneal_steps:
            raise ValueError("PretrainConfig(anneal_steps=...) needs corpus='english+tinytales': the second stage trains "
                             "on story blocks only. Set anneal_steps=0.")
        if self.anneal_steps and not self.story_fraction:
            raise ValueError("PretrainConfig(anneal_steps=...) needs story_fraction > 0 (story-aligned blocks).")
        if self.corpus == "english" and self.story_fraction:
            raise ValueError("PretrainConfig(story_fraction=...) needs corpus='english+tinytales': the English-only "
                             "corpus has no stories to align. Set story_fraction=0.")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"PretrainConfig(valid_fraction={self.valid_fraction!r}) must be between 0 and 1, "
                             f"such as 0.02.")


def build_documents(config: PretrainConfig) -> tuple[list[str], list[str]]:
    """The English documents and the TinyTales stories, each in a seeded random order.

    Both are returned whatever the corpus: the tokenizer is trained on both, so the strong and the
    weak prior share one vocabulary and their per-token probabilities can be compared directly.
    """
    from dftlab.tinytales import pretraining_text

    english = kjv_passages() + load_corpus("devils_dictionary")
    stories = pretraining_text(config.tinytales_stories, seed=config.seed,
                               zipf_exponent=config.tinytales_zipf_exponent)
    random.Random(config.seed).shuffle(english)
    random.Random(config.seed + 1).shuffle(stories)
    if config.max_documents > 0:
        english, stories = english[: config.max_documents], stories[: config.max_documents]
    return english, stories


def train_tokenizer(documents: list[str], vocab_size: int):
    """Byte-level BPE with GPT-2's pre-tokenisation, wrapped as a transformers fast tokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(documents, vocab_size=vocab_size, min_frequency=2, special_tokens=[EOS], show_progress=False)
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS,
                                   pad_token=EOS, model_max_length=1_000_000)


def make_blocks(tokenizer, documents: list[str], block_size: int) -> torch.Tensor:
    """Concatenate the documents, separated by EOS, and cut the stream into blocks of block_size tokens."""
    stream: list[int] = []
    for ids in tokenizer(documents).input_ids:
        stream.extend(ids + [tokenizer.eos_token_id])
    n_blocks = len(stream) // block_size
    return torch.tensor(stream[: n_blocks * block_size]).view(n_blocks, block_size)


def make_aligned_blocks(tokenizer, documents: list[str], block_size: int) -> torch.Tensor:
    """Whole documents packed greedily into blocks that each start at a document; EOS fills the rest.

    A story then always sits in one block with its title before it, which is what the model must
    learn to use. Padding positions get the label -100 (see `block_labels`), so they cost no loss.
    """
    eos = tokenizer.eos_token_id
    blocks, current = [], []
    for ids in tokenizer(documents).input_ids:
        ids = ids[: block_size - 1] + [eos]
        if len(current) + len(ids) > block_size:
            blocks.append(current + [PAD_MARK] * (block_size - len(current)))
            current = []
        current += ids
    if current:
        blocks.append(current + [PAD_MARK] * (block_size - len(current)))
    return torch.tensor(blocks)


PAD_MARK = -1  # padding inside aligned blocks; replaced by EOS in the input and by IGNORE_INDEX in the labels


def block_inputs_and_labels(blocks: torch.Tensor, eos_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Model inputs (padding as EOS) and labels (padding ignored) for a batch of blocks."""
    padding = blocks == PAD_MARK
    return blocks.masked_fill(padding, eos_token_id), blocks.masked_fill(padding, IGNORE_INDEX)


def build_model(config: PretrainConfig, vocab_size: int):
    """A freshly initialised GPT-2 of the recipe's shape, its weights drawn from torch's global generator seeded with
    `config.seed` (the generator is given back as it was)."""
    with torch_global_seed(config.seed):
        return _initialised_model(config, vocab_size)


def _initialised_model(config: PretrainConfig, vocab_size: int):
    """A GPT-2 of the recipe's shape, its weights drawn from torch's global generator as it stands."""
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2_config = GPT2Config(vocab_size=vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
                             n_layer=config.n_layer, n_head=config.n_head, bos_token_id=0, eos_token_id=0,
                             pad_token_id=0, tie_word_embeddings=True)
    return GPT2LMHeadModel(gpt2_config)


@torch.no_grad()
def block_loss(model, blocks: torch.Tensor, eos_token_id: int, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats) over all real (non-padding) tokens of the blocks."""
    if len(blocks) == 0:
        return math.nan
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        inputs, labels = block_inputs_and_labels(blocks[start:start + batch_size], eos_token_id)
        n = num_supervised(labels)
        total += model(input_ids=inputs, labels=labels).loss.item() * n
        count += n
    model.train()
    return total / count


def _split(blocks: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(valid, train) blocks after a seeded shuffle."""
    if len(blocks) == 0:
        return blocks, blocks
    blocks = blocks[torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))]
    n_valid = max(1, int(len(blocks) * fraction))
    return blocks[:n_valid], blocks[n_valid:]


def training_blocks(config: PretrainConfig, tokenizer, english: list[str], stories: list[str]) -> dict:
    """The train and valid blocks of each stream ("english", "stories") for this recipe.

    story_fraction 0 packs everything into one stream (stories cut anywhere, as the first recipe did);
    above 0 the stories get story-aligned blocks of their own and each batch draws that share of them.
    """
    size = config.n_positions
    if config.corpus == "english":
        streams = {"english": make_blocks(tokenizer, english, size)}
    elif config.story_fraction == 0:
        mixed = english + stories
        random.Random(config.seed).shuffle(mixed)
        streams = {"english": make_blocks(tokenizer, mixed, size)}
    else:
        streams = {"english": make_blocks(tokenizer, english, size),
                   "stories": make_aligned_blocks(tokenizer, stories, size)}
    out = {}
    for name, blocks in streams.items():
        out[f"valid_{name}"], out[f"train_{name}"] = _split(blocks, config.valid_fraction, config.seed)
    return out


def _batch_rows(config: PretrainConfig, blocks: dict) -> dict:
    """How many rows of each batch come from each stream."""
    if "train_stories" not in blocks:
        return {"english": config.batch_size}
    n_stories = round(config.batch_size * config.story_fraction)
    return {"english": config.batch_size - n_stories, "stories": n_stories}


def _train_stage(model, blocks: dict, rows: dict, eos: int, *, steps: int, lr: float, warmup_steps: int,
                 weight_decay: float, batch_seed: int, log, started: float, stage: str, on_step=None) -> None:
    """One training stage: a fresh AdamW, linear warm-up then cosine decay to 0, batches drawn with `batch_seed`."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))
    schedule = lambda step: min(1.0, (step + 1) / warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(batch_seed)
    model.train()
    for step in range(steps):
        parts = [blocks[f"train_{name}"][torch.randint(len(blocks[f"train_{name}"]), (n,), generator=generator)]
                 for name, n in rows.items() if n]
        inputs, labels = block_inputs_and_labels(torch.cat(parts), eos)
        loss = model(input_ids=inputs, labels=labels).loss
        if not torch.isfinite(loss):
            raise RuntimeError(f"pretraining diverged at {stage} step {step} (loss {loss.item()}); lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == steps - 1:
            log(f"{stage} step {step:5d}  loss {loss.item():.3f}  {time.time() - started:.0f}s")
        if on_step is not None:
            on_step(step + 1, model)


def _stage_one_matches(folder: Path, config: PretrainConfig) -> None:
    """Refuse to continue from a folder that another recipe (or another stage) wrote."""
    report = folder / "pretrain_report.json"
    if not report.exists():
        raise ValueError(f"--continue-from {folder}: no pretrain_report.json there, so its recipe is unknown. Pass a "
                         f"folder written by `python -m dftlab.study.pretrain` with the same settings and anneal_steps=0.")
    written = json.loads(report.read_text())["config"]
    expected = {k: v for k, v in asdict(config).items() if k not in ("anneal_steps", "anneal_lr")}
    differ = {k: (written.get(k), v) for k, v in expected.items() if written.get(k) != v}
    if differ or written.get("anneal_steps", 0):
        raise ValueError(f"--continue-from {folder}: that model was not trained by the first stage of this recipe "
                         f"(settings that differ, written vs wanted: {differ or {'anneal_steps': written.get('anneal_steps')}}). "
                         f"Rerun without --continue-from to train from scratch.")


def pretrain(config: PretrainConfig, log=print, evaluate_every: int = 0, on_evaluate=None, continue_from=None):
    """Run the whole recipe; returns (model, tokenizer, report dict).

    Stage 1 trains on the mixed batches for `steps`; stage 2 (if `anneal_steps`) on story blocks only, with a
    fresh optimiser and the seeds `seed + 1`, so it depends on nothing but stage 1's weights. `continue_from`,
    a folder written by stage 1 of the same recipe (anneal_steps=0), skips stage 1: the result is the same.
    `on_evaluate(step, model, tokenizer)`, if given, is called every `evaluate_every` steps of stage 1 (the
    recipe search in bench/pretrain_search.py uses it to measure validity along the way).
    """
    started = time.time()
    stage_one_seconds = 0
    english, stories = build_documents(config)
    if continue_from is not None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = Path(continue_from)
        _stage_one_matches(folder, config)
        stage_one_seconds = json.loads((folder / "pretrain_report.json").read_text())["report"]["seconds"]
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder, use_safetensors=True)
        log(f"stage 1 read from {folder}")
    else:
        tokenizer = train_tokenizer(english + stories, config.vocab_size)
    eos = tokenizer.eos_token_id
    blocks = training_blocks(config, tokenizer, english, stories)
    rows = _batch_rows(config, blocks)
    corpus_tokens = sum(int((blocks[k] != PAD_MARK).sum()) for k in blocks)
    if continue_from is None:
        # One stream from torch's global generator, seeded here and given back afterwards: the initialisation, then
        # stage 1's dropout.
        with torch_global_seed(config.seed):
            model = _initialised_model(config, len(tokenizer))
            log(f"corpus {config.corpus}: {len(english)} English documents"
                f"{'' if config.corpus == 'english' else f', {len(stories)} stories'}, {corpus_tokens:,} tokens; "
                f"batch rows {rows}; model: {model.num_parameters():,} parameters")

            def evaluate(step, model):
                if on_evaluate is not None and evaluate_every and step % evaluate_every == 0:
                    model.eval()
                    on_evaluate(step, model, tokenizer)
                    model.train()

            _train_stage(model, blocks, rows, eos, steps=config.steps, lr=config.lr, warmup_steps=config.warmup_steps,
                         weight_decay=config.weight_decay, batch_seed=config.seed, log=log, started=started,
                         stage="stage 1", on_step=evaluate)
    if config.anneal_steps:
        # dropout's stream: stage 2 does not depend on how stage 1 was run
        with torch_global_seed(config.seed + 1):
            _train_stage(model, blocks, {"stories": config.batch_size}, eos, steps=config.anneal_steps,
                         lr=config.anneal_lr, warmup_steps=max(1, config.anneal_steps // 10),
                         weight_decay=config.weight_decay, batch_seed=config.seed + 1, log=log, started=started,
                         stage="stage 2")
    model.eval()
    generator = torch.Generator().manual_seed(config.seed)
    report = {"parameters": model.num_parameters(),
              "train_tokens_seen": (config.steps + config.anneal_steps) * config.batch_size * config.n_positions,
              "corpus_tokens": corpus_tokens}
    for name in rows:
        valid = blocks[f"valid_{name}"]
        train_subset = blocks[f"train_{name}"][torch.randperm(len(blocks[f"train_{name}"]), generator=generator)[:len(valid)]]
        suffix = "" if name == "english" else "_stories"
        report[f"train_loss{suffix}"] = block_loss(model, train_subset, eos)
        report[f"valid_loss{suffix}"] = block_loss(model, valid, eos)
        report[f"valid_perplexity{suffix}"] = math.exp(report[f"valid_loss{suffix}"])
        report[f"train_perplexity{suffix}"] = math.exp(report[f"train_loss{suffix}"])
    report["seconds"] = round(time.time() - started) + stage_one_seconds
    if continue_from is not None:
        report["seconds_stage_1_read_from_folder"] = stage_one_seconds
    return model.eval(), tokenizer, report


def story_validity(model, tokenizer, num_prompts: int = 200, seed: int = 0) -> float:
    """Share of valid TinyTales stories among the model's own samples at T = 1, one per test prompt.

    The prompts are the first test prompts of the study's TinyTales (seed 0, zipf 1.1); validity depends on
    the grammar only, not on its probabilities.
    """
    from dftlab.generate import sample_completions
    from dftlab.metrics import validity_rate
    from dftlab.tinytales import TinyTales

    tales = TinyTales(seed=0)
    prompts = [s["prompt"] for s in tales.splits(train=10, valid=10, test=num_prompts)["test"]]
    samples = sample_completions(model, tokenizer, prompts, 1, temperature=1.0, max_new_tokens=96, seed=seed)
    return validity_rate(samples, tales)


def write_model_folder(model, tokenizer, config: PretrainConfig, report: dict, target: Path, name: str) -> Path:
    """Write every file into a temporary sibling folder, then swap it in: never a half-written model."""
    from dftlab.generate import sample_completions

    target = Path(target)
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)  # config.json and model.safetensors (the tied LM head is stored once)
    tokenizer.save_pretrained(staging)
    report = {**report, "story_validity_T1": story_validity(model, tokenizer, seed=config.seed)}
    samples = sample_completions(model, tokenizer, ["And it came to pass", "Title: The fox and the river.\nStory:"],
                                 temperature=1.0, max_new_tokens=80, seed=config.seed)
    files = sorted(p.name for p in staging.iterdir())
    write_checksums(staging, files)
    (staging / "MODEL_CARD.md").write_text(model_card(config, report, samples, staging, name))
    (staging / "pretrain_report.json").write_text(json.dumps({"config": asdict(config), "report": report}, indent=1))
    return replace_folder(staging, target)


def model_card(config: PretrainConfig, report: dict, samples: list[dict], folder: Path, name: str) -> str:
    sums = (folder / "SHA256SUMS").read_text()
    sample_text = "\n\n".join(f"> **{s['prompt']!r}** →{s['completion']}" for s in samples)
    strong = config.corpus != "english"
    role = ("the strong prior and the course's default: it writes TinyTales stories before any fine-tuning, but "
            "picks their openers, adjectives and endings with the pretraining grammar's flat frequencies"
            if strong else "the weak prior: it knows the public-domain English but has never seen a TinyTales story")
    corpus = ("King James Bible (passages of 4 verses), The Devil's Dictionary" +
              (f", and {config.tinytales_stories:,} TinyTales stories drawn with a flat Zipf exponent of "
               f"{config.tinytales_zipf_exponent} (the fine-tuning set uses 1.1); "
               f"{config.story_fraction:.0%} of every batch's rows are story blocks, each starting at a story and "
               f"holding whole stories only" if strong else
               "; the tokenizer is trained on the same documents as tiny-gpt2's (stories included), so the two "
               "models share one vocabulary"))
    losses = [f"| English, train (a sample of blocks) | {report['train_loss']:.3f} | {report['train_perplexity']:.1f} |",
              f"| English, valid | {report['valid_loss']:.3f} | {report['valid_perplexity']:.1f} |"]
    if "valid_loss_stories" in report:
        losses += [f"| stories, train (a sample of blocks) | {report['train_loss_stories']:.3f} | "
                   f"{report['train_perplexity_stories']:.2f} |",
                   f"| stories, valid | {report['valid_loss_stories']:.3f} | {report['valid_perplexity_stories']:.2f} |"]
    losses = "\n".join(losses)
    anneal = (f"; then a second stage of {config.anneal_steps} steps on story blocks only (a fresh AdamW, lr "
              f"{config.anneal_lr}, {max(1, config.anneal_steps // 10)} warm-up steps, cosine decay)"
              if config.anneal_steps else "")
    return f"""# {name}: an embedded model of dftlab

A `GPT2LMHeadModel` pretrained from scratch by `python -m dftlab.study.pretrain --prior {"strong" if strong else "weak"}`
(seed {config.seed}). It is {role}. It is tiny on purpose: it trains in minutes on 2 CPU cores and fine-tunes
in seconds, so every experiment in the course runs on a laptop.

## Recipe
| setting | value |
|---|---|
| architecture | GPT-2: {config.n_layer} layers, width {config.n_embd}, {config.n_head} heads, context {config.n_positions} tokens, tied embeddings |
| parameters | {report['parameters']:,} |
| tokenizer | byte-level BPE (GPT-2's algorithm) trained with `tokenizers`, {config.vocab_size} tokens, `<|endoftext|>` as EOS and padding |
| corpus | {corpus} |
| corpus size | {report['corpus_tokens']:,} tokens, {config.valid_fraction:.0%} of blocks held out for validation |
| training | AdamW (lr {config.lr}, betas 0.9/0.95, weight decay {config.weight_decay}), {config.warmup_steps} warm-up steps then cosine decay, {config.steps} steps of {config.batch_size} x {config.n_positions} tokens{anneal}, gradient clipping at 1.0; {report['train_tokens_seen']:,} tokens in all |
| wall time | {report['seconds']} s on the machine that built it{f" (stage 1, {report['seconds_stage_1_read_from_folder']} s, was run separately and read with --continue-from)" if "seconds_stage_1_read_from_folder" in report else ""} |

## Results
| split | loss (nats/token) | perplexity |
|---|---|---|
{losses}

Its own samples at T = 1 for 200 TinyTales test prompts: {report['story_validity_T1']:.1%} valid stories.

## Samples (temperature 1)
{sample_text}

## Licence and provenance
Weights: MIT, like the code. Training text: public domain (see `dftlab/assets/corpus/PROVENANCE.md`); TinyTales is generated by `dftlab.tinytales`.

## sha256
```
{sums}```
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dftlab.study.pretrain", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--prior", choices=sorted(PRIORS), default="strong",
                        help="which embedded model to build: strong (tiny-gpt2) or weak (tiny-gpt2-english); it sets "
                             "the recipe's defaults, which the options below override")
    for recipe_field in fields(PretrainConfig):
        parser.add_argument(f"--{recipe_field.name.replace('_', '-')}", type=type(recipe_field.default),
                            default=argparse.SUPPRESS,
                            help=f"{recipe_field.metadata['meaning']} (strong prior: {recipe_field.default!r})")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder to write the model to (default: the embedded model's folder; replaced only "
                             "when complete)")
    parser.add_argument("--continue-from", type=Path, default=None,
                        help="a folder written by stage 1 of the same recipe (--anneal-steps 0): skip stage 1 and run "
                             "stage 2 from it (the result is the same as a run from scratch)")
    args = vars(parser.parse_args(argv))
    prior, out, continue_from = args.pop("prior"), args.pop("out"), args.pop("continue_from")
    name = PRIORS[prior]["name"]
    config = PretrainConfig(**{**PRIORS[prior]["recipe"], **{k: v for k, v in args.items() if v is not None}})
    out = EMBEDDED_MODELS[name] if out is None else out
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the run prints its own progress; transformers' notices are noise here
    hf_logging.disable_progress_bar()
    model, tokenizer, report = pretrain(config, continue_from=continue_from)
    print(json.dumps(report, indent=1))
    print("wrote", write_model_folder(model, tokenizer, config, report, out, name))


if __name__ == "__main__":
    main()
