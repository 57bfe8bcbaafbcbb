"""Toy dynamics: where does each objective take one categorical distribution? (chapter 4)

Strip a language model down to a single context with its own free logits z and a known data
distribution q over V tokens. Train z with plain gradient descent under any objective of
`dftlab.objectives` and watch p = softmax(z). Cross-entropy walks to p = q; Dynamic FT walks to
the one-hot mode of q. `fit_bigram` repeats the experiment with one logit row per context.

The toy calls the very same objective functions the real training uses: the expected loss
sum_y q_y loss(z, y) is the objective evaluated on z repeated V times with labels 0..V-1.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from dftlab.objectives import (asft, check_objective_kwargs, dft, dft_floored, get_objective, mix, needs_base_logits, nll,
                               power)
from dftlab.models import STRONG_PRIOR_MODEL
from dftlab.runtime import torch_threads
from dftlab.validation import check_int, check_number


@dataclass
class CategoricalFit:
    """The result of `fit_categorical`: the final distribution and its path, recorded every few steps."""

    target: np.ndarray       # q, shape [V]
    probs: np.ndarray        # final p, shape [V]
    logits: np.ndarray       # final z, shape [V]
    steps: np.ndarray        # the step of each record, shape [n_records]
    trajectory: np.ndarray   # p at each record, shape [n_records, V]
    entropy: np.ndarray      # H(p) in nats at each record
    kl: np.ndarray           # KL(q || p) in nats at each record


@dataclass
class BigramFit:
    """The result of `fit_bigram`: one fitted conditional distribution per context."""

    transition_matrix: np.ndarray  # q(. | c), shape [C, V]
    context_probs: np.ndarray      # how often each context occurs, shape [C]
    conditionals: np.ndarray       # fitted p(. | c), shape [C, V]
    kl: np.ndarray                 # final KL(q(.|c) || p(.|c)) per context, shape [C]
    entropy: np.ndarray            # final H(p(.|c)) per context, shape [C]
    steps: np.ndarray              # the step of each record
    trajectory: np.ndarray         # p(. | c) at each record, shape [n_records, C, V]
    mean_kl: np.ndarray            # context-weighted KL at each record, shape [n_records]


# ---------------------------------------------------------------------------------------------
# Input checks.
# ---------------------------------------------------------------------------------------------

def _as_distributions(name: str, values, dims: int) -> np.ndarray:
    """`values` as float64 probabilities: a vector (dims=1) or a row-stochastic matrix (dims=2)."""
    array = np.asarray(values, dtype=np.float64)
    shape_hint = "[V]" if dims == 1 else "[C, V]"
    if array.ndim != dims or array.shape[-1] < 2 or array.size == 0:
        raise ValueError(f"`{name}` must be probabilities of shape {shape_hint} with V >= 2, got shape {array.shape}.")
    if not np.isfinite(array).all() or (array < 0).any():
        raise ValueError(f"`{name}` must hold finite, non-negative probabilities.")
    sums = array.sum(-1)
    if not np.allclose(sums, 1.0, atol=1e-6):
        raise ValueError(f"`{name}` must sum to 1 (each row, for a matrix), got sums {np.round(sums, 6)}. "
                         f"Normalise it: values / values.sum(-1, keepdims=True).")
    return array


def objective_name(objective) -> str:
    """An objective's name for tables: the name itself, or a function's __name__."""
    return objective if isinstance(objective, str) else getattr(objective, "__name__", repr(objective))


def _objective_default(loss_fn, kwargs: dict, name: str) -> float:
    """The value of hyper-parameter `name`: as passed, else the objective's own default."""
    return kwargs.get(name, inspect.signature(loss_fn).parameters[name].default)


# ---------------------------------------------------------------------------------------------
# The engine: gradient descent on a [C, V] matrix of logits.
# ---------------------------------------------------------------------------------------------

def _expected_loss(loss_fn, logits, targets, context_probs, base_logits, objective_kwargs):
    """sum_c pi_c sum_y q(y|c) loss(z_c, y), through the real objective with reduction="none"."""
    num_contexts, vocab_size = logits.shape
    # Position (c, y) of this [C, V, V] batch holds context c's logits and asks for token y.
    every_logits = logits.unsqueeze(1).expand(num_contexts, vocab_size, vocab_size)
    every_label = torch.arange(vocab_size).expand(num_contexts, vocab_size)
    if needs_base_logits(loss_fn):
        objective_kwargs = {**objective_kwargs, "base_logits": base_logits.unsqueeze(1).expand_as(every_logits)}
    per_token = loss_fn(every_logits, every_label, reduction="none", **objective_kwargs)
    return (context_probs[:, None] * targets * per_token).sum()


def _sampled_loss(loss_fn, logits, targets, context_probs, base_logits, objective_kwargs, batch_size, generator):
    """The token-mean loss on `batch_size` draws (c, y) with c ~ pi and y ~ q(.|c): an unbiased estimate."""
    contexts = torch.multinomial(context_probs, batch_size, replacement=True, generator=generator)
    tokens = torch.multinomial(targets[contexts], 1, generator=generator).squeeze(1)
    if needs_base_logits(loss_fn):
        objective_kwargs = {**objective_kwargs, "base_logits": base_logits[contexts]}
    return loss_fn(logits[contexts], tokens, **objective_kwargs)


def gradient_descent(targets, context_probs, objective, steps, lr, exact, seed, init_logits, batch_size,
             record_every, objective_kwargs):
    """Plain gradient descent; returns (final logits, recorded steps, recorded log-probabilities [n, C, V])."""
    loss_fn = get_objective(objective)
    check_objective_kwargs(loss_fn, objective_kwargs)
    steps = check_int(steps, "steps", 0)
    batch_size = check_int(batch_size, "batch_size")
    record_every = check_int(record_every, "record_every")
    check_number(lr, "lr", 0.0, low_open=True)
    targets = torch.as_tensor(targets, dtype=torch.float64)
    context_probs = torch.as_tensor(context_probs, dtype=torch.float64)
    if init_logits is None:
        logits = torch.zeros_like(targets)  # uniform start
    else:
        logits = torch.as_tensor(np.asarray(init_logits, dtype=np.float64)).reshape(targets.shape).clone()
    # ASFT anchors to the model it started from.
    base_logits = logits.clone()
    generator = torch.Generator().manual_seed(seed)
    logits.requires_grad_(True)

    recorded_steps, recorded_log_probs = [], []
    # One thread: on tensors this small, handing work to other threads costs far more than the arithmetic, and on
    # a busy machine it made the loop over ten times slower.
    with torch_threads(1):
        for step in range(steps + 1):
            if step % record_every == 0 or step == steps:
                recorded_steps.append(step)
                recorded_log_probs.append(logits.detach().log_softmax(-1).numpy().copy())
            if step == steps:
                break
            if exact:
                loss = _expected_loss(loss_fn, logits, targets, context_probs, base_logits, objective_kwargs)
            else:
                loss = _sampled_loss(loss_fn, logits, targets, context_probs, base_logits, objective_kwargs,
                                     batch_size, generator)
            (gradient,) = torch.autograd.grad(loss, logits)
            with torch.no_grad():
                logits -= lr * gradient
    return logits.detach().numpy(), np.array(recorded_steps), np.stack(recorded_log_probs)


def _entropy_and_kl(log_probs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """H(p) and KL(q || p) along the last axis, from log p (so a tiny p never turns into log 0)."""
    probs = np.exp(log_probs)
    entropy = -(probs * log_probs).sum(-1)
    safe_log_q = np.log(np.where(targets > 0, targets, 1.0))
    kl = np.maximum((targets * (safe_log_q - log_probs)).sum(-1), 0.0)  # >= 0; rounding error made a -0.0
    return entropy, kl


# ---------------------------------------------------------------------------------------------
# One context.
# ---------------------------------------------------------------------------------------------

def fit_categorical(target, objective="nll", steps: int = 1000, lr: float = 0.5, exact: bool = True,
                    seed: int = 0, init_logits=None, batch_size: int = 1, record_every: int = 1,
                    **objective_kwargs) -> CategoricalFit:
    """Fit p = softmax(z) to the data distribution `target` by gradient descent on `objective` (chapter 4).

    exact=True follows the exact expected gradient (no sampling noise); exact=False takes SGD steps on
    `batch_size` tokens drawn from `target` with a seeded generator. The start is uniform unless
    `init_logits` is given; for "asft" the start is also the anchor. Extra keywords (alpha, lam, floor)
    go to the objective.
    """
    target = _as_distributions("target", target, dims=1)
    if init_logits is not None and np.shape(init_logits) != target.shape:
        raise ValueError(f"`init_logits` must have the shape of `target` {target.shape}, got {np.shape(init_logits)}.")
    logits, steps_done, log_probs = gradient_descent(target[None], np.ones(1), objective, steps, lr, exact, seed,
                                             init_logits, batch_size, record_every, objective_kwargs)
    entropy, kl = _entropy_and_kl(log_probs[:, 0], target)
    trajectory = np.exp(log_probs[:, 0])
    return CategoricalFit(target=target, probs=trajectory[-1], logits=logits[0], steps=steps_done,
                          trajectory=trajectory, entropy=entropy, kl=kl)


def logit_gradient(probs, target, objective="nll", *, base_probs=None, **objective_kwargs) -> np.ndarray:
    """The exact expected gradient of `objective` in the logits z, at p = softmax(z) (chapter 4).

    Every objective here weights the per-token cross-entropy gradient p - e_y by some w(p_y), so
        gradient = sum_y q_y w(p_y) (p - e_y)
    with w = 1 (nll), p_y (dft), max(p_y, floor) (dft_floored), p_y**alpha (power), lam + (1 - lam) p_y (mix).
    So nll gives p - q and dft gives sum_y q_y p_y (p - e_y). asft adds lam (p - p_base), p_base
    defaulting to uniform (the toy's start). A function not in OBJECTIVES is differentiated by autograd.
    """
    probs = _as_distributions("probs", probs, dims=1)
    target = _as_distributions("target", target, dims=1)
    if probs.shape != target.shape:
        raise ValueError(f"`probs` {probs.shape} and `target` {target.shape} must have the same length.")
    vocab_size = len(target)
    base_probs = np.full(vocab_size, 1.0 / vocab_size) if base_probs is None else \
        _as_distributions("base_probs", base_probs, dims=1)
    loss_fn = get_objective(objective)
    check_objective_kwargs(loss_fn, objective_kwargs)
    weight = _gradient_weight(loss_fn, probs, objective_kwargs)
    if weight is None:
        return _autograd_logit_gradient(loss_fn, probs, target, base_probs, objective_kwargs)
    gradient = (target * weight).sum() * probs - target * weight
    if loss_fn is asft:
        gradient = gradient + _objective_default(loss_fn, objective_kwargs, "lam") * (probs - base_probs)
    return gradient


def target_view(probs, target, objective="nll", **objective_kwargs) -> np.ndarray:
    """Q = p - g, the distribution one step of `objective` pulls p towards (chapter 5; Target-SFT).

    g is the expected logit gradient (`logit_gradient`). For NLL and a one-hot target, Q is the target
    itself; for DFT it is Q = (1 - p_y) p + p_y e_y: where the model gives the target little probability,
    Q is almost the model's own prediction, so the step barely teaches it anything.
    """
    return _as_distributions("probs", probs, dims=1) - logit_gradient(probs, target, objective, **objective_kwargs)


def power_fixed_point(target, alpha: float) -> np.ndarray:
    """The power family's fixed point in closed form, p proportional to q ** (1 / (1 - alpha)), for 0 <= alpha < 1.

    Setting the expected logit gradient sum_y q_y p_y**alpha (p - e_y) to zero gives p_y**(1 - alpha)
    proportional to q_y. That is q sampled at temperature T = 1 - alpha: training with alpha sharpens the
    model exactly as sampling the maximum-likelihood model at T = 1 - alpha would (appendix, chapter 5).
    """
    target = _as_distributions("target", target, dims=1)
    check_number(alpha, "alpha", 0.0, 1.0, high_open=True,
                 hint="At alpha = 1, DFT's gradient, the fixed point is the one-hot mode: use fixed_point(target, 'dft').")
    sharpened = target ** (1.0 / (1.0 - alpha))
    return sharpened / sharpened.sum()


def power_family_check(openers: pd.DataFrame, alphas=(0.25, 0.5), base_model: str = STRONG_PRIOR_MODEL,
                       steps: int | None = None) -> pd.DataFrame:
    """Each opener's share under `power_<alpha>` at T = 1, beside the two things it should equal (chapter 5): the
    power family's fixed point on the true openers, and the maximum-likelihood model sampled at T = 1 - alpha.

    `openers` is `dftlab.study.load_opener_probabilities()`. Shares are means over seeds. Columns: alpha, opener,
    model (power_<alpha> at T = 1; alpha 0 is nll at T = 1), closed_form (q^(1/(1-alpha)) from the true opener
    probabilities), sampled (nll at T = 1 - alpha).
    """
    rows = openers[openers["base_model"] == base_model]
    if steps is not None:
        rows = rows[rows["steps"] == steps]
    shares = rows.groupby(["objective", "temperature", "opener"])["share"].mean()
    true = rows.groupby("opener")["true_prob"].first().sort_values(ascending=False)
    frames = []
    for alpha in (0.0, *alphas):
        objective = "nll" if alpha == 0 else f"power_{alpha:g}"
        missing = [key for key in ((objective, 1.0), ("nll", 1.0 - alpha)) if key not in shares.index.droplevel(2)]
        if missing:
            raise ValueError(f"power_family_check: no opener shares for {missing} (objective, temperature) in "
                             f"`openers`; pass dftlab.study.load_opener_probabilities().")
        frames.append(pd.DataFrame({"alpha": alpha, "opener": true.index,
                                    "model": shares[objective, 1.0].reindex(true.index).to_numpy(),
                                    "closed_form": power_fixed_point(true.to_numpy(), alpha),
                                    "sampled": shares["nll", 1.0 - alpha].reindex(true.index).to_numpy()}))
    return pd.concat(frames, ignore_index=True)


def power_family_distances(check: pd.DataFrame) -> pd.DataFrame:
    """The total variation distance over the openers, per alpha, between the fine-tuned model's shares and each of
    the two things they should equal. `check` is `power_family_check(...)`. Columns: alpha, closed_form (model
    against q^(1/(1-alpha))), sampled (model against nll sampled at T = 1 - alpha; 0 at alpha = 0, nll against
    itself)."""
    from dftlab.distributions import total_variation

    rows = []
    for alpha, group in check.groupby("alpha", sort=True):
        distances = {column: float(total_variation(group["model"].to_numpy(dtype=float, copy=True),
                                                   group[column].to_numpy(dtype=float, copy=True)))
                     for column in ("closed_form", "sampled")}
        rows.append({"alpha": float(alpha), **distances})
    return pd.DataFrame(rows, columns=["alpha", "closed_form", "sampled"])



def preference_optimum(reference_probs, rewards, beta: float) -> torch.Tensor:
    """Where KL-regularised preference tuning (RLHF, DPO) takes one prompt's distribution over answers (chapter 5).

    The distribution pi that maximises E_pi[reward] - beta KL(pi || reference) is
    pi(y) = reference(y) exp(reward(y) / beta) / sum_y' reference(y') exp(reward(y') / beta): the reference,
    tilted towards high reward, less the larger beta is. Computed over the last axis as
    softmax(log reference_probs + rewards / beta), so a batch of prompts [..., answers] works too, and an answer the
    reference never gives keeps probability 0. A reward that adds gamma * log reference (raters who prefer the
    familiar) makes pi proportional to reference ** (1 + gamma / beta): the reference at temperature
    beta / (beta + gamma), which is `power_fixed_point(reference, gamma / (beta + gamma))`.
    """
    from dftlab.distributions import check_probs

    reference_probs = check_probs(reference_probs, "reference_probs")
    rewards = torch.as_tensor(rewards, dtype=reference_probs.dtype)
    if torch.isnan(rewards).any() or torch.isinf(rewards).any():
        raise ValueError("rewards must be finite numbers, one per answer.")
    try:
        torch.broadcast_shapes(reference_probs.shape, rewards.shape)
    except RuntimeError:
        raise ValueError(f"rewards (shape {tuple(rewards.shape)}) must match reference_probs "
                         f"(shape {tuple(reference_probs.shape)}): one reward per answer.") from None
    beta = check_number(beta, "beta", 0.0, low_open=True,
                        hint="beta is the price of moving away from the reference; it must be positive.")
    return torch.softmax(torch.log(reference_probs) + rewards / beta, dim=-1)


def _gradient_weight(loss_fn, probs, objective_kwargs):
    """w(p_y) for each token y, for the objectives of dftlab.objectives; None for any other function."""
    if loss_fn is nll:
        return np.ones_like(probs)
    if loss_fn in (dft, asft):
        return probs
    if loss_fn is dft_floored:
        return np.maximum(probs, _objective_default(loss_fn, objective_kwargs, "floor"))
    if loss_fn is power:
        return probs ** _objective_default(loss_fn, objective_kwargs, "alpha")
    if loss_fn is mix:
        lam = _objective_default(loss_fn, objective_kwargs, "lam")
        return lam + (1 - lam) * probs
    return None


def _autograd_logit_gradient(loss_fn, probs, target, base_probs, objective_kwargs) -> np.ndarray:
    with np.errstate(divide="ignore"):
        logits = torch.tensor(np.log(probs)).unsqueeze(0).requires_grad_(True)
    base_logits = torch.tensor(np.log(base_probs)).unsqueeze(0)
    loss = _expected_loss(loss_fn, logits, torch.tensor(target)[None], torch.ones(1, dtype=torch.float64),
                          base_logits, objective_kwargs)
    (gradient,) = torch.autograd.grad(loss, logits)
    return gradient[0].numpy()


def fixed_point(target, objective="nll", *, steps: int = 20_000, lr: float = 0.5, **objective_kwargs) -> np.ndarray:
    """Where `objective` takes p in the long run from a uniform start (chapter 4).

    Known in closed form: cross-entropy (and the members of the family equal to it) ends at q, a
    strictly proper score; DFT (and 1 - p, with the same gradient) ends at the one-hot mode of q,
    the optimum of the linear programme max_p sum_y q_y p_y. Ties for the mode share the mass equally,
    since a uniform start never breaks the symmetry. Anything else runs `steps` exact steps of descent.
    """
    target = _as_distributions("target", target, dims=1)
    loss_fn = get_objective(objective)
    check_objective_kwargs(loss_fn, objective_kwargs)

    def setting(parameter):
        return _objective_default(loss_fn, objective_kwargs, parameter)

    same_as_nll = (loss_fn is nll or (loss_fn is power and setting("alpha") == 0)
                   or (loss_fn is mix and setting("lam") == 1) or (loss_fn is dft_floored and setting("floor") == 1))
    same_gradient_as_dft = (loss_fn is dft or (loss_fn is power and setting("alpha") == 1)
                            or (loss_fn is mix and setting("lam") == 0)
                            or (loss_fn is dft_floored and setting("floor") == 0))
    if same_as_nll:
        return target.copy()
    if same_gradient_as_dft:
        modes = np.isclose(target, target.max(), rtol=0, atol=1e-12)
        return modes / modes.sum()
    return fit_categorical(target, objective, steps=steps, lr=lr, record_every=steps or 1, **objective_kwargs).probs


# ---------------------------------------------------------------------------------------------
# Pictures on the 3-token simplex.
# ---------------------------------------------------------------------------------------------

def ternary_coordinates(probs) -> tuple[np.ndarray, np.ndarray]:
    """Map 3-token distributions [..., 3] to the plane of a ternary plot.

    Token 0's vertex is (0, 0), token 1's is (1, 0) and token 2's is (1/2, sqrt(3)/2).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.shape[-1] != 3:
        raise ValueError(f"ternary_coordinates needs distributions over 3 tokens, got shape {probs.shape}.")
    return probs[..., 1] + probs[..., 2] / 2, probs[..., 2] * math.sqrt(3) / 2


def simplex_trajectories(target, objectives=("nll", "dft", "mix"), *, steps: int = 2000, lr: float = 0.5,
                         record_every: int = 10, init_logits=None, objective_kwargs: dict | None = None
                         ) -> pd.DataFrame:
    """Exact-gradient paths of objectives on a 3-token target, as a tidy table for a ternary plot (chapter 4).

    One row per (objective, recorded step) with p0, p1, p2, the plane coordinates x, y (see
    `ternary_coordinates`), entropy and KL(q || p). `objective_kwargs` maps an objective's name
    to its keywords, e.g. {"mix": {"lam": 0.3}}.
    """
    target = _as_distributions("target", target, dims=1)
    if len(target) != 3:
        raise ValueError(f"simplex_trajectories draws on the 3-token simplex; `target` has {len(target)} tokens.")
    objective_kwargs = objective_kwargs or {}
    tables = []
    for objective in objectives:
        name = objective_name(objective)
        fit = fit_categorical(target, objective, steps=steps, lr=lr, init_logits=init_logits,
                              record_every=record_every, **objective_kwargs.get(name, {}))
        x, y = ternary_coordinates(fit.trajectory)
        tables.append(pd.DataFrame({
            "objective": name, "step": fit.steps,
            "p0": fit.trajectory[:, 0], "p1": fit.trajectory[:, 1], "p2": fit.trajectory[:, 2],
            "x": x, "y": y, "entropy": fit.entropy, "kl": fit.kl,
        }))
    return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------------------------------------
# Many contexts: a bigram language.
# ---------------------------------------------------------------------------------------------

def fit_bigram(transition_matrix, objective="nll", steps: int = 1000, lr: float = 0.5, exact: bool = True, *,
               context_probs=None, seed: int = 0, init_logits=None, batch_size: int = 16,
               record_every: int = 10, **objective_kwargs) -> BigramFit:
    """Fit one logit row per context of a bigram language with known conditionals q(. | c).

    `transition_matrix[c, y]` = q(y | c). Contexts occur with `context_probs` (default uniform; pass the
    chain's stationary distribution to weight them as running text would). The loss averages over
    contexts with those weights, so a rare context learns more slowly but towards the same fixed point.
    """
    transition_matrix = _as_distributions("transition_matrix", transition_matrix, dims=2)
    num_contexts = transition_matrix.shape[0]
    if context_probs is None:
        context_probs = np.full(num_contexts, 1.0 / num_contexts)
    context_probs = _as_distributions("context_probs", context_probs, dims=1)
    if len(context_probs) != num_contexts:
        raise ValueError(f"`context_probs` needs one entry per row of `transition_matrix` ({num_contexts}), "
                         f"got {len(context_probs)}.")
    if init_logits is not None and np.shape(init_logits) != transition_matrix.shape:
        raise ValueError(f"`init_logits` must have shape {transition_matrix.shape}, got {np.shape(init_logits)}.")
    _, steps_done, log_probs = gradient_descent(transition_matrix, context_probs, objective, steps, lr, exact, seed,
                                        init_logits, batch_size, record_every, objective_kwargs)
    entropy, kl = _entropy_and_kl(log_probs, transition_matrix)
    trajectory = np.exp(log_probs)
    return BigramFit(transition_matrix=transition_matrix, context_probs=context_probs,
                     conditionals=trajectory[-1], kl=kl[-1], entropy=entropy[-1], steps=steps_done,
                     trajectory=trajectory, mean_kl=kl @ context_probs)
