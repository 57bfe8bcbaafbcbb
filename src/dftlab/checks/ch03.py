"""Chapter 3, supervised fine-tuning: the exercises on prompt masking, the causal shift and which tokens
SFT supervises and learns.

Registered by `dftlab.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import torch

from dftlab import objectives
from dftlab.checks.engine import (IGNORE_INDEX, FunctionExercise, PredictionExercise, _AnswerProblem, _as_tensor,
                                  _Case, _Mistake, _near, _random_logits, _show)
from dftlab.data import mask_prompt


def _labels(value, where: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        try:
            value = torch.tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise _AnswerProblem(f"your function returned a list that is not a list of ints (on {where}).") from None
    result = _as_tensor(value, where)
    if result.is_floating_point():
        raise _AnswerProblem(f"your labels are floats (on {where}); token ids and -100 are integers: keep the "
                             f"dtype of `input_ids`.")
    return result


def _mask_cases(g):
    ids = torch.tensor([11, 12, 13, 14, 15])
    return [
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 2", (ids, 2)),
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 0 (no prompt)", (ids, 0)),
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 5 (all prompt)", (ids, 5)),
        _Case("12 random ids, prompt_length = 7", (torch.randint(0, 500, (12,), generator=g), 7)),
        _Case("9 random ids, prompt_length = 1", (torch.randint(0, 500, (9,), generator=g), 1)),
    ]


def _masked(ids, start, stop, value=IGNORE_INDEX):
    labels = ids.clone()
    labels[max(start, 0):max(stop, 0)] = value
    return labels


CH03_MASK_PROMPT = FunctionExercise(
    "ch03.mask_prompt", "mask_prompt(input_ids, prompt_length)",
    "Labels for a 1-D tensor of input ids with the first prompt_length positions set to -100.",
    reference=mask_prompt, cases=_mask_cases, convert=_labels,
    mutating_hint="start from `labels = input_ids.clone()`",
    mistakes=(
        _Mistake("masked one token too many (off by one): positions 0 .. prompt_length - 1 are the prompt, "
                 "so the first completion token must stay a label.",
                 lambda ids, n: _masked(ids, 0, n + 1)),
        _Mistake("masked one token too few (off by one): all prompt_length prompt positions must become -100.",
                 lambda ids, n: _masked(ids, 0, n - 1)),
        _Mistake("forgot to mask the prompt: set the first prompt_length labels to -100.",
                 lambda ids, n: ids.clone()),
        _Mistake("you masked the completion instead of the prompt: the model must learn the completion.",
                 lambda ids, n: _masked(ids, n, len(ids))),
        _Mistake("you masked with 0, which is a real token id: the ignore index is -100.",
                 lambda ids, n: _masked(ids, 0, n, 0)),
        _Mistake("you masked with -1: the ignore index of the loss is -100.",
                 lambda ids, n: _masked(ids, 0, n, -1)),
    ),
)


def _shift_result(value, where: str):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _AnswerProblem(f"your function should return a pair `(logits, labels)`, got {_show(value)} "
                             f"(on {where}).")
    return _as_tensor(value[0], where), _as_tensor(value[1], where)


def _shift_cases(g):
    return [
        _Case("logits of shape (4, 3), labels = [5, 6, 7, 8]", (_random_logits(g, 4, 3), torch.tensor([5, 6, 7, 8]))),
        _Case("logits of shape (2, 5), labels = [1, 2]", (_random_logits(g, 2, 5), torch.tensor([1, 2]))),
        _Case("a batch: logits (3, 4, 5), labels (3, 4)",
              (_random_logits(g, 3, 4, 5), torch.randint(0, 5, (3, 4), generator=g))),
    ]


CH03_SHIFT = FunctionExercise(
    "ch03.shift_for_causal_lm", "shift_for_causal_lm(logits, labels)",
    "Align a causal LM's logits [.., T, V] with labels [.., T]: return (logits, labels) with T - 1 positions.",
    reference=objectives.causal_shift, cases=_shift_cases, convert=_shift_result,
    mistakes=(
        _Mistake("you did not shift: the logits at position t predict token t + 1, not token t.",
                 lambda z, y: (z, y)),
        _Mistake("shifted the wrong way: drop the *last* logit and the *first* label "
                 "(`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[..., 1:, :], y[..., :-1])),
        _Mistake("you dropped the last position of both: the labels must move one step left, `labels[..., 1:]`.",
                 lambda z, y: (z[..., :-1, :], y[..., :-1])),
        _Mistake("you dropped the first position of both: the logits must lose their *last* position.",
                 lambda z, y: (z[..., 1:, :], y[..., 1:])),
        _Mistake("you shifted along the batch axis: shift the time axis (`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[:-1], y[1:])),
    ),
)


FUNCTIONS = (CH03_MASK_PROMPT, CH03_SHIFT)

PREDICTIONS = (
    PredictionExercise(
        "ch03.supervised_token_count",
        "Predict how many labels in a padded batch of three prompt/completion examples are supervised (not -100).",
        kind="number", tolerance=0.0,
        misconceptions=((_near(18, 0), "You counted every real token: prompt tokens are masked to -100 too."),
                        (_near(21, 0), "You counted every position of the padded batch (3 x 7): padding and prompt "
                                       "positions carry -100.")),
        lesson="Only completion tokens are supervised (EOS included); prompt tokens and padding are -100, so the "
               "token-mean loss divides by the number of completion tokens."),
    PredictionExercise(
        "ch03.sft_matches_frequency",
        "Predict p('sunny') after SFT on 10 demonstrations (6 'sunny', 3 'rainy', 1 'grey') for the same prompt.",
        kind="number", tolerance=0.05,
        misconceptions=((_near(1.0, 0.05), "SFT does not pick the most common completion: minimising the NLL "
                                           "matches the frequencies (chapter 4 shows which loss *does* pick the mode)."),),
        lesson="SFT is maximum likelihood on the demonstrations, and the MLE of a categorical is the empirical "
               "frequency: p('sunny') goes to 6/10."),
)
