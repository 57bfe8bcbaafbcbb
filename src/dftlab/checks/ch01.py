"""Chapter 1, token distributions: the exercises on entropy, softmax with temperature, top-k filtering
and Zipf's law.

Registered by `dftlab.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import math

import torch

from dftlab import distributions
from dftlab.checks.engine import (FunctionExercise, PredictionExercise, _Case, _Mistake, _near, _probs_of,
                                  _random_logits, _random_probs)


def _entropy_cases(g):
    return [
        _Case("probs = [0.5, 0.25, 0.25]", (_probs_of([0.5, 0.25, 0.25]),)),
        _Case("a uniform distribution over 8 tokens", (torch.full((8,), 1 / 8),)),
        _Case("a one-hot distribution [0, 1, 0, 0]", (_probs_of([0.0, 1.0, 0.0, 0.0]),)),
        _Case("a batch of shape (3, 5)", (_random_probs(g, 3, 5),)),
        _Case("a batch of shape (2, 3, 4) with a zero in every row",
              (torch.cat([_random_probs(g, 2, 3, 3), torch.zeros(2, 3, 1)], -1),)),
    ]


def _plain_entropy_terms(p):
    return -(p * torch.log(p))


CH01_ENTROPY = FunctionExercise(
    "ch01.entropy", "entropy(probs)",
    "Shannon entropy in nats over the last axis of a tensor of probabilities.",
    reference=distributions.entropy, cases=_entropy_cases,
    mistakes=(
        _Mistake("log base 2 instead of the natural log? The course measures entropy in nats: use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(2)),
        _Mistake("log base 10 instead of the natural log? Use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(10)),
        _Mistake("the sign is flipped: H(p) = -sum p log p, which is never negative.",
                 lambda p: -distributions.entropy(p)),
        _Mistake("0 log 0 gave nan: by convention 0 log 0 = 0. Use `torch.special.xlogy(p, p)` or skip zero entries.",
                 lambda p: _plain_entropy_terms(p).sum(-1)),
        _Mistake("you returned one term per token: sum -p log p over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p)),
        _Mistake("you summed over every axis: sum over the last axis only (`dim=-1`), one entropy per distribution.",
                 lambda p: -torch.special.xlogy(p, p).sum()),
        _Mistake("you averaged over the tokens instead of summing: use `.sum(-1)`, not `.mean(-1)`.",
                 lambda p: -torch.special.xlogy(p, p).mean(-1)),
        _Mistake("you reduced over the first axis: sum over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p).sum(0)),
    ),
)


def _softmax_cases(g):
    return [
        _Case("logits = [0, ln 3], temperature = 1", (_probs_of([0.0, math.log(3.0)]), 1.0)),
        _Case("logits = [0, ln 3], temperature = 0.5", (_probs_of([0.0, math.log(3.0)]), 0.5)),
        _Case("logits of shape (4, 6), temperature = 2", (_random_logits(g, 4, 6), 2.0)),
        _Case("large logits [1000, 1001, 1002], temperature = 1", (_probs_of([1000.0, 1001.0, 1002.0]), 1.0)),
        _Case("logits of shape (2, 3, 5), temperature = 0.7", (_random_logits(g, 2, 3, 5), 0.7)),
        _Case("logits of shape (3, 4), temperature = 0.25", (_random_logits(g, 3, 4), 0.25)),
    ]


CH01_SOFTMAX = FunctionExercise(
    "ch01.softmax_with_temperature", "softmax_with_temperature(logits, temperature)",
    "Turn logits into probabilities over the last axis at a given temperature.",
    reference=distributions.softmax_with_temperature, cases=_softmax_cases,
    mistakes=(
        _Mistake("you multiplied the logits by the temperature: divide them, z / T (T < 1 must sharpen).",
                 lambda z, t: torch.softmax(z * t, -1)),
        _Mistake("applied temperature after softmax? Divide the logits by T *before* the softmax.",
                 lambda z, t: torch.softmax(z, -1) / t),
        _Mistake("applied temperature after softmax? Softmax of probabilities / T is not the same: divide the "
                 "logits by T, then take one softmax.",
                 lambda z, t: torch.softmax(torch.softmax(z, -1) / t, -1)),
        _Mistake("the temperature has no effect in your function: divide the logits by it.",
                 lambda z, t: torch.softmax(z, -1)),
        _Mistake("the probabilities do not sum to 1: divide exp(z / T) by its sum over the last axis.",
                 lambda z, t: torch.exp(z / t)),
        _Mistake("exp overflowed to inf for large logits (inf / inf = nan). Subtract the largest logit first "
                 "(the softmax does not change) or use `torch.softmax`.",
                 lambda z, t: torch.exp(z / t) / torch.exp(z / t).sum(-1, keepdim=True)),
        _Mistake("you normalised over the first axis: the softmax runs over the last axis (`dim=-1`), the vocabulary.",
                 lambda z, t: torch.softmax(z / t, 0)),
    ),
)


def _top_k_cases(g):
    return [
        _Case("logits = [1, 3, 2, 0], k = 2", (_probs_of([1.0, 3.0, 2.0, 0.0]), 2)),
        _Case("logits = [0.5, -1, 2, 4, 1], k = 1", (_probs_of([0.5, -1.0, 2.0, 4.0, 1.0]), 1)),
        _Case("logits = [1, 3, 2], k = 3 (keep everything)", (_probs_of([1.0, 3.0, 2.0]), 3)),
        _Case("logits of shape (3, 7), k = 3", (_random_logits(g, 3, 7), 3)),
        _Case("logits of shape (2, 2, 6), k = 4", (_random_logits(g, 2, 2, 6), 4)),
    ]


def _keep_top(z, k):
    return z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], float("-inf"))


CH01_TOP_K = FunctionExercise(
    "ch01.top_k_filter", "top_k_filter(logits, k)",
    "Keep the k largest logits on the last axis and set the others to -inf.",
    reference=distributions.top_k_filter, cases=_top_k_cases,
    mistakes=(
        _Mistake("you set the dropped logits to 0, but a logit of 0 still gets probability after the softmax: "
                 "use `float('-inf')`.",
                 lambda z, k: z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], 0.0)),
        _Mistake("you kept one token too many (off by one): keep exactly k.",
                 lambda z, k: _keep_top(z, min(k + 1, z.shape[-1]))),
        _Mistake("you kept one token too few (off by one): keep exactly k, including the k-th largest.",
                 lambda z, k: z.masked_fill(z <= torch.topk(z, k, -1).values[..., -1:], float("-inf"))),
        _Mistake("you kept the k *smallest* logits: keep the largest.",
                 lambda z, k: z.masked_fill(z > torch.topk(z, k, -1, largest=False).values[..., -1:], float("-inf"))),
        _Mistake("you returned only the k kept values: keep the shape of `logits` and set the others to -inf.",
                 lambda z, k: torch.topk(z, k, -1).values),
        _Mistake("you returned probabilities: return the filtered *logits* (the softmax comes later).",
                 lambda z, k: torch.softmax(_keep_top(z, k), -1)),
        _Mistake("you picked the k largest of the whole tensor: filter each distribution (the last axis) separately.",
                 lambda z, k: z.masked_fill(z < torch.topk(z.flatten(), k).values[-1], float("-inf"))),
    ),
)


FUNCTIONS = (CH01_SOFTMAX, CH01_ENTROPY, CH01_TOP_K)

PREDICTIONS = (
    PredictionExercise(
        "ch01.zipf_top10_mass",
        "Predict the share of probability held by the 10 most likely of 10,000 tokens under Zipf's law (p_r ~ 1/r).",
        kind="number", tolerance=0.08,
        misconceptions=((_near(0.001, 0.01), "That is the uniform answer (10 / 10,000): under Zipf's law the top "
                                             "ranks are far more likely than the rest."),
                        (lambda v: v > 0.6, "The tail is long: 9,990 tokens with small probabilities still add up "
                                            "to most of the mass.")),
        lesson="With p_r proportional to 1/r the top 10 ranks hold H_10 / H_10000 (harmonic numbers), about 30%: "
               "a few tokens dominate, and the long tail is where varied writing lives."),
)
