"""One run of the real-model study: SmolLM2-135M-Instruct, fine-tuned through TRL with LoRA, then measured.

The measurements are those of `dftlab.study.measurement`, made in the chat format the model was trained in:

- exact fit: -log p(completion + end of turn | chat prompt) on true test stories, under SmolLM2's own tokenizer,
  beside the exact entropy H(q), so kl = cross_entropy - true_entropy as in the tiny-model study;
- predictive entropy, validation NLL, accuracy and p(target) (with its character-name split) on chat examples;
- samples for the first test titles at each decoding, drawn with `dftlab.chat_samples.generate_responses`,
  turned back into TinyTales stories (`story_from_response`) and measured by the same `text_metrics`;
- answers to open writing prompts (the opening chapter's), kept in the payload as `open_responses`, so that each
  model's word overuse against English (`dftlab.metrics.formulaic`) can be set beside the base model's.

The exact opener distributions at several temperatures (`opener_probs`, chapter 5's power family) are not
computed here: the study trains no power objective on the real model.
"""
from __future__ import annotations

import math
import time

import numpy as np

from dftlab.study.config import RealModelStudyConfig, RunSpec
from dftlab.study.measurement import (PROBABILITY_QUANTILES, _histogram, _objective_loss_and_nll, json_safe,
                                      load_base_model, rows_with_identity, run_dict, run_inputs, text_metrics)


def finetune_with_trl(model, tokenizer, train_stories: list[dict], config: RealModelStudyConfig, run: RunSpec):
    """Fine-tune `model` on chat-formatted `train_stories` through `dftlab.study.scale` (TRL's SFTTrainer, LoRA);
    returns (the model with its adapters merged in, the per-step loss table)."""
    import tempfile

    import torch

    from dftlab.study import scale

    dataset = scale.examples_dataset(train_stories[:run.steps * config.batch_size], chat_tokenizer=tokenizer)
    torch.manual_seed(run.seed)  # the LoRA initialisation
    with tempfile.TemporaryDirectory() as output_dir:
        trainer = scale.build_trainer(model, tokenizer, dataset, run.objective.objective,
                                      objective_kwargs=dict(run.objective.kwargs), steps=run.steps,
                                      batch_size=config.batch_size, lr=config.lr, output_dir=output_dir,
                                      seed=run.seed, max_length=config.max_length, lora_rank=config.lora_rank,
                                      lora_alpha=config.lora_alpha, warmup_steps=min(config.warmup_steps, run.steps),
                                      use_cpu=not torch.cuda.is_available())
        losses = scale.train(trainer)
    return trainer.model.merge_and_unload().eval(), losses


def chat_model_metrics(model, tokenizer, chat_splits: dict, tales, config: RealModelStudyConfig) -> tuple[dict, np.ndarray]:
    """`measurement.model_metrics` in the chat format: exact KL, predictive entropy, p(target) on chat examples."""
    from dftlab import metrics
    from dftlab.data import make_batches
    from dftlab.train import evaluate

    log_probs = metrics.completion_log_probs(model, tokenizer, chat_splits["test"], batch_size=config.batch_size)
    cross_entropy, true_entropy = float(-log_probs.mean()), float(tales.entropy())
    test_batches = make_batches(tokenizer, chat_splits["test"], config.batch_size, config.max_length, shuffle=False)
    valid = evaluate(model, make_batches(tokenizer, chat_splits["valid"], config.batch_size, config.max_length,
                                         shuffle=False))
    by_role = metrics.target_probabilities_by_role(model, tokenizer, chat_splits["valid"], batch_size=config.batch_size)
    role_means = by_role.groupby("role")["target_prob"].mean()
    row = {"cross_entropy": cross_entropy, "true_entropy": true_entropy, "kl": cross_entropy - true_entropy,
           "kl_standard_error": float(log_probs.std(ddof=1) / math.sqrt(len(log_probs))),
           "predictive_entropy": metrics.predictive_entropy(model, test_batches),
           "valid_nll": valid["nll"], "valid_accuracy": valid["accuracy"],
           "prob_character": float(role_means.get("character", math.nan)),
           "prob_other": float(role_means.get("other", math.nan))}
    row.update({f"prob_p{q}": valid[f"prob_p{q}"] for q in PROBABILITY_QUANTILES})
    return row, valid["target_probs"]


def open_prompt_responses(model, tokenizer, config: RealModelStudyConfig, seed: int) -> dict:
    """{decoding: [{"prompt", "response", "finished"}, ...]}: answers to the first `open_prompts` writing prompts."""
    from dftlab.chat_samples import DECODINGS, REAL_MODEL_DECODING, WRITING_PROMPTS, generate_responses

    settings = DECODINGS[REAL_MODEL_DECODING]
    rows = generate_responses(model, tokenizer, list(WRITING_PROMPTS[:config.open_prompts]),
                              config.open_responses_per_prompt, temperature=settings["temperature"],
                              top_p=settings["top_p"], max_new_tokens=config.open_max_new_tokens, seed=seed)
    return {REAL_MODEL_DECODING: rows}


def compute_real_model_run(config: RealModelStudyConfig, run: RunSpec) -> dict:
    """Train (for a fine-tuning) and measure one run of the real-model study; the payload `run_study` caches.

    One thread, as in the tiny-model study, so the numbers do not depend on the machine's core count.
    """
    import torch

    from dftlab.chat_samples import chat_examples, generate_responses, story_from_response
    from dftlab.data import make_batches
    from dftlab.study.measurement import compute_run

    if run.kind == "truth":  # no model: exactly the tiny-model study's truth rows
        return compute_run(config, run)
    started, threads = time.time(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tales, splits, prompts, reference = run_inputs(config, run)
        model, tokenizer = load_base_model(run.base_model)
        chat_splits = {name: chat_examples(tokenizer, stories) for name, stories in splits.items() if stories}
        model_row, history = {}, []
        if run.kind == "finetuned":
            spec = run.objective
            model, losses = finetune_with_trl(model, tokenizer, splits["train"], config, run)
            history = losses.to_dict("records")
            test_batches = make_batches(tokenizer, chat_splits["test"], config.batch_size, config.max_length,
                                        shuffle=False)
            loss, loss_nll = _objective_loss_and_nll(model, test_batches, spec.objective, spec.kwargs, None)
            window = max(1, len(losses) // 10)
            model_row.update(objective_loss=loss, objective_nll=loss_nll, loss_scale=loss / loss_nll,
                             final_train_loss=float(losses["loss"].iloc[-window:].mean()))
        fit_row, target_probs = chat_model_metrics(model, tokenizer, chat_splits, tales, config)
        model_row.update(fit_row)
        rows, tables, previews = [], {}, {}
        for index, decoding in enumerate(config.decodings):
            responses = generate_responses(model, tokenizer, prompts, config.samples_per_prompt,
                                           temperature=decoding.temperature,
                                           top_p=1.0 if decoding.top_p is None else decoding.top_p,
                                           max_new_tokens=config.max_new_tokens, seed=1000 * run.seed + index)
            samples = [story_from_response(r["prompt"], r["response"]) for r in responses]
            text_row, tables[decoding.name] = text_metrics(samples, reference, tales, config)
            rows.append({"decoding": decoding.name, "temperature": decoding.temperature,
                         "top_p": math.nan if decoding.top_p is None else decoding.top_p, **text_row, **model_row})
            previews[decoding.name] = [s["completion"] for s in samples[:3]]
        open_responses = open_prompt_responses(model, tokenizer, config, seed=1000 * run.seed + 99)
    finally:
        torch.set_num_threads(threads)
    return {"run": run_dict(run), "rows": json_safe(rows_with_identity(config, run, rows)),
            "choice_tables": json_safe(tables), "histogram": _histogram(target_probs), "history": json_safe(history),
            "previews": previews, "opener_probs": {}, "open_responses": open_responses,
            "seconds": round(time.time() - started, 1)}
