"""Chapter 4, Dynamic Fine-Tuning: the exercises on the DFT loss, its logit gradient, its fixed point from a start that
is not uniform, its loss ratio to the NLL, the expected calibration error that shows its over-confidence, and a
fine-tune of tiny-gpt2 with the learner's own loss (the opener share and the validation NLL it leaves).

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from dftlab import metrics, objectives, toy
from dftlab.course.checks.ch02 import loss_cases, per_token_nll
from dftlab.course.checks.engine import (IGNORE_INDEX, Case, FunctionExercise, Mistake, PredictionExercise,
                                         float_result, near, probs_of, random_probs)


def _dft_terms(logits, targets, weight: Callable):
    """Per-token weight(p) * -log p on supervised positions, and the supervised mask."""
    mask = targets != IGNORE_INDEX
    log_p = -per_token_nll(logits, targets)
    return torch.where(mask, -weight(log_p.exp()) * log_p, torch.zeros_like(log_p)), mask


def _dft_variant(weight: Callable, divide_by_all: bool = False, total: bool = False):
    def loss(logits, targets):
        terms, mask = _dft_terms(logits, targets, weight)
        if total:
            return terms.sum()
        return terms.sum() / (len(targets) if divide_by_all else mask.sum().clamp(min=1))
    return loss


def _dft_minus_p(logits, targets):
    mask = targets != IGNORE_INDEX
    p = torch.softmax(logits, -1).gather(-1, targets.clamp(min=0)[:, None])[:, 0]
    return -(p * mask).sum() / mask.sum().clamp(min=1)


CH04_DFT_LOSS = FunctionExercise(
    "ch04.dft_loss", "dft_loss(logits, targets)",
    "Dynamic Fine-Tuning loss: the token mean of -sg(p) log p over targets that are not -100; a scalar tensor.",
    reference=objectives.dft, cases=lambda g: loss_cases(g, with_ignored=True), check_gradient=True,
    mistakes=(
        Mistake("this is the plain NLL (the SFT loss): DFT weights each token's -log p by sg(p), its own probability.",
                 _dft_variant(lambda p: torch.ones_like(p))),
        Mistake("you summed instead of averaging: divide by the number of supervised tokens.",
                 _dft_variant(lambda p: p.detach(), total=True)),
        Mistake("included ignore_index targets in the mean: you divided by all N positions, including those whose "
                 "target is -100. Divide by the number of supervised tokens.",
                 _dft_variant(lambda p: p.detach(), divide_by_all=True)),
        Mistake("the weight is 1 - p instead of p: DFT up-weights tokens the model already finds likely.",
                 _dft_variant(lambda p: (1 - p).detach())),
        Mistake("you returned -p, which has the same gradient as DFT but not its value: "
                 "multiply -log p by the detached p.",
                 _dft_minus_p),
        Mistake("the sign is flipped: the loss is -sg(p) log p, which is never negative.",
                 lambda z, y: -objectives.dft(z, y)),
        Mistake("the value is right but the gradient does not match: did you detach p? The weight must be a "
                 "constant (`p.detach()`); otherwise autograd also differentiates through it.",
                 _dft_variant(lambda p: p)),
    ),
)


def _gradient_cases(g):
    return [
        Case("probs = [0.5, 0.25, 0.25], target = 1", (probs_of([0.5, 0.25, 0.25]), 1)),
        Case("uniform probs over 4 tokens, target = 0", (torch.full((4,), 0.25), 0)),
        Case("probs = [0.97, 0.01, 0.01, 0.01], target = 0 (a confident right answer)",
              (probs_of([0.97, 0.01, 0.01, 0.01]), 0)),
        Case("probs = [0.97, 0.01, 0.01, 0.01], target = 2 (an unlikely target)",
              (probs_of([0.97, 0.01, 0.01, 0.01]), 2)),
        Case("random probs over 6 tokens, target = 4", (random_probs(g, 6), 4)),
    ]


def _one_hot(probs, target):
    return F.one_hot(torch.tensor(target), probs.shape[-1]).to(probs.dtype)


CH04_DFT_GRADIENT = FunctionExercise(
    "ch04.dft_logit_gradient", "dft_logit_gradient(probs, target)",
    "The gradient in the logits of the one-token DFT loss -sg(p_y) log p_y, at probabilities probs [V].",
    # toy.logit_gradient takes the target as a distribution q; a one-hot q gives the one-token gradient.
    reference=lambda probs, target: toy.logit_gradient(probs, _one_hot(probs, target), "dft"),
    cases=_gradient_cases,
    mistakes=(
        Mistake("this is the cross-entropy gradient p - e_y: DFT multiplies it by the constant weight p_y.",
                 lambda p, y: p - _one_hot(p, y)),
        Mistake("the sign is flipped: the gradient of the loss is p_y (p - e_y); gradient *descent* then moves "
                 "against it.",
                 lambda p, y: p[y] * (_one_hot(p, y) - p)),
        Mistake("the weight is 1 - p_y: DFT's weight is p_y itself.",
                 lambda p, y: (1 - p[y]) * (p - _one_hot(p, y))),
        Mistake("you differentiated through the weight too (no stop-gradient): that is the gradient of "
                 "-p_y log p_y, (1 + log p_y) p_y (p - e_y). The weight sg(p_y) is a constant.",
                 lambda p, y: (1 + torch.log(p[y])) * p[y] * (p - _one_hot(p, y))),
        Mistake("you returned -p_y e_y, the gradient in the *probabilities*: the exercise asks for the gradient "
                 "in the logits, through the softmax.",
                 lambda p, y: -p[y] * _one_hot(p, y)),
    ),
)


DFT_TOY_TARGET = (0.40, 0.25, 0.15, 0.12, 0.08)  # q of the worked example in chapter 4


def _ece_cases(g):
    confidence = 0.2 + 0.8 * torch.rand(400, generator=g, dtype=torch.float64)
    right_as_often = torch.rand(400, generator=g, dtype=torch.float64) < confidence
    certain = torch.ones(50, dtype=torch.float64)
    right_sometimes = torch.rand(50, generator=g, dtype=torch.float64) < 0.8
    return [
        Case("confidence = [0.05, 0.15, 0.15, 0.55, 0.95, 1.0], correct = [F, T, F, T, T, F], bins = 10",
              (torch.tensor([0.05, 0.15, 0.15, 0.55, 0.95, 1.0], dtype=torch.float64),
               torch.tensor([False, True, False, True, True, False]), 10)),
        Case("confidence = [0.3, 0.9], correct = [T, F], bins = 2 (one under-, one over-confident bin)",
              (torch.tensor([0.3, 0.9], dtype=torch.float64), torch.tensor([True, False]), 2)),
        Case("50 predictions all at confidence 1, about 80% right, bins = 10 (a DFT model)",
              (certain, right_sometimes, 10)),
        Case("400 random predictions right as often as their confidence, bins = 10", (confidence, right_as_often, 10)),
        Case("the same 400 predictions, bins = 4", (confidence, right_as_often, 4)),
    ]


def _ece_variant(weighted=True, absolute=True, drop_certain=False, one_bin=False):
    def ece(confidence, correct, bins):
        confidence = np.asarray(confidence, dtype=np.float64)
        correct = np.asarray(correct, dtype=np.float64)
        if one_bin:
            return abs(correct.mean() - confidence.mean())
        index = np.floor(confidence * bins).astype(int)
        keep = index < bins if drop_certain else np.ones(len(index), dtype=bool)
        index = np.minimum(index, bins - 1)
        gaps, counts = [], []
        for b in range(bins):
            inside = keep & (index == b)
            if inside.any():
                gap = correct[inside].mean() - confidence[inside].mean()
                gaps.append(abs(gap) if absolute else gap)
                counts.append(inside.sum())
        gaps, counts = np.array(gaps), np.array(counts, dtype=np.float64)
        if not len(counts):
            return float("nan")
        return float((gaps * counts).sum() / counts.sum()) if weighted else float(gaps.mean())
    return ece


CH04_ECE = FunctionExercise(
    "ch04.expected_calibration_error", "expected_calibration_error(confidence, correct, bins)",
    "The expected calibration error: split [0, 1] into `bins` equal bins of confidence (a confidence of 1 in the last "
    "one), and average |accuracy - mean confidence| over the non-empty bins, weighted by their share of the "
    "predictions; one number.",
    reference=lambda confidence, correct, bins: metrics.expected_calibration_error(confidence, correct, bins),
    cases=_ece_cases, convert=float_result,
    mistakes=(
        Mistake("you averaged the bins' gaps with equal weights: weight each bin by its share of the predictions, so "
                 "that a bin of two predictions counts less than a bin of a thousand.", _ece_variant(weighted=False)),
        Mistake("predictions with a confidence of exactly 1 fell outside the last bin (floor(1 * bins) = bins): put "
                 "them in the last bin, e.g. with min(index, bins - 1). A DFT model puts almost all its predictions "
                 "there.", _ece_variant(drop_certain=True)),
        Mistake("you compared the overall accuracy with the overall confidence (or, which comes to the same, kept the "
                 "sign of each bin's gap): an over-confident bin and an under-confident one cancel. Take "
                 "|accuracy - confidence| bin by bin.", _ece_variant(one_bin=True)),
        Mistake("you kept the sign of each bin's gap, so an over-confident bin and an under-confident one cancel: "
                 "take |accuracy - confidence|.", _ece_variant(absolute=False)),
    ),
)


FUNCTIONS = (CH04_DFT_LOSS, CH04_DFT_GRADIENT, CH04_ECE)

PREDICTIONS = (
    PredictionExercise(
        "ch04.dft_fixed_point",
        "Predict the distribution that DFT reaches when fitted to q = (0.40, 0.25, 0.15, 0.12, 0.08) from a start "
        "p0 = (0.05, 0.05, 0.05, 0.05, 0.80) that prefers q's least likely token.",
        kind="distribution", tolerance=0.05,
        misconceptions=((lambda v: float(np.abs(v - np.asarray(DFT_TOY_TARGET)).max()) <= 0.05,
                         "That is the data distribution q, where cross-entropy ends. DFT's gradient is the gradient of "
                         "-E_q[p(y)], a linear function of p, whose maximum on the simplex is a vertex."),
                        (lambda v: float(np.argmax(v)) == 4,
                         "DFT does not keep the start's favourite: its step on each token is scaled by the model's "
                         "probability, but token 4's q (0.08) is below the average sum_y q_y p_y, so it loses mass "
                         "while the data's mode gains."),
                        (lambda v: float(np.abs(v - 0.2).max()) <= 0.05,
                         "Uniform is not where DFT stops; it moves on to a vertex.")),
        lesson="DFT maximises the expected probability sum_y q_y p_y, not the log-likelihood; that linear score is "
               "maximised by putting all the mass on the mode of q, and its gradient does not depend on where the fit "
               "started. From a start that gives the mode some probability, the fit climbs to (1, 0, 0, 0, 0) "
               "like the fit from uniform; the start changes how fast it gets there (chapter 5)."),
    PredictionExercise(
        "ch04.dft_loss_ratio",
        "Predict DFT loss / NLL loss on a batch where the model gives every target probability 0.1.",
        kind="number", tolerance=0.02,
        misconceptions=((near(1.0, 0.05), "The two losses are not equal: DFT multiplies each token's NLL by p."),
                        (near(10.0, 0.5), "The ratio is the other way up: DFT's loss is the smaller one.")),
        lesson="Each token's DFT loss is p times its NLL, so with p = 0.1 everywhere the ratio is exactly 0.1. "
               "This is why users see DFT loss values 10-20x smaller than cross-entropy: do not compare them directly."),
    PredictionExercise(
        "ch04.dft_opener_share",
        "Predict the share of 40 stories, sampled at T = 1 from tiny-gpt2 after 40 steps of DFT, that open with "
        "'Once upon a time,' (the data's share is about a third).",
        kind="number", tolerance=0.1,
        misconceptions=((near(0.33, 0.08),
                         "That is the data's share, where maximum likelihood (SFT) aims. DFT does not match the data's "
                         "frequencies: it pushes each choice towards its most likely option."),
                        (near(0.1, 0.05), "That is about the base model's share: DFT moves it, and far.")),
        lesson="The opener is one next-token choice, and DFT does to it what it did to the toy of exercise 4.3: "
               "'Once upon a time,', the most likely opener, takes (nearly) every story, far beyond its share in "
               "the data. Every other choice of the story collapses the same way, which is why the samples look "
               "alike."),
    PredictionExercise(
        "ch04.dft_valid_nll",
        "Predict whether 40 steps of DFT leave the validation NLL of tiny-gpt2 higher or lower than before training.",
        kind="choice", choices=("higher", "lower"),
        misconceptions=((lambda v: v == "lower",
                         "Training lowers the loss it optimises, and DFT's loss does fall; but the NLL is another "
                         "measure, and DFT does not minimise it."),),
        lesson="The validation NLL rises while the training loss falls. DFT makes the model almost certain of its "
               "favourite next token, so every held-out token that is not the favourite gets almost no probability, "
               "and the NLL charges -log p for each of them. Users of the DFT code report the same rise."),
)
