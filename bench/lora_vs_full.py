"""LoRA against full fine-tuning of SmolLM2-135M-Instruct on a CPU: seconds per optimiser step, one run.

    python bench/lora_vs_full.py [--threads 1] [--repeats 3] [--batch-size 8]

The real-model study (`python -m dftlab.study --real-model`) has to pick one. This times a training step (forward,
backward, AdamW) on the same chat-formatted TinyTales batch for: every weight trained; LoRA rank 16 on the
attention's q and v projections (`dftlab.study.scale.DEFAULT_LORA_TARGETS`); LoRA rank 16 on every linear layer. Each
setting gets one warm-up step, then `--repeats` rounds run interleaved (setting A, B, C, A, B, C, ...) so that a
change in machine load hits all of them alike; it prints the median seconds per step, tokens/s, trainable
parameters, and each setting's speed as a ratio to full fine-tuning measured in the same run.
"""
from __future__ import annotations

import argparse
import copy
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the study uses 1)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch
    from peft import get_peft_model

    import dftlab
    from dftlab.study import scale
    from dftlab.chat_samples import chat_examples
    from dftlab.data import collate, encode_examples, pad_id_of
    from dftlab.tinytales import TinyTales

    torch.set_num_threads(args.threads)
    base, tokenizer = dftlab.load_model("smollm2-135m-instruct")
    stories = TinyTales(seed=0, zipf_exponent=1.1).splits(train=args.batch_size, valid=0, test=0)["train"]
    batch = collate(encode_examples(tokenizer, chat_examples(tokenizer, stories), max_length=192), pad_id_of(tokenizer))
    tokens = int(batch["attention_mask"].sum())

    settings = {"full fine-tuning": None,
                "LoRA r=16, q and v": scale.lora_config(16, targets=scale.DEFAULT_LORA_TARGETS),
                "LoRA r=16, every linear layer": scale.lora_config(16, targets=(
                    "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"))}
    runs = {}
    for name, lora in settings.items():
        model = copy.deepcopy(base)
        model = model if lora is None else get_peft_model(model, lora)
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        runs[name] = (model, torch.optim.AdamW(params, lr=1e-4), sum(p.numel() for p in params), [])

    def step(model, optimizer) -> float:
        started = time.perf_counter()
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return time.perf_counter() - started

    for model, optimizer, _, _ in runs.values():  # warm-up
        step(model, optimizer)
    for _ in range(args.repeats):
        for model, optimizer, _, times in runs.values():
            times.append(step(model, optimizer))

    full = statistics.median(runs["full fine-tuning"][3])
    print(f"SmolLM2-135M-Instruct, batch {args.batch_size} chat-formatted TinyTales stories ({tokens} tokens), "
          f"{args.threads} thread(s), median of {args.repeats} interleaved steps")
    print(f"{'setting':32s} {'s/step':>7s} {'tokens/s':>9s} {'trainable':>12s} {'speed vs full':>14s}")
    for name, (_, _, trainable, times) in runs.items():
        median = statistics.median(times)
        print(f"{name:32s} {median:7.2f} {tokens / median:9.0f} {trainable:12,d} {full / median:13.2f}x")


if __name__ == "__main__":
    main()
