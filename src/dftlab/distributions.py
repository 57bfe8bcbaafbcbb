"""Token distributions: softmax with temperature, entropy, top-k / top-p filtering, KL and total variation
(chapter 1).

Every function works on the last axis, so the same call handles one distribution [V], a batch [B, V]
or a whole sequence [B, T, V]. Probabilities and logits are torch tensors; entropies are in nats.

Chapter 1 also uses the other decoding rules here (min-p, locally typical filtering, the repetition
penalty). Chapter 2 uses the forward and reverse KL fits of a one-mode distribution (`fit_unimodal`) and
a bigram language learnt from a finite sample (`sample_bigram_tokens`, `bigram_mle`, `bigram_kl`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

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


def total_variation(p, q) -> torch.Tensor:
    """Total variation distance 0.5 * sum_i |p_i - q_i| over the last axis: the largest difference between the
    probabilities p and q give to any one set of outcomes, from 0 (the same) to 1 (no outcome in common).

    p and q are tensors, arrays or lists of the same shape (shares that do not quite sum to 1, such as means over
    seeds, are accepted as they are). Two pandas Series must have the same index (the same outcomes, in the same
    order): their values are compared position by position."""
    series = [hasattr(x, "to_numpy") and hasattr(getattr(x, "index", None), "equals") for x in (p, q)]
    if all(series) and not p.index.equals(q.index):
        raise ValueError("p and q are pandas objects over different outcomes (their indexes differ); line them up first, "
                         "e.g. q.reindex(p.index, fill_value=0.0).")
    p, q = (x.to_numpy(dtype=float, copy=True) if hasattr(x, "to_numpy") else x for x in (p, q))
    p, q = _as_float_tensor(p, "p"), _as_float_tensor(q, "q")
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} and {tuple(q.shape)}; line them up "
                         f"outcome by outcome first (e.g. reindex one table on the other's outcomes).")
    return 0.5 * (p - q).abs().sum(-1)


def entropy_by_temperature(logits, temperatures):
    """A table of the entropy (nats) of softmax(logits / T) for each temperature T: columns temperature and
    "entropy (nats)"."""
    import pandas as pd

    logits = _check_logits(logits)
    rows = [{"temperature": float(t), "entropy (nats)": entropy(softmax_with_temperature(logits.double(), float(t))).item()}
            for t in temperatures]
    return pd.DataFrame(rows)


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


def decoding_logits(logits, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                    min_p: float | None = None) -> torch.Tensor:
    """The logits a sampler draws from, before the softmax: temperature first, then top-k, then top-p, then min-p
    (each rule sees what the one before it left); dropped tokens are -inf. The one home of this order: `dftlab.sampling`
    builds on it."""
    check_decoding_settings(temperature, top_k, top_p)
    scaled = _check_logits(logits) / float(temperature)
    if top_k is not None:
        scaled = top_k_filter(scaled, top_k)
    if top_p is not None:
        scaled = top_p_filter(scaled, top_p)
    if min_p is not None:
        scaled = min_p_filter(scaled, min_p)
    return scaled


def decoding_distribution(logits, temperature: float = 1.0, top_k: int | None = None,
                          top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The distribution a sampler actually draws from: the softmax of `decoding_logits`."""
    return torch.softmax(decoding_logits(logits, temperature, top_k, top_p, min_p), dim=-1)


# ---------------------------------------------------------------------------------------------
# More decoding rules (chapter 1): min-p, locally typical sampling, the repetition penalty.
# ---------------------------------------------------------------------------------------------

def min_p_filter(logits, p_base: float) -> torch.Tensor:
    """Min-p filtering (Nguyen et al., ICLR 2025): keep every token whose probability is at least `p_base` times
    the probability of the most likely token, and set the rest to -inf.

    The cut-off scales with the model's confidence: a peaked distribution keeps few tokens, a flat one many.
    The most likely token is always kept.
    """
    logits = _check_logits(logits)
    p_base = check_number(p_base, "p_base", 0.0, 1.0, low_open=True, hint="p_base = 1 keeps only the top token.")
    probs = torch.softmax(logits, dim=-1)
    threshold = p_base * probs.max(dim=-1, keepdim=True).values
    return logits.masked_fill(probs < threshold, float("-inf"))


def typical_filter(logits, mass: float) -> torch.Tensor:
    """Locally typical filtering (Meister et al., 2022): rank tokens by how close their surprisal -log p_i is
    to the entropy H(p), keep the smallest set of the closest whose total probability reaches `mass`, and set
    the rest to -inf.

    Unlike top-k, top-p and min-p, it can drop the *most likely* token, when that token is far less
    surprising than the distribution is on average. The closest token is always kept.
    """
    logits = _check_logits(logits)
    mass = _check_top_p(mass, "mass")
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    surprisal_gap = (-log_probs - entropy(probs).unsqueeze(-1)).abs()  # inf for tokens already ruled out
    sorted_gap, order = torch.sort(surprisal_gap, dim=-1, stable=True)
    sorted_probs = probs.gather(-1, order)
    # as in top_p_filter: drop a token when the tokens before it already reach the mass
    drop_sorted = (sorted_probs.cumsum(-1) - sorted_probs) >= mass
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def repetition_penalty(logits, previous_ids, penalty: float) -> torch.Tensor:
    """The repetition penalty of CTRL (Keskar et al., 2019): every token that already appears in
    `previous_ids` becomes less likely. A positive logit is divided by `penalty`, a negative one multiplied
    by it (dividing a negative logit would *raise* it; Hugging Face's implementation does the same).

    `logits` is [V] with `previous_ids` a 1-D list of ids, or [B, V] with `previous_ids` [B, L]. A token
    is penalised once however often it appeared; `penalty` = 1 changes nothing. Returns a new tensor.
    """
    logits = _check_logits(logits)
    penalty = check_number(penalty, "penalty", 0.0, low_open=True,
                           hint="Values above 1 discourage repeats; 1 turns the penalty off.")
    ids = torch.as_tensor(previous_ids, dtype=torch.long)
    if ids.ndim != logits.ndim:
        raise ValueError(f"previous_ids must have as many axes as logits ({logits.ndim}), got shape "
                         f"{tuple(ids.shape)}; pass one list of ids per row of logits")
    if ids.numel() and (ids.min() < 0 or ids.max() >= logits.shape[-1]):
        raise ValueError(f"previous_ids holds ids outside the vocabulary [0, {logits.shape[-1]})")
    seen = torch.zeros(logits.shape, dtype=torch.bool).scatter(-1, ids, True)
    penalised = torch.where(logits > 0, logits / penalty, logits * penalty)
    return torch.where(seen, penalised, logits)


# ---------------------------------------------------------------------------------------------
# Forward and reverse KL (chapter 2): fit a one-mode distribution to a two-mode target.
# ---------------------------------------------------------------------------------------------

KL_DIRECTIONS = ("forward", "reverse")


@dataclass
class UnimodalFit:
    """The result of `fit_unimodal`: the best discretised Gaussian under one direction of KL."""

    direction: str        # "forward": KL(target || p), maximum likelihood; "reverse": KL(p || target)
    mean: float
    std: float
    probs: torch.Tensor   # the fitted distribution on the grid, shape [G]
    forward_kl: float     # KL(target || probs), nats
    reverse_kl: float     # KL(probs || target), nats


def discretised_gaussian(grid, mean, std) -> torch.Tensor:
    """A Gaussian bump evaluated on a 1-D `grid` and normalised to sum to 1: a categorical distribution over
    the grid points with a single mode. `mean` and `std` may be tensors that carry gradients."""
    grid = torch.as_tensor(grid, dtype=torch.float64)
    return torch.softmax(-0.5 * ((grid - mean) / std) ** 2, dim=-1)


def fit_unimodal(target, grid, direction: str = "forward", *, steps: int = 400, lr: float = 0.05,
                 starts: int = 5) -> UnimodalFit:
    """Fit `discretised_gaussian(grid, mean, std)` to `target` (probabilities on `grid`, all positive) by
    minimising KL(target || p) (`direction="forward"`, the same as maximum likelihood) or KL(p || target)
    (`"reverse"`) with Adam in float64 (chapter 2).

    The reverse direction has a local optimum at each mode of the target, so the fit starts from `starts`
    means spread over the grid and keeps the one with the lowest loss (the first, on a tie). Seconds at most.
    """
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"direction must be one of {KL_DIRECTIONS}, got {direction!r}")
    target = check_probs(torch.as_tensor(target, dtype=torch.float64), "target")
    grid = torch.as_tensor(grid, dtype=torch.float64)
    if target.ndim != 1 or grid.shape != target.shape or len(grid) < 3:
        raise ValueError(f"target and grid must be 1-D of the same length (at least 3), got shapes "
                         f"{tuple(target.shape)} and {tuple(grid.shape)}")
    if (target <= 0).any():
        raise ValueError("target must be positive on every grid point: otherwise KL(p || target) is infinite")
    steps, starts = check_int(steps, "steps"), check_int(starts, "starts")
    lr = check_number(lr, "lr", 0.0, low_open=True)
    low, high = grid.min().item(), grid.max().item()
    width = (high - low) / 20  # each start begins narrow, so that in the reverse direction it finds its nearest mode
    best = None
    for start in torch.linspace(low, high, starts + 2, dtype=torch.float64)[1:-1]:
        mean = start.clone().requires_grad_(True)
        log_std = torch.tensor(math.log(width), dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.Adam([mean, log_std], lr=lr)
        for _ in range(steps):
            probs = discretised_gaussian(grid, mean, log_std.exp())
            loss = kl_divergence(target, probs) if direction == "forward" else kl_divergence(probs, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            probs = discretised_gaussian(grid, mean, log_std.exp())
            loss = kl_divergence(target, probs) if direction == "forward" else kl_divergence(probs, target)
        if best is None or loss.item() < best[0]:
            best = (loss.item(), mean.item(), log_std.exp().item(), probs)
    _, mean, std, probs = best
    return UnimodalFit(direction, mean, std, probs, kl_divergence(target, probs).item(),
                       kl_divergence(probs, target).item())


# ---------------------------------------------------------------------------------------------
# A bigram language from a finite sample (chapter 2): maximum likelihood is counting, KL shrinks with data.
# ---------------------------------------------------------------------------------------------

def _check_transitions(transitions) -> torch.Tensor:
    transitions = check_probs(torch.as_tensor(transitions, dtype=torch.float64), "transitions")
    if transitions.ndim != 2 or transitions.shape[0] != transitions.shape[1]:
        raise ValueError(f"transitions must be a square matrix [V, V] of rows q(. | previous token), "
                         f"got shape {tuple(transitions.shape)}")
    return transitions


def stationary_distribution(transitions) -> torch.Tensor:
    """How often each token occurs in a long text from the bigram chain: the left eigenvector of the
    transition matrix for eigenvalue 1, found by iterating pi <- pi Q from the uniform distribution."""
    transitions = _check_transitions(transitions)
    pi = torch.full((transitions.shape[0],), 1.0 / transitions.shape[0], dtype=torch.float64)
    for _ in range(10_000):
        new = pi @ transitions
        if torch.allclose(new, pi, rtol=0, atol=1e-14):
            break
        pi = new
    return new / new.sum()


def sample_bigram_tokens(transitions, length: int, num_sequences: int = 1, seed: int = 0) -> torch.Tensor:
    """Token ids [num_sequences, length] from the bigram chain with rows `transitions[c] = q(. | c)`; each
    sequence starts from the stationary distribution. Seeded: the same call gives the same tokens."""
    transitions = _check_transitions(transitions)
    length, num_sequences = check_int(length, "length"), check_int(num_sequences, "num_sequences")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", None))
    uniforms = torch.rand(num_sequences, length, 1, generator=generator, dtype=torch.float64)
    last = transitions.shape[0] - 1
    cumulative = transitions.cumsum(-1)
    tokens = torch.empty(num_sequences, length, dtype=torch.long)
    first = torch.searchsorted(stationary_distribution(transitions).cumsum(-1), uniforms[:, 0].contiguous())
    tokens[:, 0] = first.clamp(max=last)[:, 0]
    for t in range(1, length):
        tokens[:, t] = torch.searchsorted(cumulative[tokens[:, t - 1]], uniforms[:, t].contiguous()).clamp(max=last)[:, 0]
    return tokens


def bigram_mle(tokens, vocab_size: int) -> torch.Tensor:
    """The maximum-likelihood bigram model [V, V] of a token sequence (1-D) or of several (2-D, pairs never
    cross from one row to the next): count each pair (previous, next) and divide by the count of `previous`.
    A context that never occurs before another token has no MLE; it gets the uniform row."""
    tokens = torch.as_tensor(tokens, dtype=torch.long)
    vocab_size = check_int(vocab_size, "vocab_size")
    if tokens.ndim not in (1, 2) or tokens.shape[-1] < 2:
        raise ValueError(f"tokens must be a sequence of at least two ids (1-D) or a batch of them (2-D), "
                         f"got shape {tuple(tokens.shape)}")
    if tokens.min() < 0 or tokens.max() >= vocab_size:
        raise ValueError(f"tokens holds ids outside [0, {vocab_size})")
    pairs = tokens[..., :-1] * vocab_size + tokens[..., 1:]
    counts = torch.bincount(pairs.reshape(-1), minlength=vocab_size ** 2).reshape(vocab_size, vocab_size).double()
    totals = counts.sum(-1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp(min=1), torch.full_like(counts, 1.0 / vocab_size))


def bigram_kl(transitions, fitted) -> float:
    """The KL divergence per token between the true bigram chain and a fitted one, in nats:
    sum_c pi_c KL(q(. | c) || p(. | c)), with pi the chain's stationary distribution. Infinite as soon as
    the fitted model gives probability 0 to a transition that can happen."""
    transitions = _check_transitions(transitions)
    fitted = check_probs(torch.as_tensor(fitted, dtype=torch.float64), "fitted")
    if fitted.shape != transitions.shape:
        raise ValueError(f"fitted must have the shape of transitions {tuple(transitions.shape)}, got {tuple(fitted.shape)}")
    return float(stationary_distribution(transitions) @ kl_divergence(transitions, fitted))
