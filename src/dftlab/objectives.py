"""Training objectives: SFT's cross-entropy, Dynamic Fine-Tuning and the family between them.

Chapter 2 derives `nll` (SFT is maximum likelihood). Chapter 4 derives `dft` and its relatives:
`dft_floored`, `power`, `mix` and `asft`. Chapter 6 adds `distribution_matching`, the course's
own reconstruction of a distribution-level objective.

Every objective is a plain function `(logits, labels, ...) -> loss` on *aligned* tensors: row i of
`logits` is the model's prediction for `labels[i]` (the causal shift has already happened; see
`causal_shift` and `causal_lm_loss`). Labels equal to `IGNORE_INDEX` (-100) are not supervised:
prompt tokens, padding.

The loss is a token mean, the same reduction TRL and the Hugging Face Trainer use: the sum over
supervised tokens divided by how many there are. A batch with no supervised token gives a zero that
still has a gradient, so a training step on it is a harmless no-op rather than a crash.

This module is also the one home of the causal shift (`causal_shift`, `supervised_log_probs` for measuring,
`num_supervised`) and of the dtype in which a log-softmax runs (`upcast`). Each objective is marked
`@objective`: a call checks its tensors once; the training loop, which checks its data once before the
first step, calls the unchecked function. An objective that takes `base_logits` (asft) declares that it
anchors to a frozen base model (`needs_base_logits`).
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F

from dftlab.data import IGNORE_INDEX, check_token_ids, device_of, vocab_size_of
from dftlab.validation import check_number

REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------------------------
# The shared helpers: the dtype policy, check the inputs, read off log p(target), reduce to a token mean.
# ---------------------------------------------------------------------------------------------

def upcast(logits: torch.Tensor, *, measuring: bool = False) -> torch.Tensor:
    """The dtype in which dftlab takes a log-softmax; the one place this policy is written down.

    Training losses work in float32, or float64 if the logits already are: half precision loses the small
    probabilities DFT multiplies by. Measurements (`measuring=True`: `dftlab.train.evaluate`, `dftlab.metrics`
    and so the study) work in float64, so that sums over thousands of tokens and the gaps between close
    models are not rounding noise.
    """
    if measuring:
        return logits.double()
    return logits if logits.dtype == torch.float64 else logits.float()

def _check_float_tensor(name: str, tensor) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"`{name}` must be a torch.Tensor of floats, got {type(tensor).__name__}. "
                         f"Convert it with torch.as_tensor({name}, dtype=torch.float32).")
    if not tensor.is_floating_point():
        raise ValueError(f"`{name}` must hold floats (unnormalised log-probabilities), got dtype {tensor.dtype}. "
                         f"Pass {name}.float().")
    if tensor.dim() < 2:
        raise ValueError(f"`{name}` must have shape [N, V] or [B, T, V] (V = vocabulary size), "
                         f"got shape {tuple(tensor.shape)}.")
    if not torch.isfinite(tensor).all():
        raise ValueError(f"`{name}` contains NaN or infinite values; the model diverged or the input is corrupt. "
                         f"Lower the learning rate or check the data.")


def _check_logits_and_labels(logits, labels) -> None:
    """The checks every objective makes once per call: float logits [.., V], integer labels of shape
    logits.shape[:-1], ids inside the vocabulary or IGNORE_INDEX."""
    _check_float_tensor("logits", logits)
    if not isinstance(labels, torch.Tensor) or labels.is_floating_point() or labels.dtype == torch.bool:
        what = labels.dtype if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"`labels` must be an integer tensor of token ids, got {what}. Pass labels.long().")
    if labels.shape != logits.shape[:-1]:
        raise ValueError(f"`labels` shape {tuple(labels.shape)} does not match `logits` shape "
                         f"{tuple(logits.shape)}: labels must be logits.shape[:-1]. If these come straight from a "
                         f"causal LM, shift them first (logits[:, :-1], labels[:, 1:]) or use causal_lm_loss.")
    vocab_size = logits.shape[-1]
    supervised = labels[labels != IGNORE_INDEX]
    if ((supervised < 0) | (supervised >= vocab_size)).any():
        raise ValueError(f"`labels` has token ids outside [0, {vocab_size}) (the vocabulary of `logits`); only "
                         f"{IGNORE_INDEX} may mark unsupervised positions. Check the tokenizer matches the model.")


def objective(loss_fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
    """Make `loss_fn(logits, labels, ...)` a public objective: each call checks its tensors once, then runs it.

    The unchecked function stays available as `.unchecked`: the training loop checks its data once, before
    the first step, and then calls that, so that no step pays for a scan of the whole logits tensor.
    """
    @functools.wraps(loss_fn)
    def checked(logits, labels, *args, **kwargs):
        _check_logits_and_labels(logits, labels)
        base_logits = kwargs.get("base_logits", args[0] if args else None)
        if base_logits is not None:
            _check_float_tensor("base_logits", base_logits)
        return loss_fn(logits, labels, *args, **kwargs)

    checked.unchecked = loss_fn
    return checked


def _target_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(log p(label), mask)`, both shaped like `labels`; log p is 0 where the label is ignored."""
    vocab_size = logits.shape[-1]
    nll_per_token = F.cross_entropy(upcast(logits).reshape(-1, vocab_size), labels.reshape(-1).long(),
                                    ignore_index=IGNORE_INDEX, reduction="none")
    return -nll_per_token.view(labels.shape), labels != IGNORE_INDEX


def _reduce(per_token: torch.Tensor, mask: torch.Tensor, reduction: str) -> torch.Tensor:
    """Token mean (or sum, or nothing) over the supervised positions."""
    per_token = torch.where(mask, per_token, torch.zeros_like(per_token))
    if reduction == "none":
        return per_token
    if reduction == "sum":
        return per_token.sum()
    if reduction == "mean":
        # clamp: with no supervised token the sum is an exact 0 that still carries a (zero) gradient.
        return per_token.sum() / mask.sum().clamp(min=1)
    raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}.")


# ---------------------------------------------------------------------------------------------
# The objectives.
# ---------------------------------------------------------------------------------------------

@objective
def nll(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """SFT's loss, the negative log-likelihood (chapter 2): per token  -log p(y).

    Minimising its expectation over the data is maximum likelihood; the logit gradient is p - q.
    """
    log_p, mask = _target_log_probs(logits, labels)
    return _reduce(-log_p, mask, reduction)


@objective
def dft(logits: torch.Tensor, labels: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """Dynamic Fine-Tuning, Wu et al. 2025 (chapter 4): per token  -sg(p(y)) * log p(y).

    sg(p) * grad(-log p) = -grad p, so this climbs the expected probability E[p(y)], not E[log p(y)].
    This is the loss of TRL's `SFTConfig(loss_type="dft")`.
    """
    log_p, mask = _target_log_probs(logits, labels)
    return _reduce(-log_p.exp().detach() * log_p, mask, reduction)


@objective
def dft_floored(logits: torch.Tensor, labels: torch.Tensor, *, floor: float = 0.1,
                reduction: str = "mean") -> torch.Tensor:
    """DFT with the weight floored (chapter 5): per token  -sg(max(p(y), floor)) * log p(y).

    The floor keeps rare tokens learning; floor=0 is `dft`, floor=1 is `nll`.
    """
    floor = check_number(floor, "floor", 0.0, 1.0)
    log_p, mask = _target_log_probs(logits, labels)
    weight = log_p.exp().clamp(min=floor).detach()
    return _reduce(-weight * log_p, mask, reduction)


@objective
def power(logits: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.5,
          reduction: str = "mean") -> torch.Tensor:
    """The power family of Li et al. 2025 (chapter 5): per token  (1 - p(y)**alpha) / alpha.

    alpha -> 0 is `nll`; alpha = 1 is 1 - p, whose gradient is `dft`'s. Its logit-gradient weight is p**alpha.
    """
    alpha = check_number(alpha, "alpha", 0.0)
    log_p, mask = _target_log_probs(logits, labels)
    if alpha == 0.0:
        return _reduce(-log_p, mask, reduction)
    # p**alpha = exp(alpha log p); expm1 keeps the small-alpha limit accurate instead of 1 - (1 - tiny).
    return _reduce(-torch.expm1(alpha * log_p) / alpha, mask, reduction)


@objective
def mix(logits: torch.Tensor, labels: torch.Tensor, *, lam: float = 0.5,
        reduction: str = "mean") -> torch.Tensor:
    """A convex mix (chapter 4): per token  lam * nll + (1 - lam) * dft. lam=1 is `nll`, lam=0 is `dft`."""
    lam = check_number(lam, "lam", 0.0, 1.0)
    log_p, mask = _target_log_probs(logits, labels)
    weight = lam + (1.0 - lam) * log_p.exp().detach()
    return _reduce(-weight * log_p, mask, reduction)


@objective
def asft(logits: torch.Tensor, labels: torch.Tensor, base_logits: torch.Tensor, *, lam: float = 0.05,
         reduction: str = "mean") -> torch.Tensor:
    """Anchored SFT, Zhu et al. 2025 (chapter 5): per token  dft + lam * KL(p_base || p_model).

    The KL runs over the whole vocabulary at each supervised position and pulls the model back
    towards the frozen base model, whose logits `base_logits` are treated as constants.
    """
    lam = check_number(lam, "lam", 0.0)
    log_p, mask = _target_log_probs(logits, labels)
    if base_logits.shape != logits.shape:
        raise ValueError(f"`base_logits` shape {tuple(base_logits.shape)} must equal `logits` shape "
                         f"{tuple(logits.shape)}: run the base model on the same batch.")
    log_model = upcast(logits).log_softmax(-1)
    log_base = base_logits.detach().to(log_model.dtype).log_softmax(-1)
    kl = (log_base.exp() * (log_base - log_model)).sum(-1)
    return _reduce(-log_p.exp().detach() * log_p + lam * kl, mask, reduction)


@objective
def distribution_matching(logits: torch.Tensor, labels: torch.Tensor, *, lam: float = 1.0,
                          reduction: str = "mean") -> torch.Tensor:
    """A distribution-level objective (chapter 6): nll + lam * KL(f || p_bar) over the batch.

    RECONSTRUCTION, not the original: this is the course's own guess at the idea behind Rosmine's
    "Distribution Fine Tuning" (2026), whose algorithm, data and code are unpublished. The idea kept is
    "make the distribution of the model's outputs match the training distribution", made cheap and
    differentiable:

        f     = how often each token id is a target in this batch (the empirical unigram frequency)
        p_bar = the model's predicted next-token distribution, averaged over the same positions
        loss  = nll + lam * KL(f || p_bar) = nll + lam * sum_v f_v log(f_v / p_bar_v)

    The penalty looks at the batch as a whole: a model that says "Once" too often *overall* pays, even
    when each single prediction looks fine. It keeps maximum likelihood's optimum only approximately. For
    fixed contexts the expected penalty is a constant minus sum_v q_bar_v log p_bar_v, which p = q
    minimises (Gibbs' inequality). Under teacher forcing, though, each target is also part of the context
    of the positions after it, and the penalty acts on the batch's average prediction, which couples the
    positions: the expected gradient at p = q is then not exactly zero, and the shift shrinks as the batch
    grows. On the way, it adds a direct pull on the aggregate token frequencies.

    The penalty is one number per batch. reduction="mean" returns nll_mean + lam * penalty; "sum" and
    "none" spread the penalty evenly over the supervised tokens, so that sum / count equals the mean.
    """
    lam = check_number(lam, "lam", 0.0)
    log_p, mask = _target_log_probs(logits, labels)
    count = int(mask.sum())
    if count == 0:  # nothing supervised: a zero that still has a (zero) gradient
        penalty = logits.sum() * 0.0
    else:
        flat_logits = logits.reshape(-1, logits.shape[-1])[mask.reshape(-1)]
        log_model = upcast(flat_logits).log_softmax(-1)
        log_mean_model = torch.logsumexp(log_model, dim=0) - math.log(count)  # log p_bar, shape [V]
        targets = labels[mask].long()
        frequency = torch.bincount(targets, minlength=logits.shape[-1]).to(log_model.dtype) / count
        seen = frequency > 0  # 0 log 0 = 0: unseen tokens add nothing
        penalty = (frequency[seen] * (frequency[seen].log() - log_mean_model[seen])).sum()
    per_token = -log_p + lam * penalty
    return _reduce(per_token, mask, reduction)


OBJECTIVES: dict[str, Callable[..., torch.Tensor]] = {
    "nll": nll, "dft": dft, "dft_floored": dft_floored, "power": power, "mix": mix, "asft": asft,
    "distribution_matching": distribution_matching,
}


def get_objective(objective: str | Callable) -> Callable[..., torch.Tensor]:
    """Look an objective up by name in `OBJECTIVES`; a callable is returned as it is."""
    if callable(objective):
        return objective
    if objective not in OBJECTIVES:
        raise ValueError(f"Unknown objective {objective!r}. Valid names: {sorted(OBJECTIVES)}, "
                         f"or pass a function (logits, labels, reduction=...) -> loss.")
    return OBJECTIVES[objective]


@functools.lru_cache(maxsize=None)
def _keywords_taken(loss_fn: Callable) -> tuple[str, ...] | None:
    """The keywords an objective takes beyond (logits, labels), `base_logits` and `reduction`; None if any
    keyword goes (a **kwargs signature, or none readable). Cached: causal_lm_loss asks on every training step."""
    try:
        parameters = inspect.signature(loss_fn).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return tuple(name for name in list(parameters)[2:] if name not in ("base_logits", "reduction"))


def needs_base_logits(objective: str | Callable) -> bool:
    """Whether `objective` anchors to a frozen base model, which it declares by taking `base_logits` (asft).

    The one test for it: `causal_lm_loss` then runs the base model, `dftlab.train` keeps a frozen copy of the
    starting model, and a Trainer's `compute_loss_func`, which never sees a base model, refuses it.
    """
    return "base_logits" in _parameter_names(get_objective(objective))


@functools.lru_cache(maxsize=None)
def _parameter_names(loss_fn: Callable) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(loss_fn).parameters)
    except (TypeError, ValueError):
        return ()


def check_objective_kwargs(objective: str | Callable, objective_kwargs: Mapping) -> None:
    """Raise ValueError naming any keyword that `objective` does not take (e.g. a typo such as `flor=0.1`).

    `logits`, `labels`, `base_logits` and `reduction` are filled in by the caller, not by `objective_kwargs`.
    """
    loss_fn = get_objective(objective)
    taken = _keywords_taken(loss_fn)
    if taken is None:
        return
    unknown = sorted(set(objective_kwargs) - set(taken))
    if unknown:
        name = getattr(loss_fn, "__name__", repr(loss_fn))
        raise ValueError(f"objective_kwargs has {unknown}, which objective {name!r} does not take; "
                         f"it takes {list(taken) if taken else 'no keywords'}. Check the spelling.")


# ---------------------------------------------------------------------------------------------
# Plugging the objectives into a causal language model.
# ---------------------------------------------------------------------------------------------

def causal_shift(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Align a causal LM's logits [.., T, V] with its labels [.., T] (chapter 3): position t predicts token
    t + 1, so drop the last prediction and the first label, leaving T - 1 positions of each."""
    return logits[..., :-1, :], labels[..., 1:]


def num_supervised(labels: torch.Tensor) -> int:
    """How many targets of unshifted `labels` [B, T] a causal LM is scored on: those not IGNORE_INDEX after
    `causal_shift` (which needs only the labels' shape from the logits, so a [B, T, 1] stand-in will do)."""
    _, targets = causal_shift(labels[..., None], labels)
    return int((targets != IGNORE_INDEX).sum())


def supervised_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For measuring a causal LM: log-probabilities [K, V] at the K positions whose (shifted) label is supervised,
    their K target ids, and the [B, T - 1] mask that says where they sit (chapter 3).

    `logits` [B, T, V] and `labels` [B, T] come straight from the model and the batch; `causal_shift` aligns
    them. Unsupervised positions are dropped before the softmax, which keeps memory at K x V rather than
    B x T x V, and the softmax runs in float64 (`upcast(measuring=True)`).
    """
    logits, labels = causal_shift(logits, labels.to(logits.device))
    supervised = labels != IGNORE_INDEX
    return upcast(logits[supervised], measuring=True).log_softmax(-1), labels[supervised], supervised


def _shifted_loss(loss_fn, logits, labels, num_items_in_batch=None, **objective_kwargs):
    """Shift like Hugging Face (position t predicts token t+1), then token-mean.

    With `num_items_in_batch` (the supervised-token count of the whole accumulated batch), the sum is
    divided by it instead, so that gradient accumulation gives the same update as one big batch.
    """
    if logits.dim() != 3 or labels.dim() != 2:
        raise ValueError(f"A causal LM loss needs logits [B, T, V] and labels [B, T], got "
                         f"{tuple(logits.shape)} and {tuple(labels.shape)}.")
    logits, labels = causal_shift(logits, labels.to(logits.device))
    if num_items_in_batch is None:
        return loss_fn(logits, labels, **objective_kwargs)
    total = loss_fn(logits, labels, reduction="sum", **objective_kwargs)
    return total / torch.as_tensor(num_items_in_batch, device=total.device).clamp(min=1)


def causal_lm_loss(model, batch: Mapping, objective: str | Callable = "nll", *, base_model=None,
                   num_items_in_batch=None, check: bool = True, **objective_kwargs) -> torch.Tensor:
    """The loss of `model` on `batch` under `objective` (chapters 2 and 4).

    `batch` holds `input_ids`, optionally `attention_mask` and `labels`; they are moved to the model's device.
    Without `labels`, every real (non-padding) token is supervised. An objective that takes `base_logits`
    (asft) needs the frozen `base_model`. `check=False` skips the input checks: for a loop that checked its
    data once before its first step (`dftlab.train.train`).
    """
    loss_fn = get_objective(objective)
    if check:
        if "input_ids" not in batch:
            raise ValueError(f"`batch` needs an 'input_ids' entry; it has {sorted(batch)}.")
        check_token_ids(batch["input_ids"], vocab_size_of(model))
        check_objective_kwargs(loss_fn, objective_kwargs)
        if needs_base_logits(loss_fn) and base_model is None:
            raise ValueError(f"objective {loss_fn.__name__!r} anchors to a base model: pass "
                             f"base_model=<the frozen starting model>.")
        if base_model is not None and not needs_base_logits(loss_fn):
            raise ValueError(f"base_model= is only used by an objective that takes base_logits (asft), "
                             f"not by {getattr(loss_fn, '__name__', loss_fn)!r}.")
    else:
        loss_fn = getattr(loss_fn, "unchecked", loss_fn)
    device = device_of(model)
    input_ids = batch["input_ids"].to(device)
    attention_mask = batch.get("attention_mask")
    attention_mask = attention_mask.to(device) if attention_mask is not None else None
    labels = batch.get("labels")
    if labels is None:
        labels = input_ids if attention_mask is None else input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    if base_model is not None:
        with torch.no_grad():
            base_logits = base_model(input_ids=input_ids, attention_mask=attention_mask).logits[:, :-1]
        objective_kwargs["base_logits"] = base_logits
    return _shifted_loss(loss_fn, logits, labels, num_items_in_batch, **objective_kwargs)


def make_compute_loss_func(objective: str | Callable, **objective_kwargs) -> Callable:
    """A `compute_loss_func(outputs, labels, num_items_in_batch=None)` for the HF Trainer or TRL's SFTTrainer.

    The Trainer hands over the model outputs and the *unshifted* labels; the returned function shifts,
    applies `objective`, and divides by `num_items_in_batch` when the Trainer counts tokens across
    gradient accumulation (chapter 9 uses it to train with any objective through TRL).
    """
    loss_fn = get_objective(objective)
    check_objective_kwargs(loss_fn, objective_kwargs)
    if needs_base_logits(loss_fn):
        raise ValueError(f"{loss_fn.__name__!r} needs the base model's logits, which a Trainer's compute_loss_func "
                         f"never sees. Use causal_lm_loss(model, batch, {loss_fn.__name__!r}, base_model=...) in a "
                         f"custom training loop.")

    def compute_loss_func(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, Mapping) else getattr(outputs, "logits", outputs[0])
        if labels is None:
            raise ValueError("compute_loss_func got labels=None: the batch must carry 'labels'.")
        return _shifted_loss(loss_fn, logits, labels, num_items_in_batch, **objective_kwargs)

    compute_loss_func.__name__ = f"compute_loss_{getattr(loss_fn, '__name__', 'objective')}"
    return compute_loss_func
