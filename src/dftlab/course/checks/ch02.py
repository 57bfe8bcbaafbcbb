"""Chapter 2, maximum likelihood: the exercises on the categorical MLE, the NLL loss, KL divergence,
a uniform model's NLL, the bigram MLE and how its KL grows with the vocabulary, forward against reverse KL, and
what gradient descent on the NLL learns from a small sample.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import math

import numpy as np

import torch
import torch.nn.functional as F

from dftlab import distributions, objectives
from dftlab.course.checks.engine import (IGNORE_INDEX, FunctionExercise, PredictionExercise, Case, Mistake, near,
                                  probs_of, random_logits, random_probs, random_targets)


def _categorical_mle(samples, vocab_size):
    """The maximum-likelihood categorical distribution: the empirical frequency of each token."""
    return torch.bincount(samples, minlength=vocab_size).double() / len(samples)


def _mle_cases(g):
    return [
        Case("samples = [0, 0, 1, 2], vocab_size = 3", (torch.tensor([0, 0, 1, 2]), 3)),
        Case("samples = [2, 2, 2], vocab_size = 5 (tokens never seen)", (torch.tensor([2, 2, 2]), 5)),
        Case("200 random samples, vocab_size = 6", (torch.randint(0, 6, (200,), generator=g), 6)),
        Case("50 random samples of tokens 0-3, vocab_size = 10", (torch.randint(0, 4, (50,), generator=g), 10)),
    ]


CH02_CATEGORICAL_MLE = FunctionExercise(
    "ch02.categorical_mle", "categorical_mle(samples, vocab_size)",
    "The maximum-likelihood categorical distribution [vocab_size] for a 1-D tensor of token ids.",
    reference=_categorical_mle, cases=_mle_cases,
    mistakes=(
        Mistake("you returned counts: the MLE is the *frequency*, count / number of samples.",
                 lambda s, v: torch.bincount(s, minlength=v).double()),
        Mistake("you smoothed the counts (add-one): that is a useful prior, but the MLE is the raw frequency, "
                 "which gives unseen tokens probability 0.",
                 lambda s, v: (torch.bincount(s, minlength=v).double() + 1) / (len(s) + v)),
        Mistake("your result has one entry per token *seen*, not per token in the vocabulary: "
                 "use `torch.bincount(samples, minlength=vocab_size)`.",
                 lambda s, v: torch.bincount(s).double() / len(s)),
        Mistake("you returned the uniform distribution: the MLE depends on the samples.",
                 lambda s, v: torch.full((v,), 1.0 / v)),
    ),
)


def loss_cases(g, with_ignored: bool):
    hand = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    cases = [
        Case("logits = [[0, 0], [ln 3, 0]], targets = [0, 0]", (hand, torch.tensor([0, 0]))),
        Case("uniform logits of shape (4, 5)", (torch.zeros(4, 5), torch.tensor([0, 1, 2, 4]))),
        Case("confident logits (one logit is 8)", (8.0 * F.one_hot(torch.tensor([1, 2, 0]), 4).float(),
                                                   torch.tensor([1, 0, 0]))),
        Case("random logits of shape (8, 10)", (random_logits(g, 8, 10), random_targets(g, 8, 10))),
        Case("random logits of shape (1, 3)", (random_logits(g, 1, 3), random_targets(g, 1, 3))),
    ]
    if with_ignored:
        hint = "Positions whose target is -100 (ignore_index) must be left out."
        cases += [
            Case("logits = [[0, 0], [ln 3, 0]], targets = [0, -100]", (hand, torch.tensor([0, IGNORE_INDEX])), hint),
            Case("random logits of shape (10, 6) with 4 targets set to -100",
                  (random_logits(g, 10, 6), random_targets(g, 10, 6, ignored=4)), hint),
        ]
    return cases


def per_token_nll(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none", ignore_index=IGNORE_INDEX)


CH02_NLL_LOSS = FunctionExercise(
    "ch02.nll_loss", "nll_loss(logits, targets)",
    "Mean negative log-likelihood (nats per token) of targets [N] under logits [N, V]; a scalar tensor.",
    reference=objectives.nll, cases=lambda g: loss_cases(g, with_ignored=False), check_gradient=True,
    mistakes=(
        Mistake("you summed instead of averaging: the loss is the *mean* over the N tokens.",
                 lambda z, y: per_token_nll(z, y).sum()),
        Mistake("the sign is flipped: the loss is -log p(target), which is never negative.",
                 lambda z, y: -per_token_nll(z, y).mean()),
        Mistake("you used the raw logit z_y instead of log p_y: apply `log_softmax` over the vocabulary first.",
                 lambda z, y: -z.gather(-1, y[:, None]).mean()),
        Mistake("you used -p(target) instead of -log p(target): take the log of the probability.",
                 lambda z, y: -torch.softmax(z, -1).gather(-1, y[:, None]).mean()),
        Mistake("log base 2? Use the natural log (nats), e.g. `torch.log_softmax`.",
                 lambda z, y: per_token_nll(z, y).mean() / math.log(2)),
        Mistake("you averaged -log p over every token of the vocabulary: pick the *target's* log-probability "
                 "in each row (e.g. `log_probs[torch.arange(N), targets]`).",
                 lambda z, y: -torch.log_softmax(z, -1).mean()),
        Mistake("you normalised over the batch axis: `log_softmax` must run over the vocabulary (`dim=-1`).",
                 lambda z, y: -torch.log_softmax(z, 0).gather(-1, y[:, None]).mean()),
    ),
)


def _kl_cases(g):
    return [
        Case("p = [0.5, 0.5], q = [0.25, 0.75]", (probs_of([0.5, 0.5]), probs_of([0.25, 0.75]))),
        Case("p = q = [0.2, 0.3, 0.5]", (probs_of([0.2, 0.3, 0.5]), probs_of([0.2, 0.3, 0.5]))),
        Case("p = [1, 0], q = [0.5, 0.5] (a zero in p)", (probs_of([1.0, 0.0]), probs_of([0.5, 0.5]))),
        Case("p, q of shape (3, 6)", (random_probs(g, 3, 6), random_probs(g, 3, 6))),
        Case("p, q of shape (2, 2, 4)", (random_probs(g, 2, 2, 4), random_probs(g, 2, 2, 4))),
    ]


CH02_KL = FunctionExercise(
    "ch02.kl_divergence", "kl_divergence(p, q)",
    "KL(p || q) in nats over the last axis.",
    reference=distributions.kl_divergence, cases=_kl_cases,
    mistakes=(
        Mistake("you computed KL(q || p): the first argument is the distribution you average over, "
                 "KL(p || q) = sum p log(p / q). KL is not symmetric.",
                 lambda p, q: distributions.kl_divergence(q, p)),
        Mistake("the sign is flipped: KL(p || q) = sum p log(p / q) is never negative.",
                 lambda p, q: -distributions.kl_divergence(p, q)),
        Mistake("log base 2 instead of the natural log? Use `torch.log` (nats).",
                 lambda p, q: distributions.kl_divergence(p, q) / math.log(2)),
        Mistake("0 log 0 gave nan where p is 0: those terms are 0 by convention (`torch.special.xlogy`).",
                 lambda p, q: (p * torch.log(p / q)).sum(-1)),
        Mistake("you returned one term per token: sum over the last axis.",
                 lambda p, q: torch.special.xlogy(p, p) - torch.special.xlogy(p, q)),
        Mistake("you summed over every axis: one KL per pair of distributions, so sum over the last axis only.",
                 lambda p, q: distributions.kl_divergence(p, q).sum()),
    ),
)


def _bigram_cases(g):
    return [
        Case("tokens = [0, 1, 1, 0, 2], vocab_size = 3", (torch.tensor([0, 1, 1, 0, 2]), 3)),
        Case("tokens = [2, 2, 2, 2], vocab_size = 4 (three contexts never seen)", (torch.tensor([2, 2, 2, 2]), 4)),
        Case("300 random tokens, vocab_size = 5", (torch.randint(0, 5, (300,), generator=g), 5)),
        Case("40 random tokens of ids 0-2, vocab_size = 6", (torch.randint(0, 3, (40,), generator=g), 6)),
        Case("tokens = [1, 0, 1, 1, 0, 1], vocab_size = 2", (torch.tensor([1, 0, 1, 1, 0, 1]), 2)),
    ]


def _pair_counts(tokens, vocab_size, wrap=False):
    following = torch.roll(tokens, -1) if wrap else tokens[1:]
    previous = tokens if wrap else tokens[:-1]
    return torch.bincount(previous * vocab_size + following, minlength=vocab_size ** 2).reshape(
        vocab_size, vocab_size).double()


def _rows_or_uniform(counts):
    totals = counts.sum(-1, keepdim=True)
    return torch.where(totals > 0, counts / totals.clamp(min=1), torch.full_like(counts, 1.0 / counts.shape[-1]))


CH02_BIGRAM_MLE = FunctionExercise(
    "ch02.bigram_mle", "bigram_mle(tokens, vocab_size)",
    "The maximum-likelihood bigram model [V, V] of a 1-D token sequence: row c is p(. | previous token c); "
    "a context never seen gets the uniform row.",
    reference=distributions.bigram_mle, cases=_bigram_cases,
    mistakes=(
        Mistake("you returned the pair counts: divide each row by its total, the number of times that context "
                 "occurs before another token.",
                 lambda t, v: _pair_counts(t, v)),
        Mistake("you divided by the number of pairs, which gives the joint frequency of (previous, next): "
                 "a bigram model is conditional, so each *row* must sum to 1.",
                 lambda t, v: _pair_counts(t, v) / (len(t) - 1)),
        Mistake("rows and columns are swapped: row c must hold the tokens that *follow* c, counts[previous, next].",
                 lambda t, v: _rows_or_uniform(_pair_counts(t, v).T)),
        Mistake("you normalised the columns: each row p(. | c) must sum to 1 (`counts.sum(-1, keepdim=True)`).",
                 lambda t, v: _pair_counts(t, v) / _pair_counts(t, v).sum(0, keepdim=True).clamp(min=1)),
        Mistake("you counted a pair from the last token back to the first (torch.roll wraps around): the pairs "
                 "are (tokens[i], tokens[i + 1]) for i < N - 1 only.",
                 lambda t, v: _rows_or_uniform(_pair_counts(t, v, wrap=True))),
        Mistake("a context that never occurs gave 0 / 0 = nan: the MLE is undefined there, so give it the "
                 "uniform row 1 / vocab_size.",
                 lambda t, v: _pair_counts(t, v) / _pair_counts(t, v).sum(-1, keepdim=True)),
        Mistake("a context that never occurs got a row of zeros, which is not a distribution: give it the "
                 "uniform row 1 / vocab_size.",
                 lambda t, v: _pair_counts(t, v) / _pair_counts(t, v).sum(-1, keepdim=True).clamp(min=1)),
        Mistake("you counted how often each token occurs, not pairs: the model of a token depends on the one "
                 "before it, so count (previous, next) pairs.",
                 lambda t, v: (torch.bincount(t, minlength=v).double() / len(t)).expand(v, v)),
    ),
)


FUNCTIONS = (CH02_CATEGORICAL_MLE, CH02_NLL_LOSS, CH02_KL, CH02_BIGRAM_MLE)

PREDICTIONS = (
    PredictionExercise(
        "ch02.uniform_model_nll",
        "Predict the mean NLL (nats per token) of a uniform model over 3 tokens on data drawn from q = (0.7, 0.2, 0.1).",
        kind="number", tolerance=0.05,
        misconceptions=((near(0.802, 0.05), "That is H(q), the NLL of the perfect model p = q: the uniform model "
                                             "pays KL(q || uniform) on top."),
                        (near(0.0, 0.05), "A loss of 0 needs p(target) = 1 for every token.")),
        lesson="The uniform model gives every token probability 1/3, so each token costs -log(1/3) = ln 3 = 1.099 "
               "nats whatever the data. Cross-entropy = H(q) + KL(q || p) = 0.802 + 0.297."),
    PredictionExercise(
        "ch02.bigram_kl_ratio",
        "Predict the mean KL(true || MLE) of bigram models counted from 10,000 tokens of a 12-token language, divided "
        "by the same for the chapter's 4-token language.",
        kind="number", tolerance=1.0,
        misconceptions=((near(1.0, 0.5), "The amount of data is the same, but a 12-token model has many more "
                                          "probabilities to estimate from it."),
                        (near(3.0, 1.0), "Three times the tokens, but not three times the KL: the number of "
                                          "probabilities to estimate grows with both the contexts and the "
                                          "tokens each context can be followed by."),
                        (near(9.0, 0.99), "Nine is (12 / 4)^2, close: count the *free* probabilities, C (V - 1), "
                                           "since each row must sum to 1.")),
        lesson="The expected KL of a counted model is about C (V - 1) / (2 n) for C contexts and V tokens: one "
               "share of 1 / (2 n) for every free probability it estimates, whatever the probabilities are. From "
               "4 x 3 = 12 free probabilities to 12 x 11 = 132 is a factor of 11 at the same n: a larger vocabulary "
               "needs proportionally more data for the same fit."),
    PredictionExercise(
        "ch02.reverse_kl_preference",
        "Of a wide and a narrow model of a two-mode q, predict which one has the smaller reverse KL(p || q).",
        kind="choice", choices=("wide", "narrow"),
        misconceptions=((lambda v: v == "wide", "The wide model wins the *forward* KL(q || p): q's mass on both "
                                                "modes is what forward KL weighs. Reverse KL weighs by p, and the "
                                                "wide model spends most of its mass on the tokens between the modes, "
                                                "which q rarely produces."),),
        lesson="Reverse KL averages log(p / q) over the model's own samples, so it punishes p for putting mass where "
               "q is small and does not care which mode p leaves out: it is mode-seeking. Forward KL averages over "
               "the data, so it punishes p for missing any mode: it is mode-covering, and it is what maximum "
               "likelihood minimises."),
    PredictionExercise(
        "ch02.gradient_descent_fit",
        "A softmax model trained by gradient descent on the NLL of 20 tokens drawn from q = (0.40, 0.25, 0.15, 0.12, "
        "0.08): predict the distribution it ends with after 2,000 steps.",
        kind="distribution", tolerance=0.05,
        misconceptions=((lambda v: float(np.abs(v - np.array([0.40, 0.25, 0.15, 0.12, 0.08])).max()) <= 0.05,
                         "That is q, the distribution the tokens came from. The loss never sees q, only the 20 "
                         "tokens of the sample."),
                        (lambda v: float(np.max(v)) >= 0.9,
                         "The NLL does not put everything on one token: the log score rewards a model for "
                         "reporting the whole distribution of what it was shown.")),
        lesson="Minimising the NLL of a sample is maximum likelihood, and the maximum-likelihood distribution is the "
               "sample's own frequencies: gradient descent finds the counts. A token that the sample never shows "
               "has its probability driven towards 0, and a token the sample happens to over-represent keeps its "
               "excess. The model learns the sample, not q; only more data brings the sample closer to q."),
)
