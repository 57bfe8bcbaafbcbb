"""Seeded sampling from a causal language model (chapter 1).

A short, explicit decoding loop instead of `model.generate`, so the reader sees every step:
logits of the last position -> penalty, temperature, top-k, top-p, min-p (`dftlab.sampling`) -> one draw
-> append -> repeat with the key-value cache. `sample_ids` is the loop, drawing with the `torch.Generator` it is
given; `sample_completions` runs it on text prompts, each prompt with its own generator, seeded from `seed` and
the prompt's position, so a result never depends on how prompts were batched.
"""
from __future__ import annotations

import pandas as pd
import torch

from dftlab.data import device_of
from dftlab.distributions import check_probs
from dftlab.sampling import SamplerSettings, penalised_logits, sampling_distribution
from dftlab.validation import check_int


def _check_model_and_tokenizer(model, tokenizer) -> None:
    if not hasattr(model, "config") or not callable(model):
        raise TypeError(f"model must be a causal language model (e.g. from dftlab.load_model()), got {type(model).__name__}")
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise ValueError("tokenizer has no eos_token_id; load it with dftlab.load_model(), which sets one")


@torch.no_grad()
def next_token_probs(model, tokenizer, text: str) -> torch.Tensor:
    """The model's next-token distribution p(. | text), a probability vector over the vocabulary."""
    _check_model_and_tokenizer(model, tokenizer)
    if not isinstance(text, str) or not text:
        raise ValueError(f"text must be a non-empty string, got {text!r}")
    input_ids = torch.tensor([tokenizer(text).input_ids], device=device_of(model))
    logits = model(input_ids=input_ids).logits[0, -1]
    return torch.softmax(logits.double().cpu(), dim=-1)


def top_tokens(probs: torch.Tensor, tokenizer, k: int = 10) -> pd.DataFrame:
    """The k most likely tokens of a distribution, as a table (token text shown with repr, so spaces are visible)."""
    if isinstance(probs, str) or not isinstance(probs, (torch.Tensor, list, tuple)):
        raise TypeError(f"probs must be a probability vector (a tensor, e.g. from next_token_probs), "
                        f"got {type(probs).__name__}")
    probs = check_probs(probs)
    if probs.dim() != 1:
        raise ValueError(f"probs must be one distribution of shape [V], got shape {tuple(probs.shape)}; "
                         f"pass one row, e.g. probs[0]")
    k = check_int(k, "k")
    values, ids = torch.topk(probs, min(k, probs.shape[-1]))
    return pd.DataFrame({"token": [repr(tokenizer.decode([i])) for i in ids.tolist()],
                         "token_id": ids.tolist(), "probability": values.tolist()})


@torch.no_grad()
def sample_ids(model, prompt_ids: list[int], num_samples: int, settings: SamplerSettings,
               generator: torch.Generator, max_new_tokens: int, eos_token_id: int,
               stop_at_eos: bool = True) -> list[list[int]]:
    """Continue one tokenised prompt `num_samples` times, drawing every token from `sampling.sampling_distribution`
    with `generator`; returns the new ids of each continuation, without the end-of-text token.

    A continuation stops at the end-of-text token or after `max_new_tokens`. With `stop_at_eos=False` the
    end-of-text token is ruled out at every step, so each continuation is `max_new_tokens` long. The draws run on
    the CPU in float64 wherever the model runs, so a generator's seed gives the same ids on any device.
    """
    device = device_of(model)
    current = torch.tensor([prompt_ids] * num_samples, device=device)
    texts = torch.tensor([prompt_ids] * num_samples)  # prompt and continuation so far: what the penalty looks at
    cache, new_tokens = None, []
    finished = torch.zeros(num_samples, dtype=torch.bool)
    for step in range(max_new_tokens):
        # An all-ones mask: nothing is padding. (Without one, transformers warns once finished rows feed it EOS,
        # because EOS doubles as the pad token.)
        attention_mask = torch.ones(num_samples, len(prompt_ids) + step, dtype=torch.long, device=device)
        out = model(input_ids=current, attention_mask=attention_mask, cache=cache, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1].double().cpu()
        if not stop_at_eos:
            logits[:, eos_token_id] = float("-inf")
        if settings.greedy:
            next_ids = torch.as_tensor(penalised_logits(logits, settings, texts)).argmax(-1)
        else:
            probs = sampling_distribution(logits, settings, texts)
            next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        next_ids = next_ids.masked_fill(finished, eos_token_id)  # rows that already ended keep emitting EOS
        new_tokens.append(next_ids)
        texts = torch.cat([texts, next_ids[:, None]], dim=1)
        finished |= next_ids == eos_token_id
        if finished.all():
            break
        current = next_ids[:, None].to(device)
    rows = torch.stack(new_tokens, dim=1).tolist()
    return [row[:row.index(eos_token_id)] if eos_token_id in row else row for row in rows]


@torch.no_grad()
def sample_completions(model, tokenizer, prompts: list[str], num_samples: int = 1, *, temperature: float = 1.0,
                       top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                       max_new_tokens: int = 96, seed: int = 0, min_p: float | None = None,
                       repetition_penalty: float | None = None) -> list[dict]:
    """Draw `num_samples` completions for each prompt; returns [{"prompt", "completion"}, ...] in prompt order.

    Sampling stops at the end-of-text token, at `max_new_tokens`, or at the model's context length.
    `greedy=True` takes the argmax instead of sampling (then temperature, top-k, top-p and min-p do not matter).
    The rules apply in the order `dftlab.sampling` gives: penalty, temperature, top-k, top-p, min-p.
    """
    _check_model_and_tokenizer(model, tokenizer)
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings; wrap a single prompt as [prompt]")
    if not all(isinstance(p, str) and p for p in prompts):
        raise ValueError("every prompt must be a non-empty string")
    num_samples, max_new_tokens = check_int(num_samples, "num_samples"), check_int(max_new_tokens, "max_new_tokens")
    seed = check_int(seed, "seed", None)
    # checked before any model call, naming the argument
    settings = (SamplerSettings(greedy=True, repetition_penalty=repetition_penalty) if greedy else
                SamplerSettings(temperature, top_k, top_p, min_p, repetition_penalty))
    context_length = model.config.n_positions if hasattr(model.config, "n_positions") else 1024
    model.eval()
    samples = []
    for prompt_index, prompt in enumerate(prompts):
        prompt_ids = tokenizer(prompt).input_ids
        budget = min(max_new_tokens, context_length - len(prompt_ids))
        if budget < 1:
            raise ValueError(f"prompt {prompt_index} is {len(prompt_ids)} tokens long, which leaves no room in the "
                             f"model's context of {context_length} tokens; shorten it")
        generator = torch.Generator().manual_seed(seed * 1_000_003 + prompt_index)
        for row in sample_ids(model, prompt_ids, num_samples, settings, generator, budget, tokenizer.eos_token_id):
            samples.append({"prompt": prompt, "completion": tokenizer.decode(row)})
    return samples
