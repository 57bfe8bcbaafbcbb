"""Seeded sampling from a causal language model (chapter 1).

A short, explicit decoding loop instead of `model.generate`, so the reader sees every step:
logits of the last position -> temperature / top-k / top-p (`dftlab.distributions`) -> one draw
-> append -> repeat with the key-value cache. Each prompt gets its own random generator, seeded
from `seed` and the prompt's position, so a result never depends on how prompts were batched.
"""
from __future__ import annotations

import pandas as pd
import torch

from dftlab.data import device_of
from dftlab.distributions import check_probs, check_decoding_settings, decoding_distribution
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
def sample_completions(model, tokenizer, prompts: list[str], num_samples: int = 1, *, temperature: float = 1.0,
                       top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                       max_new_tokens: int = 96, seed: int = 0) -> list[dict]:
    """Draw `num_samples` completions for each prompt; returns [{"prompt", "completion"}, ...] in prompt order.

    Sampling stops at the end-of-text token, at `max_new_tokens`, or at the model's context length.
    `greedy=True` takes the argmax instead of sampling (then temperature, top-k and top-p do not matter).
    """
    _check_model_and_tokenizer(model, tokenizer)
    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings; wrap a single prompt as [prompt]")
    if not all(isinstance(p, str) and p for p in prompts):
        raise ValueError("every prompt must be a non-empty string")
    num_samples, max_new_tokens = check_int(num_samples, "num_samples"), check_int(max_new_tokens, "max_new_tokens")
    seed = check_int(seed, "seed", None)
    if not greedy:
        check_decoding_settings(temperature, top_k, top_p)  # before any model call, naming the argument
    eos = tokenizer.eos_token_id
    context_length = model.config.n_positions if hasattr(model.config, "n_positions") else 1024
    model.eval()
    device = device_of(model)  # the model runs there; the draws stay on the CPU, so a seed gives the same samples anywhere
    samples = []
    for prompt_index, prompt in enumerate(prompts):
        prompt_ids = tokenizer(prompt).input_ids
        budget = min(max_new_tokens, context_length - len(prompt_ids))
        if budget < 1:
            raise ValueError(f"prompt {prompt_index} is {len(prompt_ids)} tokens long, which leaves no room in the "
                             f"model's context of {context_length} tokens; shorten it")
        generator = torch.Generator().manual_seed(seed * 1_000_003 + prompt_index)
        current = torch.tensor([prompt_ids] * num_samples, device=device)
        cache, new_tokens = None, []
        finished = torch.zeros(num_samples, dtype=torch.bool)
        for step in range(budget):
            # An all-ones mask: nothing is padding. (Without one, transformers warns once finished rows feed it EOS,
            # because EOS doubles as the pad token.)
            attention_mask = torch.ones(num_samples, len(prompt_ids) + step, dtype=torch.long, device=device)
            out = model(input_ids=current, attention_mask=attention_mask, cache=cache, use_cache=True)
            cache, logits = out.cache, out.logits[:, -1].double().cpu()
            if greedy:
                next_ids = logits.argmax(-1)
            else:
                probs = decoding_distribution(logits, temperature, top_k, top_p)
                next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            next_ids = next_ids.masked_fill(finished, eos)  # rows that already ended keep emitting EOS
            new_tokens.append(next_ids)
            finished |= next_ids == eos
            if finished.all():
                break
            current = next_ids[:, None].to(device)
        generated = torch.stack(new_tokens, dim=1).tolist()
        for row in generated:
            row = row[:row.index(eos)] if eos in row else row
            samples.append({"prompt": prompt, "completion": tokenizer.decode(row)})
    return samples
