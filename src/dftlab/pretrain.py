"""Pretrain the embedded model, tiny-gpt2, from scratch: `python -m dftlab.pretrain` (chapter 0 and the model card).

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
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from dftlab.corpus import kjv_passages, load_corpus
from dftlab.models import EMBEDDED_MODELS
from dftlab.storage import write_checksums

EOS = "<|endoftext|>"


@dataclass
class PretrainConfig:
    vocab_size: int = 4096
    n_layer: int = 4
    n_embd: int = 128
    n_head: int = 4
    n_positions: int = 128
    steps: int = 1200
    batch_size: int = 24
    lr: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 0.1
    tinytales_stories: int = 20000
    tinytales_zipf_exponent: float = 0.3
    valid_fraction: float = 0.02
    max_documents: int = 0  # 0 uses the whole corpus; tests use a few hundred
    seed: int = 0

    def __post_init__(self):
        """Refuse a recipe that would fail (or train nonsense) only minutes in, deep inside transformers."""
        for name in ("vocab_size", "n_layer", "n_embd", "n_head", "n_positions", "steps", "batch_size",
                     "tinytales_stories"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"PretrainConfig({name}={value!r}) must be a positive int.")
        for name in ("warmup_steps", "max_documents", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"PretrainConfig({name}={value!r}) must be an int >= 0.")
        if self.vocab_size < 257:
            raise ValueError(f"PretrainConfig(vocab_size={self.vocab_size}) must be at least 257: byte-level BPE starts "
                             f"from the 256 bytes, plus the end-of-text token.")
        if self.n_embd % self.n_head:
            raise ValueError(f"PretrainConfig(n_embd={self.n_embd}) must be divisible by n_head={self.n_head}: "
                             f"each attention head gets n_embd / n_head dimensions.")
        for name, low in (("lr", 0.0), ("weight_decay", None), ("tinytales_zipf_exponent", None)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                    or (value <= 0 if low is not None else value < 0):
                raise ValueError(f"PretrainConfig({name}={value!r}) must be a finite number "
                                 f"{'> 0 (positive)' if low is not None else '>= 0'}.")
        if not 0 < self.valid_fraction < 1:
            raise ValueError(f"PretrainConfig(valid_fraction={self.valid_fraction!r}) must be between 0 and 1, "
                             f"such as 0.02.")


def build_documents(config: PretrainConfig) -> list[str]:
    """The pretraining documents, in a seeded random order."""
    from dftlab.tinytales import pretraining_text

    documents = kjv_passages() + load_corpus("devils_dictionary")
    documents += pretraining_text(config.tinytales_stories, seed=config.seed,
                                  zipf_exponent=config.tinytales_zipf_exponent)
    random.Random(config.seed).shuffle(documents)
    return documents[: config.max_documents] if config.max_documents > 0 else documents


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


def build_model(config: PretrainConfig, vocab_size: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(config.seed)
    gpt2_config = GPT2Config(vocab_size=vocab_size, n_positions=config.n_positions, n_embd=config.n_embd,
                             n_layer=config.n_layer, n_head=config.n_head, bos_token_id=0, eos_token_id=0,
                             pad_token_id=0, tie_word_embeddings=True)
    return GPT2LMHeadModel(gpt2_config)


@torch.no_grad()
def block_loss(model, blocks: torch.Tensor, batch_size: int = 64) -> float:
    """Mean next-token cross-entropy (nats) over all tokens of the blocks."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start:start + batch_size]
        total += model(input_ids=batch, labels=batch).loss.item() * batch.numel()
        count += batch.numel()
    model.train()
    return total / count


def pretrain(config: PretrainConfig, log=print):
    """Run the whole recipe; returns (model, tokenizer, report dict)."""
    torch.manual_seed(config.seed)
    started = time.time()
    documents = build_documents(config)
    tokenizer = train_tokenizer(documents, config.vocab_size)
    blocks = make_blocks(tokenizer, documents, config.n_positions)
    blocks = blocks[torch.randperm(len(blocks), generator=torch.Generator().manual_seed(config.seed))]
    n_valid = max(1, int(len(blocks) * config.valid_fraction))
    valid_blocks, train_blocks = blocks[:n_valid], blocks[n_valid:]
    model = build_model(config, len(tokenizer))
    log(f"corpus: {len(documents)} documents, {blocks.numel():,} tokens; model: {model.num_parameters():,} parameters")

    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.95))
    schedule = lambda step: min(1.0, (step + 1) / config.warmup_steps) * 0.5 * (1 + math.cos(math.pi * step / config.steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    generator = torch.Generator().manual_seed(config.seed)
    model.train()
    for step in range(config.steps):
        batch = train_blocks[torch.randint(len(train_blocks), (config.batch_size,), generator=generator)]
        loss = model(input_ids=batch, labels=batch).loss
        if not torch.isfinite(loss):
            raise RuntimeError(f"pretraining diverged at step {step} (loss {loss.item()}); lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if step % 100 == 0 or step == config.steps - 1:
            log(f"step {step:5d}  loss {loss.item():.3f}  {time.time() - started:.0f}s")
    train_subset = train_blocks[torch.randperm(len(train_blocks), generator=generator)[:n_valid]]
    report = {"parameters": model.num_parameters(), "train_tokens_seen": config.steps * config.batch_size * config.n_positions,
              "corpus_tokens": blocks.numel(), "train_loss": block_loss(model, train_subset),
              "valid_loss": block_loss(model, valid_blocks), "seconds": round(time.time() - started)}
    report["valid_perplexity"] = math.exp(report["valid_loss"])
    report["train_perplexity"] = math.exp(report["train_loss"])
    return model.eval(), tokenizer, report


def write_model_folder(model, tokenizer, config: PretrainConfig, report: dict, target: Path) -> Path:
    """Write every file into a temporary sibling folder, then swap it in: never a half-written model."""
    from dftlab.generate import sample_completions

    target = Path(target)
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    model.save_pretrained(staging)  # config.json and model.safetensors (the tied LM head is stored once)
    tokenizer.save_pretrained(staging)
    samples = sample_completions(model, tokenizer, ["And it came to pass", "Title: The fox and the river.\nStory:"],
                                 temperature=0.8, max_new_tokens=60, seed=config.seed)
    files = sorted(p.name for p in staging.iterdir())
    write_checksums(staging, files)
    (staging / "MODEL_CARD.md").write_text(model_card(config, report, samples, staging))
    (staging / "pretrain_report.json").write_text(json.dumps({"config": asdict(config), "report": report}, indent=1))
    backup = target.with_name(target.name + ".old")
    shutil.rmtree(backup, ignore_errors=True)
    if target.exists():
        target.rename(backup)
    staging.rename(target)
    shutil.rmtree(backup, ignore_errors=True)
    return target


def model_card(config: PretrainConfig, report: dict, samples: list[dict], folder: Path) -> str:
    sums = (folder / "SHA256SUMS").read_text()
    sample_text = "\n\n".join(f"> **{s['prompt']!r}** →{s['completion']}" for s in samples)
    return f"""# tiny-gpt2: the embedded default model of dftlab

A `GPT2LMHeadModel` pretrained from scratch on public-domain English by `python -m dftlab.pretrain`
(seed {config.seed}). It is tiny on purpose: it trains in minutes on 2 CPU cores and fine-tunes in seconds,
so every experiment in the course runs on a laptop. It writes English-like text, not good text.

## Recipe
| setting | value |
|---|---|
| architecture | GPT-2: {config.n_layer} layers, width {config.n_embd}, {config.n_head} heads, context {config.n_positions} tokens, tied embeddings |
| parameters | {report['parameters']:,} |
| tokenizer | byte-level BPE (GPT-2's algorithm) trained with `tokenizers`, {config.vocab_size} tokens, `<|endoftext|>` as EOS and padding |
| corpus | King James Bible (passages of 4 verses), The Devil's Dictionary, and {config.tinytales_stories:,} TinyTales stories drawn with a flat Zipf exponent of {config.tinytales_zipf_exponent} (the fine-tuning set uses 1.1) |
| corpus size | {report['corpus_tokens']:,} tokens, {config.valid_fraction:.0%} of blocks held out for validation |
| training | AdamW (lr {config.lr}, betas 0.9/0.95, weight decay {config.weight_decay}), {config.warmup_steps} warm-up steps then cosine decay, {config.steps} steps of {config.batch_size} x {config.n_positions} tokens ({report['train_tokens_seen']:,} tokens), gradient clipping at 1.0 |
| wall time | {report['seconds']} s on the machine that built it |

## Results
| split | loss (nats/token) | perplexity |
|---|---|---|
| train (a sample of blocks) | {report['train_loss']:.3f} | {report['train_perplexity']:.1f} |
| valid | {report['valid_loss']:.3f} | {report['valid_perplexity']:.1f} |

## Samples (temperature 0.8)
{sample_text}

## Licence and provenance
Weights: MIT, like the code. Training text: public domain (see `dftlab/assets/corpus/PROVENANCE.md`); TinyTales is generated by `dftlab.tinytales`.

## sha256
```
{sums}```
"""


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m dftlab.pretrain", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    defaults = PretrainConfig()
    for field, value in asdict(defaults).items():
        parser.add_argument(f"--{field.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, default=EMBEDDED_MODELS["tiny-gpt2"],
                        help="folder to write the model to (replaced only when complete)")
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    config = PretrainConfig(**args)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the run prints its own progress; transformers' notices are noise here
    hf_logging.disable_progress_bar()
    model, tokenizer, report = pretrain(config)
    print(json.dumps(report, indent=1))
    print("wrote", write_model_folder(model, tokenizer, config, report, out))


if __name__ == "__main__":
    main()
