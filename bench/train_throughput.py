"""Training throughput: dftlab.train against a bare PyTorch loop and TRL's SFTTrainer, with nll and dft.

    python bench/train_throughput.py            # a few minutes
    python bench/train_throughput.py --quick    # under a minute: checks that everything runs
    python bench/train_throughput.py --threads 1 --clock cpu   # steadier numbers on a shared machine

All runs happen in this one process, on the same model, data and batch size. Each timed run starts
from the same initial weights and makes `steps` optimiser updates over `steps * batch_size` examples,
that is one epoch, so every method processes the same tokens. Runs are interleaved (repeat 1 of every
method, then repeat 2, ...) so that a slow spell of a shared CPU hits them all, each round starting one
method later than the one before (no method always runs first), after an untimed one-step warm-up run of
each; we report the median.

What each timing includes: the whole `dftlab.train(...)` call (it tokenizes the examples itself);
`trainer.train()` for TRL (its constructor, which tokenizes, is not timed); for the bare loop, only the
loop over pre-collated batches. All three use AdamW and clip the gradient norm at 1.0. The tokenization
inside each dftlab.train call is timed on its own (a timer around `dftlab.train.encode_examples`), so the
loop can be compared with the bare loop like for like: "dftlab loop" = the whole call minus its tokenization.

tokens/s counts real (non-padding) input tokens. MFU = achieved FLOP/s / peak FLOP/s, where achieved
is estimated as 6 * N * tokens/s (N = all parameters, the tied embedding counted once; attention's own
FLOPs are ignored) and the peak is measured here: the median speed of a float32 1024x1024 matmul.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import os
import random
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DFTLAB_PROGRESS", "0")

import torch
import torch.nn.functional as F

import dftlab.train as dftlab_train_module
from dftlab.data import make_batches
from dftlab.train import train as dftlab_train

OBJECTIVES = ("nll", "dft")
clock = time.perf_counter  # --clock cpu switches to this process's CPU time (steadier on a busy machine)
METHODS = ("dftlab", "bare", "trl")


def load_model_and_data(n_examples: int, max_length: int):
    """The embedded model if it is there, else a random GPT-2; TinyTales stories if available, else synthetic."""
    try:
        from dftlab.tinytales import TinyTales
        examples = TinyTales().sample(n_examples, seed=0)
        data_note = "TinyTales stories"
    except ImportError:
        examples = synthetic_examples(n_examples)
        data_note = "synthetic sentences (dftlab.tinytales is missing)"
    try:
        from dftlab import load_model
        model, tokenizer = load_model()
        model_note = f"the embedded model ({model.config.name_or_path or 'tiny-gpt2'})"
    except Exception as error:  # the embedded model may not be committed yet
        from transformers import GPT2Config, GPT2LMHeadModel
        tokenizer = train_tokenizer([e["prompt"] + e["completion"] for e in examples], vocab_size=4096)
        torch.manual_seed(0)
        model = GPT2LMHeadModel(GPT2Config(vocab_size=4096, n_layer=4, n_embd=256, n_head=4, n_positions=256,
                                           eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
        model_note = (f"a RANDOMLY INITIALISED GPT-2 (4096 vocab, 4 layers, 256 wide), because "
                      f"dftlab.load_model() failed: {type(error).__name__}: {str(error)[:120]}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    max_length = min(max_length, model.config.n_positions)
    return model, tokenizer, examples, max_length, model_note, data_note


def synthetic_examples(n: int) -> list[dict]:
    rng = random.Random(0)
    words = ("the a small old fox bear owl river hill village ran sat found lost saw quietly "
             "happily near under over and then later morning night bright dark").split()
    return [{"prompt": f"Title: {rng.choice(words)} and {rng.choice(words)}.\nStory:",
             "completion": " " + " ".join(rng.choice(words) for _ in range(rng.randint(30, 60))) + "."}
            for _ in range(n)]


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")


# ---------------------------------------------------------------------------------------------
# The three ways to train. Each makes `steps` updates and returns the seconds it took.
# ---------------------------------------------------------------------------------------------

TOKENIZE_SECONDS = []  # the time each dftlab.train call spent in encode_examples


def _timed_encode_examples(*args, **kwargs):
    start = clock()
    try:
        return _encode_examples(*args, **kwargs)
    finally:
        TOKENIZE_SECONDS.append(clock() - start)


_encode_examples = dftlab_train_module.encode_examples
dftlab_train_module.encode_examples = _timed_encode_examples


def run_dftlab(model, tokenizer, examples, objective, steps, batch_size, max_length, lr):
    start = clock()
    dftlab_train(model, tokenizer, examples, None, objective, steps=steps, batch_size=batch_size, lr=lr,
                 warmup_steps=min(2, steps - 1), eval_every=steps, max_length=max_length, progress=False)
    return clock() - start


def run_bare(model, tokenizer, examples, objective, steps, batch_size, max_length, lr):
    batches = make_batches(tokenizer, examples, batch_size, max_length)[:steps]
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    start = clock()
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
        labels = batch["labels"][:, 1:].reshape(-1)
        log_p = -F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels, ignore_index=-100, reduction="none")
        weight = log_p.exp().detach() if objective == "dft" else 1.0
        loss = -(weight * log_p).sum() / (labels != -100).sum()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return clock() - start


def run_trl(model, tokenizer, examples, objective, steps, batch_size, max_length, lr):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    with tempfile.TemporaryDirectory() as output_dir:
        config = SFTConfig(output_dir=output_dir, loss_type=objective, max_steps=steps,
                           per_device_train_batch_size=batch_size, learning_rate=lr, warmup_steps=min(2, steps - 1),
                           lr_scheduler_type="cosine", max_length=max_length, packing=False, bf16=False, fp16=False,
                           gradient_checkpointing=False, report_to=[], disable_tqdm=True, save_strategy="no",
                           logging_steps=10**6, use_cpu=True, dataloader_num_workers=0, max_grad_norm=1.0, seed=0)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(examples),
                             processing_class=tokenizer)
        start = clock()
        with contextlib.redirect_stdout(io.StringIO()):  # TRL prints a metrics dict at the end
            trainer.train()
        return clock() - start


RUNNERS = {"dftlab": run_dftlab, "bare": run_bare, "trl": run_trl}


def matmul_peak_flops(size: int = 1024, repeats: int = 20) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    times = []
    for _ in range(repeats):
        start = clock()
        a @ b
        times.append(clock() - start)
    return 2 * size**3 / statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (under a minute) to check that it works")
    parser.add_argument("--steps", type=int, help="updates per timed run (default 30, quick 3)")
    parser.add_argument("--repeats", type=int, help="timed rounds after the warm-up round (default 5, quick 1)")
    parser.add_argument("--batch-size", type=int, help="examples per batch (default 16, quick 8)")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="which of dftlab, bare, trl to time (default: all; the dftlab/bare ratios need both)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall time, or this process's CPU time, which other programs on a shared machine "
                             "disturb less (use it with --threads 1: CPU time adds up over threads)")
    args = parser.parse_args(argv)
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
    steps = args.steps or (3 if args.quick else 30)
    repeats = args.repeats or (1 if args.quick else 5)
    batch_size = args.batch_size or (8 if args.quick else 16)

    logging.getLogger("transformers").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with contextlib.suppress(ImportError):
        import datasets
        datasets.disable_progress_bars()
    model, tokenizer, examples, max_length, model_note, data_note = load_model_and_data(steps * batch_size,
                                                                                       args.max_length)
    initial_state = copy.deepcopy(model.state_dict())
    tokens = sum(int(b["attention_mask"].sum()) for b in make_batches(tokenizer, examples, batch_size, max_length))
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {model_note}; {params / 1e6:.2f}M parameters")
    print(f"data: {len(examples)} {data_note}; {tokens} real tokens per run; batch {batch_size}, "
          f"max_length {max_length}, {steps} steps per run, {repeats} timed round(s) after a 1-step warm-up round")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.clock} clock", flush=True)

    def run(method, objective, examples, steps):
        fresh = copy.deepcopy(model)
        fresh.load_state_dict(initial_state)
        return RUNNERS[method](fresh, tokenizer, examples, objective, steps, batch_size, max_length, args.lr)

    methods = [m for m in METHODS if m in args.methods.split(",")]
    for method in methods:  # warm-up: first calls pay for lazy imports and allocator growth
        for objective in OBJECTIVES:
            run(method, objective, examples[:batch_size], 1)
    seconds = {(m, o): [] for m in methods for o in OBJECTIVES}
    tokenize = {o: [] for o in OBJECTIVES}
    order = [(m, o) for m in methods for o in OBJECTIVES]
    for round_index in range(repeats):
        # Each round starts one place further down the list, so no run always goes first or last.
        shift = round_index % len(order)
        for method, objective in order[shift:] + order[:shift]:
            TOKENIZE_SECONDS.clear()
            seconds[method, objective].append(run(method, objective, examples, steps))
            if method == "dftlab":
                tokenize[objective].append(sum(TOKENIZE_SECONDS))
        print(f"round {round_index + 1}/{repeats} done", file=sys.stderr, flush=True)

    peak = matmul_peak_flops()
    throughput = {key: tokens / statistics.median(times) for key, times in seconds.items()}
    print(f"\nmeasured matmul peak: {peak / 1e9:.1f} GFLOP/s (float32 1024x1024, median of 20)")
    print(f"{'method':8} {'objective':9} {'tokens/s':>10} {'MFU':>7}   (achieved FLOP/s = 6 * N * tokens/s)")
    for (method, objective), rate in throughput.items():
        print(f"{method:8} {objective:9} {rate:10.0f} {6 * params * rate / peak:7.1%}")

    def verdict(ok):
        return "ok" if ok else "MISSED"
    print()
    for objective in OBJECTIVES:
        tokenize_median = statistics.median(tokenize[objective])
        loop = [total - tok for total, tok in zip(seconds["dftlab", objective], tokenize[objective])]
        print(f"dftlab.train ({objective}): tokenization {tokenize_median * 1000:.0f} ms of "
              f"{statistics.median(seconds['dftlab', objective]):.2f} s per call (median)")
        if ("trl", objective) in throughput:
            ratio = throughput["dftlab", objective] / throughput["trl", objective]
            print(f"dftlab/TRL  ({objective}): {ratio:.2f}  target >= 1.0   {verdict(ratio >= 1.0)}")
        ratio = throughput["dftlab", objective] / throughput["bare", objective]
        print(f"dftlab/bare ({objective}), whole call with tokenization: {ratio:.3f}")
        ratio = statistics.median(seconds["bare", objective]) / statistics.median(loop)
        print(f"dftlab loop/bare ({objective}), tokenization measured apart: {ratio:.3f}  target >= 0.97   "
              f"{verdict(ratio >= 0.97)}")
        paired = [bare / ours for bare, ours in zip(seconds["bare", objective], loop)]
        print(f"   the same ratio round by round: {' '.join(f'{r:.3f}' for r in paired)}")
    overhead = throughput["dftlab", "nll"] / throughput["dftlab", "dft"] - 1
    print(f"dft/nll overhead (dftlab): {overhead:+.1%}  target <= 5%   {verdict(overhead <= 0.05)}")
    if args.quick:
        print("(--quick: too few steps for trustworthy numbers; run without --quick for the real measurement)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
