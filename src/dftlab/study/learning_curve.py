"""SmolLM2's SFT learning curve on TinyTales: the budget the real-model study would need (chapter 8).

The real-model study fine-tunes SmolLM2-135M-Instruct for 64 LoRA steps, and at 64 steps SFT is far from the data
(KL 18.7 nats per story, validity 0), so that study cannot test the claims about a model close to its data. This
module measures one SFT run (nll, seed 0, the study's data and settings) of `CURVE_STEPS` steps at the checkpoints
`CURVE_CHECKPOINTS`: exact KL to the true story distribution, validity and the top opener's share of samples at
T = 1, p(target) at the character-name tokens, and the training loss. `headline_budget` then applies
`BUDGET_RULE` (written before the run; `history.RULE_HISTORY["real-model budget"]`).

One run, so the learning rate follows one schedule: the Trainer's linear decay over all `CURVE_STEPS` steps. A
checkpoint at step 64 of it is therefore not the study's 64-step run (whose learning rate reaches 0 at step 64);
both are shown. Run it: `python -m dftlab.study --learning-curve` (about 45 minutes on one core).
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from dftlab.study.config import ObjectiveSpec, RealModelStudyConfig, real_model_config

CURVE_CHECKPOINTS = (64, 128, 192, 256)
CURVE_STEPS = max(CURVE_CHECKPOINTS)
CURVE_SEED = 0
BUDGET_RULE = ("The real-model study's headline budget is the smallest number of SFT steps at which SFT's validity "
               "(valid stories among samples at T = 1) is at least 0.5, or its KL to the true story distribution has "
               "fallen below a tenth of the base model's.")


def curve_config(quick: bool = False) -> RealModelStudyConfig:
    """The real-model study's settings, for one nll run of `CURVE_STEPS` steps (quick: the quick study's, 2 steps)."""
    base = real_model_config(quick)
    steps = 2 if quick else CURVE_STEPS
    return replace(base, name=f"{base.name}-curve", objectives=(ObjectiveSpec("nll", "nll"),),
                   headline_objectives=("nll",), seeds=(CURVE_SEED,), headline_seeds=(CURVE_SEED,), steps=steps,
                   warmup_steps=min(base.warmup_steps, steps))


def curve_path(out, config: RealModelStudyConfig) -> Path:
    from dftlab.study.cache import study_config_hash, fingerprints

    return Path(out) / f"learning-curve-{config.name}-{study_config_hash(config, fingerprints(config))}.json"


def measure_checkpoint(model, tokenizer, chat_splits: dict, tales, prompts: list[str], reference: list[str],
                       config: RealModelStudyConfig, seed: int) -> dict:
    """The curve's measurements of `model` (a peft model in training is fine: it is put in eval mode meanwhile)."""
    import torch

    from dftlab import metrics
    from dftlab.chat_samples import generate_responses, story_from_response
    from dftlab.study.measurement import text_metrics

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            log_probs = metrics.completion_log_probs(model, tokenizer, chat_splits["test"],
                                                     batch_size=config.batch_size)
            by_role = metrics.target_probabilities_by_role(model, tokenizer, chat_splits["valid"],
                                                           batch_size=config.batch_size)
            responses = generate_responses(model, tokenizer, prompts, config.samples_per_prompt, temperature=1.0,
                                           top_p=1.0, max_new_tokens=config.max_new_tokens, seed=1000 * seed)
    finally:
        model.train(was_training)
    samples = [story_from_response(r["prompt"], r["response"]) for r in responses]
    text_row, _ = text_metrics(samples, reference, tales, config)
    cross_entropy = float(-log_probs.mean())
    return {"kl": cross_entropy - float(tales.entropy()),
            "kl_standard_error": float(log_probs.std(ddof=1) / math.sqrt(len(log_probs))),
            "validity": text_row["validity"], "samples": len(samples),
            "top_opener_share": text_row["top_opener_share"],
            "prob_character": float(by_role.loc[by_role["role"] == "character", "target_prob"].mean()),
            "preview": samples[0]["completion"]}


def run_learning_curve(out=None, quick: bool = False, log=print) -> Path:
    """Train the curve's one SFT run, measure it at each checkpoint, and write its JSON (whole, at the end)."""
    import tempfile

    import torch
    from transformers import TrainerCallback

    from dftlab.study import scale
    from dftlab.chat_samples import chat_examples
    from dftlab.storage import results_dir, write_json_with_hash
    from dftlab.study.cache import study_config_hash, fingerprints
    from dftlab.study.config import RunSpec
    from dftlab.models import load_model
    from dftlab.runtime import torch_global_seed, torch_threads
    from dftlab.study.measurement import run_inputs

    config = curve_config(quick)
    checkpoints = (1, 2) if quick else CURVE_CHECKPOINTS
    out = results_dir() if out is None else Path(out)
    run = RunSpec("finetuned", CURVE_SEED, config.model, config.steps, config.objectives[0])
    started, rows = time.time(), []
    with torch_threads(1):  # as the study: one thread
        tales, splits, prompts, reference = run_inputs(config, run)
        model, tokenizer = load_model(config.model)
        chat_splits = {name: chat_examples(tokenizer, stories) for name, stories in splits.items() if stories}

        class Checkpoints(TrainerCallback):
            def on_step_end(self, args, state, control, model=None, **kwargs):
                if state.global_step in checkpoints:
                    clock = time.time()
                    row = measure_checkpoint(model, tokenizer, chat_splits, tales, prompts, reference, config,
                                             CURVE_SEED)
                    rows.append({"step": state.global_step,
                                 "elapsed_seconds": round(time.time() - started, 1),
                                 "measure_seconds": round(time.time() - clock, 1), **row})
                    log(f"step {state.global_step}: KL {row['kl']:.2f}, validity {row['validity']:.3f}, "
                        f"p(character) {row['prob_character']:.3f} ({time.time() - started:.0f} s)")

        dataset = scale.examples_dataset(splits["train"][:config.steps * config.batch_size], chat_tokenizer=tokenizer)
        with torch_global_seed(CURVE_SEED), tempfile.TemporaryDirectory() as output_dir:  # LoRA init, data order
            trainer = scale.build_trainer(model, tokenizer, dataset, "nll", steps=config.steps,
                                          batch_size=config.batch_size, lr=config.lr, output_dir=output_dir,
                                          seed=CURVE_SEED, max_length=config.max_length, lora_rank=config.lora_rank,
                                          lora_alpha=config.lora_alpha, warmup_steps=config.warmup_steps,
                                          use_cpu=not torch.cuda.is_available())
            trainer.add_callback(Checkpoints())
            losses = scale.run_trainer(trainer)
    for row in rows:  # the Trainer logs a step's loss after its step-end callbacks: read them once training is over
        window = losses[(losses["step"] > row["step"] - 16) & (losses["step"] <= row["step"])]["loss"]
        row["train_loss"] = float(window.mean())
    payload = {"config": config.to_dict(), "config_hash": study_config_hash(config, fingerprints(config)),
               "checkpoints": list(checkpoints), "rows": rows, "losses": losses.to_dict("records"),
               "threads": 1, "wall_seconds": round(time.time() - started, 1), "budget_rule": BUDGET_RULE}
    path = curve_path(out, config)
    write_json_with_hash(path, payload)
    return path


def load_learning_curve(out=None, quick: bool = False) -> dict:
    """The cached curve: {"rows": DataFrame (one row per checkpoint), "losses": DataFrame, "wall_seconds", ...}."""
    from dftlab.storage import CorruptFileError, read_json_with_hash, reading_results_dir

    config = curve_config(quick)
    if out is None:
        out = reading_results_dir(curve_path(".", config).name)
    path = curve_path(out, config)
    if not path.exists():
        raise FileNotFoundError(f"No learning curve at {path}: run `python -m dftlab.study --learning-curve"
                                f"{' --quick' if quick else ''}` (about 45 minutes on one core; seconds with --quick).")
    payload = read_json_with_hash(path)
    if payload.get("config") != config.to_dict():
        raise CorruptFileError(f"{path} was computed with other settings; recompute it with `python -m dftlab.study "
                               f"--learning-curve{' --quick' if quick else ''}`.")
    return {**payload, "rows": pd.DataFrame(payload["rows"]), "losses": pd.DataFrame(payload["losses"])}


def headline_budget(rows: pd.DataFrame, base_kl: float) -> int | None:
    """BUDGET_RULE on the curve's rows: the first checkpoint with validity >= 0.5 or KL < base_kl / 10 (None: none)."""
    passing = rows[(rows["validity"] >= 0.5) | (rows["kl"] < base_kl / 10)]
    return None if passing.empty else int(passing["step"].min())
