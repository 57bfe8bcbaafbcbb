"""Chapter 9, scaling up: how a Trainer weighs the tokens of an optimiser step that gradient accumulation splits
into micro-batches. The predictions are measured with `dftlab.objectives.make_compute_loss_func`, the adapter the
chapter prints; the function exercise asks for the step's loss from per-token losses.

Registered by `dftlab.course.checks`.
"""
from __future__ import annotations

import torch

from dftlab.course.checks.engine import (IGNORE_INDEX, FunctionExercise, PredictionExercise, Case, float_result,
                                  Mistake)


# ---------------------------------------------------------------------------------------------
# 9.2 the loss of one optimiser step, from its micro-batches' per-token losses.
# ---------------------------------------------------------------------------------------------

def _supervised(token_losses, labels):
    return [losses[labels_ != IGNORE_INDEX] for losses, labels_ in zip(token_losses, labels)]


def _step_loss(token_losses, labels):
    """The mean over every supervised token of the step, as one big batch gives it."""
    return torch.cat(_supervised(token_losses, labels)).mean()


def _mean_of_means(token_losses, labels):
    return torch.stack([kept.mean() for kept in _supervised(token_losses, labels)]).mean()


def _mean_over_all_positions(token_losses, labels):
    return torch.cat(list(token_losses)).mean()


def _sum_only(token_losses, labels):
    return torch.cat(_supervised(token_losses, labels)).sum()


def _micro_batches(g, lengths, prompt_lengths):
    losses, labels = [], []
    for length, prompt in zip(lengths, prompt_lengths):
        losses.append(torch.rand(length, generator=g, dtype=torch.float64) * 4)
        row = torch.randint(0, 50, (length,), generator=g)
        row[:prompt] = IGNORE_INDEX
        labels.append(row)
    return losses, labels


def _step_cases(g):
    by_hand = ([torch.tensor([1.0, 2.0, 3.0]), torch.tensor([5.0])],
               [torch.tensor([IGNORE_INDEX, 7, 8]), torch.tensor([9])])
    return [
        Case("by hand: losses [1, 2, 3] with labels [-100, 7, 8], and [5] with labels [9] (answer 10/3)", by_hand),
        Case("one micro-batch of 8 tokens, the first 3 masked", _micro_batches(g, [8], [3])),
        Case("two micro-batches, 10 and 90 supervised tokens", _micro_batches(g, [15, 95], [5, 5])),
        Case("three micro-batches of different lengths", _micro_batches(g, [6, 30, 12], [2, 10, 0])),
    ]


CH09_STEP_LOSS = FunctionExercise(
    "ch09.step_loss", "step_loss(token_losses, labels)",
    "The loss of one optimiser step split into micro-batches: token_losses and labels are lists with one 1-D tensor "
    "per micro-batch (labels -100 where nothing is supervised); return the mean over every supervised token of the "
    "step, as one big batch would give it.",
    reference=_step_loss, cases=_step_cases, convert=float_result,
    mistakes=(
        Mistake("you averaged each micro-batch's mean: a short micro-batch's tokens then count for more than a long "
                 "one's. Add up the supervised losses of the whole step and divide once, by the step's count of "
                 "supervised tokens.", _mean_of_means),
        Mistake("you averaged over every position, the masked ones too: leave out the positions labelled -100 "
                 "before you add up or count.", _mean_over_all_positions),
        Mistake("you returned the sum of the supervised losses: divide it by how many there are.", _sum_only),
    ),
)

FUNCTIONS = (CH09_STEP_LOSS,)

PREDICTIONS = (
    PredictionExercise(
        "ch09.short_micro_batch_weight",
        "Predict how many times as much one token of a 10-token micro-batch counts, beside a 90-token micro-batch "
        "in the same optimiser step, when each micro-batch's loss is its own mean and the step averages the two "
        "means, compared with one big batch of all 100 tokens.",
        kind="number", tolerance=0.25,
        misconceptions=((lambda v: abs(v - 1) <= 0.25,
                         "A mean is a mean, but of what: each micro-batch's mean gives its 10 tokens half the step "
                         "between them, where one big batch gives them a tenth."),
                        (lambda v: v < 1,
                         "It is the other way round: the short micro-batch's few tokens share a whole micro-batch's "
                         "half of the step, so each counts for more, not less.")),
        lesson="Five times: under the mean of means each of the 10 tokens carries 1/2 x 1/10 = 1/20 of the step, "
               "against 1/100 in one big batch, and each of the 90 carries 1/180, about half its fair share. This is "
               "why the Trainer passes num_items_in_batch, the step's count of supervised tokens, and divides every "
               "micro-batch's summed loss by it. With stories of very different lengths, averaging per micro-batch "
               "would quietly train the most on the shortest completions."),
    PredictionExercise(
        "ch09.equal_micro_batches",
        "Predict whether the mean of the micro-batches' means gives the same gradient as one big batch when every "
        "micro-batch holds the same number of supervised tokens: 'yes' or 'no'.",
        kind="choice", choices=("yes", "no"),
        misconceptions=((lambda v: v == "no",
                         "With equal counts n in each of m micro-batches, every token carries 1/m x 1/n of the step "
                         "either way: the two ways differ only when the counts differ."),),
        lesson="Yes: with equal counts every token carries the same share either way, so the two gradients agree to "
               "rounding. The weighting only goes wrong when micro-batches hold different numbers of supervised "
               "tokens, which is the rule with real text, where completions differ in length."),
)
