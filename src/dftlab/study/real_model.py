"""The real-model study's pipeline: SmolLM2-135M-Instruct, fine-tuned through TRL with LoRA, then measured.

`REAL_MODEL_PIPELINE` is the `dftlab.study.measurement.Pipeline` that `measurement.compute_run` runs for a
`RealModelStudyConfig`: the measurements are those of every study, made in the chat format the model was trained in:

- exact fit: -log p(completion + end of turn | chat prompt) on true test stories, under SmolLM2's own tokenizer,
  beside the exact entropy H(q), so kl = cross_entropy - true_entropy as in the tiny-model study;
- predictive entropy, validation NLL, accuracy and p(target) (with its character-name split) on chat examples;
- samples for the first test titles at each decoding, drawn with `dftlab.chat_samples.generate_responses`,
  turned back into TinyTales stories (`story_from_response`) and measured by the same `text_metrics`;
- answers to open writing prompts (chapter 0's), kept in the payload as `open_responses`, so that each
  model's word overuse against English (`dftlab.metrics.formulaic`) can be set beside the base model's.

The exact opener distributions at several temperatures (`opener_probs`, chapter 5's power family) are not
computed here: the study trains no power objective on the real model.
"""
from __future__ import annotations

import math

import numpy as np

from dftlab.study.config import Decoding, RealModelStudyConfig, RunSpec
from dftlab.study.measurement import FineTuning, Pipeline, model_metrics_given_fit


def final_window_mean(step_losses) -> float:
    """The mean of the last tenth of the per-step losses (a pandas Series; at least one step)."""
    window = max(1, len(step_losses) // 10)
    return float(step_losses.iloc[-window:].mean())


def finetune_with_trl(model, tokenizer, train_stories: list[dict], config: RealModelStudyConfig, run: RunSpec):
    """Fine-tune `model` on chat-formatted `train_stories` through `dftlab.study.scale` (TRL's SFTTrainer, LoRA);
    returns (the model with its adapters merged in, the per-step loss table)."""
    import tempfile

    import torch

    from dftlab.runtime import torch_global_seed
    from dftlab.study import scale

    dataset = scale.examples_dataset(train_stories[:run.steps * config.batch_size], chat_tokenizer=tokenizer)
    with torch_global_seed(run.seed), tempfile.TemporaryDirectory() as output_dir:  # the LoRA initialisation
        trainer = scale.build_trainer(model, tokenizer, dataset, run.objective.objective,
                                      objective_kwargs=dict(run.objective.kwargs), steps=run.steps,
                                      batch_size=config.batch_size, lr=config.lr, output_dir=output_dir,
                                      seed=run.seed, max_length=config.max_length, lora_rank=config.lora_rank,
                                      lora_alpha=config.lora_alpha, warmup_steps=min(config.warmup_steps, run.steps),
                                      use_cpu=not torch.cuda.is_available())
        losses = scale.run_trainer(trainer)
    return trainer.model.merge_and_unload().eval(), losses


def finetune_in_chat_format(model, tokenizer, splits: dict, config: RealModelStudyConfig, run: RunSpec) -> FineTuning:
    """The pipeline's fine-tuning: `finetune_with_trl`; final_train_loss is the mean loss of the last tenth of the
    steps (TRL logs one loss a step)."""
    model, losses = finetune_with_trl(model, tokenizer, splits["train"], config, run)
    return FineTuning(model, losses.to_dict("records"), final_window_mean(losses["loss"]))


def chat_splits_of(tokenizer, splits: dict) -> dict:
    """The splits as chat examples: each title as the user's turn, the story as the assistant's."""
    from dftlab.chat_samples import chat_examples

    return {name: chat_examples(tokenizer, stories) for name, stories in splits.items() if stories}


def chat_model_metrics(model, tokenizer, chat_splits: dict, tales, config: RealModelStudyConfig) -> tuple[dict, np.ndarray]:
    """`measurement.model_metrics` in the chat format: exact KL, predictive entropy, p(target) on chat examples."""
    from dftlab import metrics

    log_probs = metrics.completion_log_probs(model, tokenizer, chat_splits["test"], batch_size=config.batch_size)
    cross_entropy, true_entropy = float(-log_probs.mean()), float(tales.entropy())
    fit = {"cross_entropy": cross_entropy, "true_entropy": true_entropy, "kl": cross_entropy - true_entropy,
           "standard_error": float(log_probs.std(ddof=1) / math.sqrt(len(log_probs)))}
    return model_metrics_given_fit(model, tokenizer, chat_splits, config, fit)


def open_prompt_responses(model, tokenizer, config: RealModelStudyConfig, seed: int) -> dict:
    """{decoding: [{"prompt", "response", "finished"}, ...]}: answers to the first `open_prompts` writing prompts."""
    from dftlab.chat_samples import DECODINGS, REAL_MODEL_DECODING, WRITING_PROMPTS, generate_responses

    settings = DECODINGS[REAL_MODEL_DECODING]
    rows = generate_responses(model, tokenizer, list(WRITING_PROMPTS[:config.open_prompts]),
                              config.open_responses_per_prompt, temperature=settings["temperature"],
                              top_p=settings["top_p"], max_new_tokens=config.open_max_new_tokens, seed=seed)
    return {REAL_MODEL_DECODING: rows}


def sample_chat_stories(model, tokenizer, prompts: list[str], config: RealModelStudyConfig, decoding: Decoding,
                        seed: int) -> list[dict]:
    """The chat model's answers to the titles, turned back into TinyTales stories (`story_from_response`)."""
    from dftlab.chat_samples import generate_responses, story_from_response

    responses = generate_responses(model, tokenizer, prompts, config.samples_per_prompt,
                                   temperature=decoding.temperature,
                                   top_p=1.0 if decoding.top_p is None else decoding.top_p,
                                   max_new_tokens=config.max_new_tokens, seed=seed)
    return [story_from_response(r["prompt"], r["response"]) for r in responses]


def open_prompt_extras(model, tokenizer, prompts: list[str], config: RealModelStudyConfig, run: RunSpec) -> dict:
    """No exact opener distributions (no power objective is trained here), and the answers to open prompts."""
    return {"opener_probs": {}, "open_responses": open_prompt_responses(model, tokenizer, config,
                                                                        seed=1000 * run.seed + 99)}


REAL_MODEL_PIPELINE = Pipeline(format_splits=chat_splits_of, finetune=finetune_in_chat_format,
                               fit_metrics=chat_model_metrics, sample=sample_chat_stories, extras=open_prompt_extras)

