"""The training loop (chapter 3): fine-tune a causal LM on prompt/completion pairs with any objective.

One loop serves every objective of `dftlab.objectives`; only the loss line changes between SFT
(`objective="nll"`) and Dynamic Fine-Tuning (`objective="dft"`). One update is `train_step`, about fifteen lines
that chapter 3 prints whole:

    learning rate -> loss -> backward -> clip -> AdamW step

and `train` keeps everything around it: the checks, the data, resuming, the schedule, an evaluation and a checkpoint
every `eval_every` steps, and the progress bar.

and every evaluation appends a row to `TrainResult.history`: the training loss (whatever the objective
is), and on the validation set the token-mean NLL, the mean predictive entropy, the token accuracy and
quantiles of the probability the model gives each target token. The NLL is measured the same way for
every objective so that runs can be compared; DFT's own loss value is 10-20x smaller than NLL and not
comparable.

Progress bar: on by default in a notebook (a Jupyter kernel) and in an interactive terminal; off when
stdout is a file or a pipe. `progress=True` or `DFTLAB_PROGRESS=1` force it on,
`progress=False` or `DFTLAB_PROGRESS=0` force it off. Everything that executes notebooks to store or compare
their outputs sets `DFTLAB_PROGRESS=0` (tests/conftest.py for the tests and nbval, tools/execute_notebooks.py,
the book build in tools/site.py), since a bar's text changes from run to run.
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from dftlab.data import (check_token_ids, device_of, encode_examples, iterate_batches, make_batches, pack, pad_id_of,
                         vocab_size_of)
from dftlab.objectives import (causal_lm_loss, check_objective_kwargs, get_objective, needs_base_logits,
                               supervised_log_probs)
from dftlab.runtime import torch_global_seed
from dftlab.storage import atomic_save_safetensors, atomic_write, atomic_write_text
from dftlab.validation import check_int, check_number

QUANTILES = (10, 25, 50, 75, 90)
CHECKPOINT_FILE = "checkpoint.json"
ANCHOR_FILE = "anchor.safetensors"
# A resumed run must train the same way as the run it continues; `steps` may change (train for longer).
RESUME_MUST_MATCH = ("objective", "lr", "batch_size", "warmup_steps", "weight_decay", "grad_clip",
                     "max_length", "seed", "packing", "objective_kwargs")


class TrainingDivergedError(RuntimeError):
    """The loss (or its gradient) stopped being finite. The model keeps its last finite weights."""

    def __init__(self, message: str, step: int, history: pd.DataFrame):
        super().__init__(message)
        self.step = step
        self.history = history


@dataclass
class TrainResult:
    """What `train` returns: the trained `model` (in eval mode) and what was measured along the way."""
    model: torch.nn.Module
    history: pd.DataFrame
    final_metrics: dict = field(default_factory=dict)
    target_probs: np.ndarray | None = None  # p(target) at every validation position, last evaluation


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def evaluate(model, batches) -> dict:
    """Measure `model` on `batches` at the supervised (label != -100) positions (chapter 3).

    Returns `nll` (token mean, nats), `entropy` (mean entropy of the predictive distribution, nats),
    `accuracy` (argmax == target), `prob_mean` and `prob_p10` ... `prob_p90` (quantiles of p(target)),
    `tokens` (how many positions), and `target_probs`, the numpy array of every p(target).
    """
    batches = list(batches)
    for batch in batches:
        check_token_ids(batch["input_ids"], vocab_size_of(model))
    was_training = model.training
    model.eval()
    device = device_of(model)
    nll_sum = entropy_sum = correct = 0.0
    target_probs = []
    for batch in batches:
        logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
        log_probs, targets, _ = supervised_log_probs(logits, batch["labels"])  # [N, V], float64
        target_log_probs = log_probs.gather(-1, targets[:, None]).squeeze(-1)
        nll_sum += -target_log_probs.sum().item()
        entropy_sum += -(log_probs.exp() * log_probs).sum().item()
        correct += (log_probs.argmax(-1) == targets).sum().item()
        target_probs.append(target_log_probs.exp().cpu())
    model.train(was_training)
    probs = torch.cat(target_probs).numpy() if target_probs else np.zeros(0)
    if probs.size == 0:
        raise ValueError("evaluate found no supervised token in `batches` (every label is -100). "
                         "Pass examples with non-empty completions.")
    metrics = {"nll": nll_sum / probs.size, "entropy": entropy_sum / probs.size, "accuracy": correct / probs.size,
               "prob_mean": float(probs.mean()), "tokens": int(probs.size)}
    for q, value in zip(QUANTILES, np.percentile(probs, QUANTILES)):
        metrics[f"prob_p{q}"] = float(value)
    metrics["target_probs"] = probs
    return metrics


# ---------------------------------------------------------------------------------------------
# The pieces of the loop: optimiser, schedule, progress bar, checkpoints
# ---------------------------------------------------------------------------------------------

def learning_rate_at(step: int, *, lr: float, warmup_steps: int, steps: int, min_lr_ratio: float = 0.1) -> float:
    """Linear warm-up from 0 to `lr`, then cosine decay to `min_lr_ratio * lr` at the last step."""
    if step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, steps - warmup_steps))
    min_lr = min_lr_ratio * lr
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW that decays matrices only: biases and LayerNorm gains are not pulled towards 0."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.95))


def progress_enabled(progress: bool | None) -> bool:
    """Resolve `progress=None` (auto): see the module docstring."""
    if progress is not None:
        return bool(progress)
    setting = os.environ.get("DFTLAB_PROGRESS")
    if setting is not None:
        return setting.strip().lower() not in ("0", "", "false", "no", "off")
    return "ipykernel" in sys.modules or sys.stdout.isatty()


def _state_dict(model) -> dict:
    # clone: GPT-2 ties its input and output embeddings, and safetensors refuses tensors that share memory.
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def save_checkpoint(checkpoint_dir, model, optimizer, step: int, config: dict, history: list[dict]) -> Path:
    """Write the weights, the optimiser and RNG state, then `checkpoint.json` pointing at them.

    Every file is written to a temporary name and renamed, and the JSON goes last: an interrupted save
    leaves the previous checkpoint complete and `checkpoint.json` still pointing at it.
    """
    folder = Path(checkpoint_dir)
    model_file, state_file = f"model-step{step:06d}.safetensors", f"state-step{step:06d}.pt"
    atomic_save_safetensors(_state_dict(model), folder / model_file, metadata={"step": str(step)})
    state = {"optimizer": optimizer.state_dict(), "torch_rng": torch.get_rng_state(), "step": step}
    atomic_write(folder / state_file, lambda tmp: torch.save(state, tmp))
    record = {"step": step, "model_file": model_file, "state_file": state_file, "config": config, "history": history}
    atomic_write_text(folder / CHECKPOINT_FILE, json.dumps(record, indent=1))
    for old in [*folder.glob("model-step*.safetensors"), *folder.glob("state-step*.pt")]:
        if old.name not in (model_file, state_file):
            old.unlink()
    return folder / CHECKPOINT_FILE


def load_checkpoint(checkpoint_dir, model, optimizer=None) -> dict:
    """Load the last checkpoint's weights into `model` (and state into `optimizer`); return its record.

    The record holds `step`, `config` and `history` (a list of dicts). The optimiser state is read
    with `torch.load(weights_only=True)`, which cannot run code hidden in the file.
    """
    from safetensors.torch import load_file

    folder = Path(checkpoint_dir)
    if not (folder / CHECKPOINT_FILE).exists():
        raise FileNotFoundError(f"No {CHECKPOINT_FILE} in {folder}: nothing to resume. "
                                f"Train with checkpoint_dir={str(folder)!r} first, or pass resume=False.")
    record = json.loads((folder / CHECKPOINT_FILE).read_text())
    model.load_state_dict(load_file(folder / record["model_file"]))
    if optimizer is not None:
        state = torch.load(folder / record["state_file"], weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
    return record


def _frozen_copy(model):
    return copy.deepcopy(model).eval().requires_grad_(False)


def _anchor_model(model, checkpoint_dir, resumed: bool):
    """ASFT's frozen base model: a copy of the model as it was before step 1 (saved, so a resume finds it)."""
    from safetensors.torch import load_file

    anchor = _frozen_copy(model)
    path = Path(checkpoint_dir) / ANCHOR_FILE if checkpoint_dir is not None else None
    if resumed:
        anchor.load_state_dict(load_file(path))
    elif path is not None:
        atomic_save_safetensors(_state_dict(anchor), path)
    return anchor


# ---------------------------------------------------------------------------------------------
# Checking the arguments
# ---------------------------------------------------------------------------------------------

def _check_arguments(model, objective, steps, batch_size, lr, warmup_steps, weight_decay, grad_clip, eval_every,
                     objective_kwargs, base_model) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (e.g. from dftlab.load_model()), got {type(model).__name__}.")
    get_objective(objective)  # raises ValueError naming the valid objectives
    for name, value in (("steps", steps), ("batch_size", batch_size), ("eval_every", eval_every)):
        check_int(value, name)
    check_int(warmup_steps, "warmup_steps", 0)
    check_number(lr, "lr", 0.0, low_open=True, hint="Such as 3e-4.")
    check_number(weight_decay, "weight_decay", 0.0)
    if grad_clip is not None:
        check_number(grad_clip, "grad_clip", 0.0, low_open=True, hint="Or None for no clipping.")
    if objective_kwargs is not None and not isinstance(objective_kwargs, dict):
        raise ValueError(f"objective_kwargs must be a dict such as {{'floor': 0.1}}, got {type(objective_kwargs).__name__}.")
    check_objective_kwargs(objective, objective_kwargs or {})
    if base_model is not None and not needs_base_logits(objective):
        raise ValueError(f"base_model= is only used by an objective that takes base_logits (asft), not by "
                         f"{objective!r}. Leave base_model=None.")


def _check_features(features: list[dict], model) -> None:
    """Every token id inside the model's vocabulary and every sequence inside its context: checked once, before
    the first step, rather than on every batch."""
    check_token_ids(torch.tensor([i for feature in features for i in feature["input_ids"]], dtype=torch.long),
                    vocab_size_of(model), "the tokenized train_examples")
    context = getattr(getattr(model, "config", None), "n_positions", None)
    longest = max(len(feature["input_ids"]) for feature in features)
    if isinstance(context, int) and longest > context:
        raise ValueError(f"max_length allows sequences of {longest} tokens, more than the model's context of "
                         f"{context}. Pass max_length={context} or less.")


# ---------------------------------------------------------------------------------------------
# One step, and the loop around it
# ---------------------------------------------------------------------------------------------

def train_step(model, optimizer, batch, objective="nll", *, lr: float, grad_clip: float | None = 1.0,
               base_model=None, objective_kwargs: dict | None = None) -> float:
    """One update of the weights on one batch; returns the batch's loss as a number (chapter 3 reads it line by line).

    Raises FloatingPointError, before the weights change, when the loss or the gradient is not finite."""
    for group in optimizer.param_groups:  # the schedule sets the rate of every step by hand
        group["lr"] = lr
    loss = causal_lm_loss(model, batch, objective, base_model=base_model, check=False, **(objective_kwargs or {}))
    loss_value = loss.item()  # a plain number for the history; `loss` keeps its graph for backward()
    if not math.isfinite(loss_value):
        raise FloatingPointError(f"loss was {loss_value}")
    loss.backward()  # the gradient of the loss, into each weight's .grad
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)
    if not torch.isfinite(grad_norm):  # checked before optimizer.step(), so the weights stay finite
        raise FloatingPointError(f"gradient norm was {grad_norm.item()}")
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)  # the next backward() must not add to this step's gradient
    return loss_value


def train(model, tokenizer, train_examples, valid_examples=None, objective="nll", *, steps: int = 200,
          batch_size: int = 16, lr: float = 3e-4, warmup_steps: int = 20, weight_decay: float = 0.0,
          grad_clip: float | None = 1.0, eval_every: int = 50, max_length: int = 256, seed: int = 0,
          objective_kwargs: dict | None = None, base_model=None, checkpoint_dir=None, resume: bool = False,
          progress: bool | None = None, packing: bool = False) -> TrainResult:
    """Fine-tune `model` in place on prompt/completion `train_examples` with `objective` (chapter 3).

    `objective` is a name in `dftlab.objectives.OBJECTIVES` or a function `(logits, labels) -> loss`;
    `objective_kwargs` go to it (e.g. `{"floor": 0.1}` for "dft_floored"). For "asft" without a
    `base_model`, a frozen copy of the starting model is the anchor. The run is reproducible: the same
    seed gives the same history on CPU. With `checkpoint_dir`, each evaluation also saves a checkpoint,
    and `resume=True` continues from the last one (or starts afresh if there is none).
    A non-finite loss or gradient raises `TrainingDivergedError`; the model keeps its last finite weights.
    The data are checked once, before the first step; batches go to the model's device (`load_model(device=...)`).

    `history` has one row per evaluation (step 0, every `eval_every` steps, the last step): `step`,
    `lr` (of the latest update), `train_loss` (the objective, averaged since the previous row) and,
    with `valid_examples`, `valid_nll`, `valid_entropy`, `valid_accuracy`, `valid_prob_mean`,
    `valid_prob_p10` ... `valid_prob_p90` and `valid_tokens` (see `evaluate`).
    """
    _check_arguments(model, objective, steps, batch_size, lr, warmup_steps, weight_decay, grad_clip, eval_every,
                     objective_kwargs, base_model)
    objective_kwargs = dict(objective_kwargs or {})
    objective_name = objective if isinstance(objective, str) else getattr(objective, "__name__", "custom")
    config = {"objective": objective_name, "lr": lr, "batch_size": batch_size, "warmup_steps": warmup_steps,
              "weight_decay": weight_decay, "grad_clip": grad_clip, "max_length": max_length, "seed": seed,
              "packing": packing, "objective_kwargs": objective_kwargs, "steps": steps}
    with torch_global_seed(seed):  # dropout draws from the global generator; the data order has its own
        return _train_loop(model, tokenizer, train_examples, valid_examples, objective, objective_name, config,
                           eval_every=eval_every, base_model=base_model, checkpoint_dir=checkpoint_dir, resume=resume,
                           progress=progress)


def _train_loop(model, tokenizer, train_examples, valid_examples, objective, objective_name: str, config: dict, *,
                eval_every: int, base_model, checkpoint_dir, resume: bool, progress: bool | None) -> TrainResult:
    """`train` after its checks: the data, the optimizer, resuming, then `train_step` with evaluations and checkpoints."""
    steps, batch_size, max_length, seed = config["steps"], config["batch_size"], config["max_length"], config["seed"]
    lr, warmup_steps, grad_clip = config["lr"], config["warmup_steps"], config["grad_clip"]
    features = encode_examples(tokenizer, train_examples, max_length)
    if config["packing"]:
        features = pack(features, max_length)
    _check_features(features, model)  # once, here: the steps below do not check their batches again
    valid_batches = (make_batches(tokenizer, valid_examples, batch_size, max_length, shuffle=False)
                     if valid_examples is not None else None)
    model.train()
    model.zero_grad(set_to_none=True)  # gradients left over from earlier code would leak into step 1
    optimizer = make_optimizer(model, lr, config["weight_decay"])
    resumed = resume and checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_FILE).exists()
    start_step, history = _resume(checkpoint_dir, model, optimizer, config) if resumed else (0, [])
    if needs_base_logits(objective) and base_model is None:
        base_model = _anchor_model(model, checkpoint_dir, resumed)
    result = TrainResult(model=model, history=pd.DataFrame())
    if start_step == 0 and valid_batches is not None:  # the starting point, before any update
        row, result.target_probs = _history_row(0, learning_rate_at(0, lr=lr, warmup_steps=warmup_steps, steps=steps),
                                                [], model, valid_batches)
        history.append(row)

    batches = iterate_batches(features, batch_size, pad_id_of(tokenizer), seed=seed, start=start_step)
    bar = _progress_bar(progress_enabled(progress), steps, start_step, objective_name)
    train_losses = []  # the objective's values since the last history row
    try:
        for step in range(start_step, steps):
            step_lr = learning_rate_at(step, lr=lr, warmup_steps=warmup_steps, steps=steps)
            try:
                train_losses.append(train_step(model, optimizer, next(batches), objective, lr=step_lr,
                                               grad_clip=grad_clip, base_model=base_model,
                                               objective_kwargs=config["objective_kwargs"]))
            except FloatingPointError as not_finite:
                _diverged(step, objective_name, str(not_finite), lr, history)
            bar.update(1)

            if (step + 1) % eval_every == 0 or step + 1 == steps:
                row, result.target_probs = _history_row(step + 1, step_lr, train_losses, model, valid_batches)
                history.append(row)
                train_losses = []
                bar.set_postfix(train_loss=f"{row['train_loss']:.3f}")
                if checkpoint_dir is not None:
                    save_checkpoint(checkpoint_dir, model, optimizer, step + 1, config, history)
    except KeyboardInterrupt as interrupt:
        if checkpoint_dir is not None and (Path(checkpoint_dir) / CHECKPOINT_FILE).exists():
            interrupt.add_note(f"dftlab.train: the last complete checkpoint is in {checkpoint_dir}; call "
                               f"train(..., checkpoint_dir={str(checkpoint_dir)!r}, resume=True) to continue.")
        raise
    finally:
        bar.close()

    model.eval()
    result.history = pd.DataFrame(history)
    result.final_metrics = {k: v for k, v in history[-1].items() if k not in ("step", "lr")} if history else {}
    return result


def _history_row(step: int, lr: float, train_losses: list[float], model, valid_batches) -> tuple[dict, np.ndarray | None]:
    """One row of the history, and the validation target probabilities (None without validation data)."""
    row = {"step": step, "lr": lr, "train_loss": float(np.mean(train_losses)) if train_losses else math.nan}
    if valid_batches is None:
        return row, None
    metrics = evaluate(model, valid_batches)
    row.update({f"valid_{name}": value for name, value in metrics.items() if name != "target_probs"})
    return row, metrics["target_probs"]


def _resume(checkpoint_dir, model, optimizer, config: dict) -> tuple[int, list[dict]]:
    """Load the last checkpoint; return its step and history. Refuse if it was trained differently."""
    record = load_checkpoint(checkpoint_dir, model, optimizer)
    changed = {key: (record["config"].get(key), config[key]) for key in RESUME_MUST_MATCH
               if record["config"].get(key) != config[key]}
    if changed:
        raise ValueError(f"The checkpoint in {checkpoint_dir} was trained with different settings "
                         f"(saved, now): {changed}. Pass the saved settings, or use a new checkpoint_dir.")
    return record["step"], record["history"]


def _diverged(step: int, objective: str, what: str, lr: float, history: list[dict]):
    raise TrainingDivergedError(
        f"Training diverged at step {step + 1} with objective {objective!r}: the {what}. The model keeps the "
        f"weights it had after step {step}, the last finite one. Try a lower learning rate (lr={lr:g} now; "
        f"e.g. lr={lr / 3:.2g}) or a smaller grad_clip.", step=step + 1, history=pd.DataFrame(history))


def _progress_bar(enabled: bool, steps: int, start_step: int, objective: str):
    from tqdm.auto import tqdm

    return tqdm(total=steps, initial=start_step, desc=f"train ({objective})", disable=not enabled, leave=False)
