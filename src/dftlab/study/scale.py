"""Scaling up: the course's objectives inside TRL's `SFTTrainer`, on a CPU or on many GPUs (chapter 9).

    python -m dftlab.study.scale --objective dft --model gpt2 --steps 200
    accelerate launch -m dftlab.study.scale --objective dft --model gpt2 --steps 200 --bf16
    python -m dftlab.study.scale --objective dft --model smollm2-135m-instruct --chat-template --lora-rank 16 --steps 40

The trainer is TRL's own; the one change is `compute_loss_func`, built from a dftlab objective by
`dftlab.objectives.make_compute_loss_func`. So any objective of the course (nll, dft, dft_floored, power, mix,
distribution_matching) trains a Hub model with the Trainer's batching, mixed precision, gradient accumulation
and multi-GPU support. `--trl-loss` uses TRL's built-in `loss_type` ("nll" or "dft") instead, to compare.

For an instruction-tuned model, `--chat-template` wraps each story's title in the model's chat template as the
user's turn, so the loss (completion only) falls on the assistant's tokens alone; `--lora-rank` trains LoRA
adapters (`peft`) instead of every weight. The real-model study (`dftlab.study.real_model`) trains this way.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

import pandas as pd

from dftlab.objectives import OBJECTIVES, make_compute_loss_func, needs_base_logits
from dftlab.runtime import default_transformers_verbosity_to_error
from dftlab.tinytales import DEFAULT_ZIPF_EXPONENT, TinyTales
from dftlab.validation import check_int

# An objective that needs the base model's logits (asft) cannot run in a Trainer's compute_loss_func.
TRAINER_OBJECTIVES = tuple(name for name in OBJECTIVES if not needs_base_logits(name))
TRL_LOSS_TYPES = ("nll", "dft")
RECORDED = ("loss", "entropy", "mean_token_accuracy")  # what the loss table keeps of each Trainer log
# LoRA on the attention's query and value projections (Hu et al. 2021). On 2 CPU cores a SmolLM2-135M step of
# 8 stories took 4.9 s with these adapters, 6.9 s with adapters on every linear layer and 9.3 s with every
# weight trained (one thread; bench/RESULTS.md).
DEFAULT_LORA_TARGETS = ("q_proj", "v_proj")


def tinytales_dataset(num_examples: int, seed: int = 0, zipf_exponent: float = DEFAULT_ZIPF_EXPONENT,
                      chat_tokenizer=None):
    """The first `num_examples` TinyTales training stories as a `datasets.Dataset` of prompt/completion pairs.

    These are the training stories of chapter 3 and of the study (same seed, same split), in the
    prompt-completion format TRL trains on with the prompt masked out of the loss. With `chat_tokenizer`
    (an instruction-tuned model's tokenizer) each prompt is the chat template around the title, ending with
    the header of the assistant's turn (`dftlab.chat_samples.chat_examples`).
    """
    check_int(num_examples, "tinytales_dataset(num_examples)")
    stories = TinyTales(seed=seed, zipf_exponent=zipf_exponent).splits(train=num_examples, valid=0, test=0)["train"]
    return examples_dataset(stories, chat_tokenizer)


def examples_dataset(examples, chat_tokenizer=None):
    """Prompt/completion examples as the `datasets.Dataset` TRL trains on, chat-formatted with `chat_tokenizer`."""
    import datasets

    if chat_tokenizer is not None:
        from dftlab.chat_samples import chat_examples

        examples = chat_examples(chat_tokenizer, examples)
    return datasets.Dataset.from_dict({"prompt": [e["prompt"] for e in examples],
                                       "completion": [e["completion"] for e in examples]})


def lora_config(rank: int, alpha: float | None = None, targets=DEFAULT_LORA_TARGETS):
    """A `peft.LoraConfig` for a causal LM: rank `rank`, scale alpha / rank (alpha defaults to 2 x rank), no dropout."""
    from peft import LoraConfig

    check_int(rank, "lora rank", hint="Such as 16; 0 means no LoRA (every weight trains).")
    return LoraConfig(r=rank, lora_alpha=2 * rank if alpha is None else alpha, target_modules=list(targets),
                      lora_dropout=0.0, bias="none", task_type="CAUSAL_LM")


def _loss_recorder_class():
    from transformers import TrainerCallback

    class LossRecorder(TrainerCallback):
        """Keeps the loss (and TRL's entropy and token accuracy) of every logged step, instead of printing them."""

        def __init__(self):
            self.rows = []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.rows.append({"step": state.global_step, **{k: logs[k] for k in RECORDED if k in logs}})

    return LossRecorder


def _parse_objective(objective: str, trl_loss: bool) -> None:
    allowed = TRL_LOSS_TYPES if trl_loss else TRAINER_OBJECTIVES
    if objective not in allowed:
        where = "TRL's loss_type" if trl_loss else "a Trainer compute_loss_func"
        raise ValueError(f"objective {objective!r} cannot be used with {where}; choose one of {list(allowed)}."
                         + ("" if trl_loss else " ('asft' needs a custom loop: dftlab.train.train)."))


def build_trainer(model, tokenizer, train_dataset, objective: str = "nll", *, objective_kwargs: dict | None = None,
                  trl_loss: bool = False, steps: int = 10, batch_size: int = 8, lr: float = 5e-5,
                  output_dir: str = "scale-runs", seed: int = 0, max_length: int = 128, bf16: bool = False,
                  gradient_checkpointing: bool = False, gradient_accumulation_steps: int = 1, quiet: bool = True,
                  lora_rank: int = 0, lora_alpha: float | None = None, lora_targets=DEFAULT_LORA_TARGETS,
                  **config_overrides):
    """TRL's `SFTTrainer` training `model` with a dftlab objective (or, with `trl_loss=True`, TRL's own loss_type).

    The defaults suit a CPU: bf16 and gradient checkpointing are off (TRL turns both on by default, which makes a
    CPU run many times slower), nothing is reported or saved, and the per-step losses go to a `LossRecorder`
    callback rather than to the screen; read them with `recorded_losses(trainer)`. `quiet` also removes the
    Trainer's progress bar and printer, and the tokenisation progress bars of `datasets`.
    `config_overrides` go to `SFTConfig` as they are (e.g. `use_cpu=True`, `lr_scheduler_type="constant"`).
    `lora_rank > 0` trains LoRA adapters of that rank on `lora_targets` (TRL wraps the model with `peft`; after
    training, `trainer.model.merge_and_unload()` gives back a plain model with the adapters folded in).
    """
    import datasets
    import torch
    from transformers import PrinterCallback, ProgressCallback
    from trl import SFTConfig, SFTTrainer

    _parse_objective(objective, trl_loss)
    if quiet:
        datasets.disable_progress_bars()
    settings = dict(output_dir=str(output_dir), max_steps=steps, per_device_train_batch_size=batch_size,
                    gradient_accumulation_steps=gradient_accumulation_steps, learning_rate=lr, seed=seed,
                    max_length=max_length, bf16=bf16, gradient_checkpointing=gradient_checkpointing,
                    completion_only_loss=True, loss_type=objective if trl_loss else "nll", report_to="none",
                    disable_tqdm=True, logging_strategy="steps", logging_steps=1, save_strategy="no",
                    dataloader_pin_memory=torch.cuda.is_available())  # pinning only helps a GPU; on a CPU it warns
    settings.update(config_overrides)
    compute_loss_func = None if trl_loss else make_compute_loss_func(objective, **(objective_kwargs or {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notices of TRL's own defaults
        trainer = SFTTrainer(model=model, args=SFTConfig(**settings), train_dataset=train_dataset,
                             processing_class=tokenizer, compute_loss_func=compute_loss_func,
                             peft_config=lora_config(lora_rank, lora_alpha, lora_targets) if lora_rank else None)
    if quiet:
        trainer.remove_callback(PrinterCallback)  # with tqdm off, the Trainer prints every log dict, timings included
        trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_loss_recorder_class()())
    return trainer


def recorded_losses(trainer) -> pd.DataFrame:
    """The per-step table (step, loss, entropy, mean_token_accuracy) that `build_trainer`'s recorder kept."""
    for callback in trainer.callback_handler.callbacks:
        if type(callback).__name__ == "LossRecorder":
            return pd.DataFrame(callback.rows)
    raise ValueError("recorded_losses: this trainer has no LossRecorder; build it with dftlab.study.scale.build_trainer.")


def run_trainer(trainer) -> pd.DataFrame:
    """Run `trainer.train()` quietly and return `recorded_losses(trainer)`."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        trainer.train()
    return recorded_losses(trainer)


def _key_value(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. alpha=0.5), got {text!r}")
    try:
        return key, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the value of {key!r} must be a number, got {value!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dftlab.study.scale",
        description="Fine-tune a causal LM on TinyTales with TRL's SFTTrainer and a dftlab objective. Runs on a CPU "
                    "as it is, and on one or many GPUs under `accelerate launch -m dftlab.study.scale ...`.")
    parser.add_argument("--objective", default="nll",
                        help=f"dftlab objective: {', '.join(TRAINER_OBJECTIVES)} (default: nll)")
    parser.add_argument("--objective-kwarg", type=_key_value, action="append", default=[], metavar="KEY=VALUE",
                        help="a setting of the objective, e.g. alpha=0.5 for power, lam=0.5 for mix (repeatable)")
    parser.add_argument("--trl-loss", action="store_true",
                        help="use TRL's built-in loss_type (nll or dft) instead of dftlab's compute_loss_func")
    parser.add_argument("--model", default=None,
                        help="embedded model or Hugging Face Hub name, e.g. gpt2 (default: $DFTLAB_MODEL, else tiny-gpt2)")
    parser.add_argument("--examples", type=int, default=3000, help="TinyTales training stories (default: 3000)")
    parser.add_argument("--zipf-exponent", type=float, default=DEFAULT_ZIPF_EXPONENT,
                        help=f"TinyTales distribution (default: {DEFAULT_ZIPF_EXPONENT}, the fine-tuning data)")
    parser.add_argument("--steps", type=int, default=100, help="optimiser steps (default: 100)")
    parser.add_argument("--batch-size", type=int, default=8, help="stories per device per micro-batch (default: 8)")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default: 5e-5)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens per example (default: 128)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default=None,
                        help="where the Trainer writes (default: scale-runs/<model>-<objective>)")
    parser.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPUs)")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="trade compute for memory (large models)")
    parser.add_argument("--chat-template", action="store_true",
                        help="put each title in the model's chat template (instruction-tuned models), so the loss "
                             "falls on the assistant's turn only")
    parser.add_argument("--lora-rank", type=int, default=0,
                        help="train LoRA adapters of this rank on the attention's q and v projections (default: 0, "
                             "every weight trains)")
    parser.add_argument("--save", action="store_true", help="save the fine-tuned model and tokenizer to --output-dir")
    return parser


def main(argv=None) -> int:
    default_transformers_verbosity_to_error()
    args = build_parser().parse_args(argv)
    from dftlab.models import ModelNotAvailableError, default_model_name, load_model

    model_name = args.model or default_model_name()
    try:
        _parse_objective(args.objective, args.trl_loss)
        if args.lora_rank < 0:
            raise ValueError(f"--lora-rank must be 0 (no LoRA) or a positive rank such as 16, got {args.lora_rank}.")
        model, tokenizer = load_model(model_name)
        if args.chat_template and getattr(tokenizer, "chat_template", None) is None:
            raise ValueError(f"--chat-template: {model_name!r} has no chat template; use an instruction-tuned model "
                             f"such as 'smollm2-135m-instruct', or drop --chat-template.")
        dataset = tinytales_dataset(args.examples, args.seed, args.zipf_exponent,
                                    chat_tokenizer=tokenizer if args.chat_template else None)
    except (ValueError, ModelNotAvailableError) as error:
        raise SystemExit(f"dftlab.study.scale: {error}") from None
    output_dir = args.output_dir or os.path.join("scale-runs", f"{os.path.basename(model_name)}-{args.objective}")
    trainer = build_trainer(model, tokenizer, dataset, args.objective, objective_kwargs=dict(args.objective_kwarg),
                            trl_loss=args.trl_loss, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                            output_dir=output_dir, seed=args.seed, max_length=args.max_length, bf16=args.bf16,
                            gradient_checkpointing=args.gradient_checkpointing,
                            gradient_accumulation_steps=args.gradient_accumulation_steps, lora_rank=args.lora_rank)
    losses = run_trainer(trainer)
    if args.save:
        trainer.save_model(output_dir)
    if trainer.is_world_process_zero():  # under accelerate launch, one process reports
        source = f"TRL loss_type={args.objective!r}" if args.trl_loss else f"dftlab objective {args.objective!r}"
        print(f"dftlab.study.scale: {model_name}, {source}, {args.steps} steps on {trainer.args.world_size} process(es)")
        print(losses.round(4).to_string(index=False))
        if args.save:
            print(f"saved to {output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
