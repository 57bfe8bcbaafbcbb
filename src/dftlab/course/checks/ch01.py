"""Chapter 1, token distributions: the exercises on entropy, softmax with temperature, top-k filtering,
Zipf's law, min-p filtering (and what temperature does to it) and the repetition penalty.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import math

import torch

from dftlab import distributions
from dftlab.course.checks.engine import (FunctionExercise, PredictionExercise, Case, Mistake, near, probs_of,
                                  random_logits, random_probs)


def _entropy_cases(g):
    return [
        Case("probs = [0.5, 0.25, 0.25]", (probs_of([0.5, 0.25, 0.25]),)),
        Case("a uniform distribution over 8 tokens", (torch.full((8,), 1 / 8),)),
        Case("a one-hot distribution [0, 1, 0, 0]", (probs_of([0.0, 1.0, 0.0, 0.0]),)),
        Case("a batch of shape (3, 5)", (random_probs(g, 3, 5),)),
        Case("a batch of shape (2, 3, 4) with a zero in every row",
              (torch.cat([random_probs(g, 2, 3, 3), torch.zeros(2, 3, 1)], -1),)),
    ]


def _plain_entropy_terms(p):
    return -(p * torch.log(p))


CH01_ENTROPY = FunctionExercise(
    "ch01.entropy", "entropy(probs)",
    "Shannon entropy in nats over the last axis of a tensor of probabilities.",
    reference=distributions.entropy, cases=_entropy_cases,
    mistakes=(
        Mistake("log base 2 instead of the natural log? The course measures entropy in nats: use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(2)),
        Mistake("log base 10 instead of the natural log? Use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(10)),
        Mistake("the sign is flipped: H(p) = -sum p log p, which is never negative.",
                 lambda p: -distributions.entropy(p)),
        Mistake("0 log 0 gave nan: by convention 0 log 0 = 0. Use `torch.special.xlogy(p, p)` or skip zero entries.",
                 lambda p: _plain_entropy_terms(p).sum(-1)),
        Mistake("you returned one term per token: sum -p log p over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p)),
        Mistake("you summed over every axis: sum over the last axis only (`dim=-1`), one entropy per distribution.",
                 lambda p: -torch.special.xlogy(p, p).sum()),
        Mistake("you averaged over the tokens instead of summing: use `.sum(-1)`, not `.mean(-1)`.",
                 lambda p: -torch.special.xlogy(p, p).mean(-1)),
        Mistake("you reduced over the first axis: sum over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p).sum(0)),
    ),
)


def _softmax_cases(g):
    return [
        Case("logits = [0, ln 3], temperature = 1", (probs_of([0.0, math.log(3.0)]), 1.0)),
        Case("logits = [0, ln 3], temperature = 0.5", (probs_of([0.0, math.log(3.0)]), 0.5)),
        Case("logits of shape (4, 6), temperature = 2", (random_logits(g, 4, 6), 2.0)),
        Case("large logits [1000, 1001, 1002], temperature = 1", (probs_of([1000.0, 1001.0, 1002.0]), 1.0)),
        Case("logits of shape (2, 3, 5), temperature = 0.7", (random_logits(g, 2, 3, 5), 0.7)),
        Case("logits of shape (3, 4), temperature = 0.25", (random_logits(g, 3, 4), 0.25)),
    ]


CH01_SOFTMAX = FunctionExercise(
    "ch01.softmax_with_temperature", "softmax_with_temperature(logits, temperature)",
    "Turn logits into probabilities over the last axis at a given temperature.",
    reference=distributions.softmax_with_temperature, cases=_softmax_cases,
    mistakes=(
        Mistake("you multiplied the logits by the temperature: divide them, z / T (T < 1 must sharpen).",
                 lambda z, t: torch.softmax(z * t, -1)),
        Mistake("applied temperature after softmax? Divide the logits by T *before* the softmax.",
                 lambda z, t: torch.softmax(z, -1) / t),
        Mistake("applied temperature after softmax? Softmax of probabilities / T is not the same: divide the "
                 "logits by T, then take one softmax.",
                 lambda z, t: torch.softmax(torch.softmax(z, -1) / t, -1)),
        Mistake("the temperature has no effect in your function: divide the logits by it.",
                 lambda z, t: torch.softmax(z, -1)),
        Mistake("the probabilities do not sum to 1: divide exp(z / T) by its sum over the last axis.",
                 lambda z, t: torch.exp(z / t)),
        Mistake("exp overflowed to inf for large logits (inf / inf = nan). Subtract the largest logit first "
                 "(the softmax does not change) or use `torch.softmax`.",
                 lambda z, t: torch.exp(z / t) / torch.exp(z / t).sum(-1, keepdim=True)),
        Mistake("you normalised over the first axis: the softmax runs over the last axis (`dim=-1`), the vocabulary.",
                 lambda z, t: torch.softmax(z / t, 0)),
    ),
)


def _top_k_cases(g):
    return [
        Case("logits = [1, 3, 2, 0], k = 2", (probs_of([1.0, 3.0, 2.0, 0.0]), 2)),
        Case("logits = [0.5, -1, 2, 4, 1], k = 1", (probs_of([0.5, -1.0, 2.0, 4.0, 1.0]), 1)),
        Case("logits = [1, 3, 2], k = 3 (keep everything)", (probs_of([1.0, 3.0, 2.0]), 3)),
        Case("logits of shape (3, 7), k = 3", (random_logits(g, 3, 7), 3)),
        Case("logits of shape (2, 2, 6), k = 4", (random_logits(g, 2, 2, 6), 4)),
        Case("logits = [2, 1, 1, 0], k = 2 (a tie at the 2nd largest logit)", (probs_of([2.0, 1.0, 1.0, 0.0]), 2),
              "Keep every token whose logit ties with the k-th largest."),
        Case("logits = [0.5, 2, -1], k = 10 (k larger than the vocabulary)", (probs_of([0.5, 2.0, -1.0]), 10),
              "When k is larger than the vocabulary, keep every token: use min(k, logits.shape[-1])."),
        Case("logits of shape (2, 4), k = 6 (k larger than the vocabulary)", (random_logits(g, 2, 4), 6),
              "When k is larger than the vocabulary, keep every token: use min(k, logits.shape[-1])."),
    ]


def _exactly_k(z, k):
    """Keep exactly k tokens, chosen by torch.topk's indices: one of two tied tokens is dropped."""
    indices = torch.topk(z, min(k, z.shape[-1]), -1).indices
    keep = torch.zeros_like(z, dtype=torch.bool).scatter(-1, indices, True)
    return z.masked_fill(~keep, float("-inf"))


def _keep_top(z, k):
    return z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], float("-inf"))


CH01_TOP_K = FunctionExercise(
    "ch01.top_k_filter", "top_k_filter(logits, k)",
    "Keep the k largest logits on the last axis and set the others to -inf.",
    reference=distributions.top_k_filter, cases=_top_k_cases,
    mistakes=(
        Mistake("you set the dropped logits to 0, but a logit of 0 still gets probability after the softmax: "
                 "use `float('-inf')`.",
                 lambda z, k: z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], 0.0)),
        Mistake("you kept one token too many (off by one): keep exactly k.",
                 lambda z, k: _keep_top(z, min(k + 1, z.shape[-1]))),
        Mistake("you kept one token too few (off by one): keep exactly k, including the k-th largest.",
                 lambda z, k: z.masked_fill(z <= torch.topk(z, k, -1).values[..., -1:], float("-inf"))),
        Mistake("you kept the k *smallest* logits: keep the largest.",
                 lambda z, k: z.masked_fill(z > torch.topk(z, k, -1, largest=False).values[..., -1:], float("-inf"))),
        Mistake("you returned only the k kept values: keep the shape of `logits` and set the others to -inf.",
                 lambda z, k: torch.topk(z, k, -1).values),
        Mistake("you returned probabilities: return the filtered *logits* (the softmax comes later).",
                 lambda z, k: torch.softmax(_keep_top(z, k), -1)),
        Mistake("you picked the k largest of the whole tensor: filter each distribution (the last axis) separately.",
                 lambda z, k: z.masked_fill(z < torch.topk(z.flatten(), k).values[-1], float("-inf"))),
        Mistake("you kept exactly k tokens, so one of two tokens tied at the k-th largest logit was dropped at "
                 "random: keep every token whose logit is at least the k-th largest (`logits < kth` is what to "
                 "remove), as Hugging Face's top-k does.",
                 _exactly_k),
    ),
)


def _min_p_cases(g):
    return [
        Case("logits = [2, 1, 0, -1, 3], p_base = 0.1", (probs_of([2.0, 1.0, 0.0, -1.0, 3.0]), 0.1)),
        Case("logits = [0, 0, 0, 0, 0] (flat), p_base = 0.5", (torch.zeros(5), 0.5)),
        Case("logits = [1, 4, 2], p_base = 1 (only the top token)", (probs_of([1.0, 4.0, 2.0]), 1.0)),
        Case("logits of shape (4, 9), p_base = 0.05", (random_logits(g, 4, 9), 0.05)),
        Case("logits of shape (2, 3, 6), p_base = 0.3", (random_logits(g, 2, 3, 6), 0.3)),
        Case("logits of shape (3, 5) shifted up by 50, p_base = 0.2", (random_logits(g, 3, 5) + 50.0, 0.2)),
    ]


def _min_p_mask(keep, z):
    return z.masked_fill(~keep, float("-inf"))


CH01_MIN_P = FunctionExercise(
    "ch01.min_p_filter", "min_p_filter(logits, p_base)",
    "Keep the tokens whose probability is at least p_base times the top token's; set the other logits to -inf.",
    reference=distributions.min_p_filter, cases=_min_p_cases,
    mistakes=(
        Mistake("you compared each probability with p_base itself: min-p scales the threshold by the top "
                 "token's probability, p_i >= p_base * max_j p_j.",
                 lambda z, p: _min_p_mask(torch.softmax(z, -1) >= p, z)),
        Mistake("you compared the logits, not the probabilities: take the softmax first, then keep "
                 "p_i >= p_base * max p.",
                 lambda z, p: _min_p_mask(z >= p * z.max(-1, keepdim=True).values, z)),
        Mistake("you set the dropped logits to 0, but a logit of 0 still gets probability after the softmax: "
                 "use `float('-inf')`.",
                 lambda z, p: z.masked_fill(torch.softmax(z, -1) < p * torch.softmax(z, -1).max(-1, keepdim=True)
                                            .values, 0.0)),
        Mistake("you returned probabilities: return the filtered *logits* (the softmax comes later).",
                 lambda z, p: torch.softmax(distributions.min_p_filter(z, p), -1)),
        Mistake("you kept the tokens *below* the threshold: keep p_i >= p_base * max p, drop the rest.",
                 lambda z, p: _min_p_mask(torch.softmax(z, -1) < p * torch.softmax(z, -1).max(-1, keepdim=True)
                                          .values, z)),
        Mistake("you took the largest probability of the whole tensor: the threshold belongs to each "
                 "distribution, `probs.max(dim=-1, keepdim=True)`.",
                 lambda z, p: _min_p_mask(torch.softmax(z, -1) >= p * torch.softmax(z, -1).max(), z)),
        Mistake("the softmax ran over the wrong axis: probabilities are over the last axis (`dim=-1`).",
                 lambda z, p: _min_p_mask(torch.softmax(z, 0) >= p * torch.softmax(z, 0).max(-1, keepdim=True).values,
                                          z)),
    ),
)


def _penalty_cases(g):
    return [
        Case("logits = [2, -1, 0.5, 3], previous_ids = [0, 1, 0], penalty = 2",
              (probs_of([2.0, -1.0, 0.5, 3.0]), torch.tensor([0, 1, 0]), 2.0)),
        Case("logits = [1, -2, 4], previous_ids = [] (nothing generated yet), penalty = 1.5",
              (probs_of([1.0, -2.0, 4.0]), torch.tensor([], dtype=torch.long), 1.5)),
        Case("logits = [1.5, -0.5, 2], previous_ids = [2, 1], penalty = 1 (no penalty)",
              (probs_of([1.5, -0.5, 2.0]), torch.tensor([2, 1]), 1.0)),
        Case("10 random logits, previous_ids = [3, 7, 3, 3, 0], penalty = 1.3",
              (random_logits(g, 10), torch.tensor([3, 7, 3, 3, 0]), 1.3)),
        Case("20 random logits, 12 random previous ids, penalty = 1.2",
              (random_logits(g, 20), torch.randint(0, 20, (12,), generator=g), 1.2)),
    ]


def _seen(z, ids):
    return torch.zeros_like(z, dtype=torch.bool).scatter(-1, ids, True)


def _penalise_every_time(z, ids, penalty):
    counts = torch.bincount(ids, minlength=z.shape[-1]).to(z.dtype)
    factor = penalty ** counts
    return torch.where(z > 0, z / factor, z * factor)


CH01_REPETITION_PENALTY = FunctionExercise(
    "ch01.repetition_penalty", "repetition_penalty(logits, previous_ids, penalty)",
    "Make every token of previous_ids less likely: divide its logit by penalty if positive, multiply it if negative.",
    reference=distributions.repetition_penalty, cases=_penalty_cases,
    mistakes=(
        Mistake("you divided every seen logit by the penalty, as the CTRL paper writes it, but dividing a "
                 "*negative* logit by a penalty > 1 raises it and makes the token likelier: multiply negative "
                 "logits by the penalty instead.",
                 lambda z, ids, t: torch.where(_seen(z, ids), z / t, z)),
        Mistake("you penalised a token once per occurrence (penalty ** count): the rule penalises every "
                 "token that appeared *once*, however often it appeared.",
                 _penalise_every_time),
        Mistake("you penalised the tokens that did *not* appear: the penalty goes to the tokens in previous_ids.",
                 lambda z, ids, t: torch.where(~_seen(z, ids), torch.where(z > 0, z / t, z * t), z)),
        Mistake("the two cases are swapped: a positive logit is *divided* by the penalty, a negative one "
                 "*multiplied* by it, so both move down.",
                 lambda z, ids, t: torch.where(_seen(z, ids), torch.where(z > 0, z * t, z / t), z)),
        Mistake("you returned probabilities: return the penalised *logits* (the softmax comes later).",
                 lambda z, ids, t: torch.softmax(distributions.repetition_penalty(z, ids, t), -1)),
        Mistake("you subtracted the penalty from the logits: the rule divides (positive) or multiplies (negative).",
                 lambda z, ids, t: torch.where(_seen(z, ids), z - t, z)),
    ),
    mutating_hint="work on a copy (`logits = logits.clone()`) or build the result with `torch.where`",
)


FUNCTIONS = (CH01_SOFTMAX, CH01_ENTROPY, CH01_TOP_K, CH01_MIN_P, CH01_REPETITION_PENALTY)

PREDICTIONS = (
    PredictionExercise(
        "ch01.zipf_top10_mass",
        "Predict the share of probability held by the 10 most likely of 10,000 tokens under Zipf's law (p_r ~ 1/r).",
        kind="number", tolerance=0.08,
        misconceptions=((near(0.001, 0.01), "That is the uniform answer (10 / 10,000): under Zipf's law the top "
                                             "ranks are far more likely than the rest."),
                        (lambda v: v > 0.6, "The tail is long: 9,990 tokens with small probabilities still add up "
                                            "to most of the mass.")),
        lesson="With p_r proportional to 1/r the top 10 ranks hold H_10 / H_10000 (harmonic numbers), about 30%: "
               "a few tokens dominate, and the long tail is where varied writing lives."),
    PredictionExercise(
        "ch01.min_p_at_high_temperature",
        "Predict how many of 10,000 Zipf-distributed tokens (p_r ~ 1/r) min-p with p_base = 0.1 keeps at temperature 1.5.",
        kind="number", tolerance=8,
        misconceptions=((near(10, 3), "That is about the answer at T = 1. Temperature 1.5 flattens the distribution "
                                       "first: p_r / p_1 becomes r^(-1/1.5), which falls more slowly."),
                        (near(15, 3), "Temperature does not scale the count in proportion: it enters as a power, "
                                       "p_r / p_1 = r^(-1/T)."),
                        (lambda v: v >= 1000, "That is how top-p behaves at high temperature. Min-p's threshold "
                                              "follows the top token, so it stays selective.")),
        lesson="At temperature T the ratio p_r / p_1 is r^(-1/T). Min-p keeps rank r while that ratio is at least "
               "0.1, that is r <= 0.1^(-T) = 10^T: about 10 tokens at T = 1, 31 at T = 1.5 (10^1.5 = 31.6). Top-p "
               "0.9 keeps most of the flattened tail at T = 1.5, thousands of tokens."),
)
