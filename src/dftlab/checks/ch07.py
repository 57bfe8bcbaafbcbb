"""Chapter 7, back to maximum likelihood: the exercises on the decoding distribution, temperature and greedy
decoding.

Registered by `dftlab.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import torch

from dftlab import distributions
from dftlab.checks.engine import FunctionExercise, PredictionExercise, _Case, _Mistake, _probs_of, _random_logits


def _decoding_cases(g):
    hand = torch.log(_probs_of([0.5, 0.3, 0.15, 0.05]))
    return [
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 0.7", (hand, 1.0, 0.7)),
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 1", (hand, 1.0, 1.0)),
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 2, top_p = 0.6", (hand, 2.0, 0.6)),
        _Case("logits of shape (3, 8), temperature = 0.5, top_p = 0.9", (_random_logits(g, 3, 8), 0.5, 0.9)),
        _Case("logits of shape (2, 10), temperature = 1.5, top_p = 0.5", (_random_logits(g, 2, 10), 1.5, 0.5)),
    ]


def _renormalised_top_p(logits, temperature, top_p):
    return torch.softmax(distributions.top_p_filter(logits / temperature, top_p), -1)


def _strict_top_p(logits, temperature, top_p):
    """Keeps a token only if the total *including it* stays within p, so it drops the token that crosses p."""
    scaled = logits / temperature
    sorted_logits, order = torch.sort(scaled, -1, descending=True)
    drop_sorted = torch.softmax(sorted_logits, -1).cumsum(-1) > top_p + 1e-6
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return torch.softmax(scaled.masked_fill(drop, float("-inf")), -1)


CH07_DECODING = FunctionExercise(
    "ch07.decoding_distribution", "decoding_distribution(logits, temperature, top_p)",
    "The distribution a sampler draws from: temperature first, then top-p (nucleus) filtering, renormalised.",
    reference=lambda logits, temperature, top_p: distributions.decoding_distribution(logits, temperature,
                                                                                      top_p=top_p),
    cases=_decoding_cases,
    mistakes=(
        _Mistake("you chose the nucleus before applying the temperature: divide the logits by T first, then keep "
                 "the top-p set of the *tempered* distribution.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z, p) / t, -1)),
        _Mistake("you did not renormalise after filtering: the kept probabilities must sum to 1 again.",
                 lambda z, t, p: torch.softmax(z / t, -1) * torch.isfinite(distributions.top_p_filter(z / t, p))),
        _Mistake("the temperature has no effect in your function: divide the logits by it first.",
                 lambda z, t, p: _renormalised_top_p(z, 1.0, p)),
        _Mistake("top_p has no effect in your function: drop the tokens outside the nucleus.",
                 lambda z, t, p: torch.softmax(z / t, -1)),
        _Mistake("you dropped the token that takes the total past top_p (off by one): keep the *smallest* set "
                 "of most likely tokens whose total reaches top_p, so the token that crosses it stays.",
                 _strict_top_p),
        _Mistake("you multiplied the logits by the temperature: divide them.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z * t, p), -1)),
    ),
)


FUNCTIONS = (CH07_DECODING,)

PREDICTIONS = (
    PredictionExercise(
        "ch07.temperature_undoes_dft",
        "Predict whether some sampling temperature makes the DFT-trained distribution match q (KL < 0.01): "
        "'yes' or 'no'.",
        kind="choice", choices=("yes", "no"),
        misconceptions=((lambda v: v == "yes", "Temperature keeps the ranking and divides every log-probability "
                                               "ratio by the same factor; DFT stretched some ratios and compressed "
                                               "others, so no single factor undoes both."),),
        lesson="DFT kept q's order (the tail tokens are still ranked as in q) but not its shape: it stretched the "
               "head's lead over the tail and squeezed the tail tokens close together. A temperature divides every "
               "log-ratio by one T, so it can shrink the lead or keep the tail's spread, not both: a high T brings "
               "the entropy back, but even the best T in the table leaves a KL well above 0.01. The tail is "
               "compressed, not erased; DFT's fit is simply not q at any temperature."),
    PredictionExercise(
        "ch07.greedy_same_token",
        "Predict whether greedy decoding picks the same token from the NLL fit (p = q) and the DFT fit: 'yes' or 'no'.",
        kind="choice", choices=("yes", "no"),
        misconceptions=((lambda v: v == "no", "Both fits rank the mode of q first, and greedy decoding only looks "
                                              "at the ranking."),),
        lesson="Greedy decoding is mode-seeking whatever the training loss: it turns a well-calibrated MLE model "
               "into a formulaic one. Sample (T = 1, maybe with top-p) to see the distribution you trained."),
)
