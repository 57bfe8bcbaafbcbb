"""Token distributions: softmax with temperature, entropy, top-k / top-p filtering and KL (chapter 1).

Every function works on the last axis, so the same call handles one distribution [V], a batch [B, V]
or a whole sequence [B, T, V]. Probabilities and logits are torch tensors; entropies are in nats.
"""
from __future__ import annotations

import math

import torch

from dftlab.validation import check_int, check_number


def _as_float_tensor(x, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{name} must be a tensor or a list of numbers, got {type(x).__name__}") from exc
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must hold floating-point numbers, got dtype {x.dtype}; call .float() first")
    if x.ndim == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one entry on its last axis, got shape {tuple(x.shape)}")
    if torch.isnan(x).any():
        raise ValueError(f"{name} contains NaN; check the model or the numbers passed in")
    return x


def check_probs(probs, name: str = "probs") -> torch.Tensor:
    """`probs` as a float tensor; ValueError (naming `name`) unless it is non-negative and sums to 1 on the last axis."""
    probs = _as_float_tensor(probs, name)
    if (probs < 0).any():
        raise ValueError(f"{name} has negative entries; pass probabilities (e.g. softmax(logits)), not logits")
    total = probs.sum(-1)
    if not torch.allclose(total, torch.ones_like(total), atol=1e-4):
        raise ValueError(f"{name} must sum to 1 on the last axis (sums: {total.flatten()[:3].tolist()}...); "
                         "normalise with probs / probs.sum(-1, keepdim=True)")
    return probs


def _check_logits(logits) -> torch.Tensor:
    """Logits may hold -inf (a token filtered out), but not +inf, and each row needs one finite entry:
    otherwise the softmax silently returns NaN."""
    logits = _as_float_tensor(logits, "logits")
    if torch.isposinf(logits).any():
        raise ValueError("logits contains +inf, which makes the softmax NaN; check the model, or use -inf "
                         "(not +inf) to rule a token out")
    if not torch.isfinite(logits).any(-1).all():
        raise ValueError("logits has a row where every entry is -inf, so no token is left to sample; keep at least "
                         "one finite logit per row (e.g. a larger top_k or top_p)")
    return logits


def _check_top_k(k, name: str = "k") -> int:
    return check_int(k, name, hint="A positive integer; use None to keep every token.")


def _check_top_p(p, name: str = "p") -> float:
    return check_number(p, name, 0.0, 1.0, low_open=True, hint=f"{name} = 1 keeps every token.")


def check_decoding_settings(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None) -> None:
    """Raise ValueError, naming the argument, unless temperature > 0, top_k >= 1 (or None), 0 < top_p <= 1 (or None)."""
    _check_temperature(temperature)
    if top_k is not None:
        _check_top_k(top_k, "top_k")
    if top_p is not None:
        _check_top_p(top_p, "top_p")


def _check_temperature(temperature) -> float:
    return check_number(temperature, "temperature", 0.0, low_open=True,
                        hint="Use greedy decoding (argmax) for the T -> 0 limit.")


def softmax_with_temperature(logits, temperature: float = 1.0) -> torch.Tensor:
    """p_i = exp(z_i / T) / sum_j exp(z_j / T). T < 1 sharpens, T > 1 flattens, T -> 0 is greedy."""
    logits = _check_logits(logits)
    return torch.softmax(logits / _check_temperature(temperature), dim=-1)


def entropy(probs) -> torch.Tensor:
    """Shannon entropy H(p) = -sum_i p_i log p_i in nats, with 0 log 0 = 0."""
    probs = check_probs(probs)
    return -(torch.special.xlogy(probs, probs)).sum(-1)


def kl_divergence(p, q) -> torch.Tensor:
    """KL(p || q) = sum_i p_i log(p_i / q_i) in nats; infinite where q_i = 0 < p_i."""
    p, q = check_probs(p, "p"), check_probs(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}")
    return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1)


def top_k_filter(logits, k: int) -> torch.Tensor:
    """Keep the k largest logits and set the rest to -inf (ties at the k-th value are kept)."""
    logits = _check_logits(logits)
    k = min(_check_top_k(k), logits.shape[-1])
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits, p: float) -> torch.Tensor:
    """Nucleus filtering (Holtzman et al., 2019): keep the smallest set of most likely tokens whose
    total probability reaches p, and set the rest to -inf. The most likely token is always kept."""
    logits = _check_logits(logits)
    p = _check_top_p(p)
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    # drop a token when the tokens before it already reach p
    drop_sorted = (cumulative - torch.softmax(sorted_logits, dim=-1)) >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def decoding_distribution(logits, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None) -> torch.Tensor:
    """The distribution a sampler actually draws from: temperature first, then top-k, then top-p."""
    check_decoding_settings(temperature, top_k, top_p)
    scaled = _check_logits(logits) / float(temperature)
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    return torch.softmax(scaled, dim=-1)
