"""Chapter 7, back to maximum likelihood: the exercises on the decoding distribution, temperature, greedy
decoding, a paired comparison read from the study table, and a floor on DFT's weight.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import torch

from dftlab import distributions
from dftlab.course.checks.engine import FunctionExercise, PredictionExercise, Case, Mistake, probs_of, random_logits


def _decoding_cases(g):
    hand = torch.log(probs_of([0.5, 0.3, 0.15, 0.05]))
    return [
        Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 0.7", (hand, 1.0, 0.7)),
        Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 1", (hand, 1.0, 1.0)),
        Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 2, top_p = 0.6", (hand, 2.0, 0.6)),
        Case("logits of shape (3, 8), temperature = 0.5, top_p = 0.9", (random_logits(g, 3, 8), 0.5, 0.9)),
        Case("logits of shape (2, 10), temperature = 1.5, top_p = 0.5", (random_logits(g, 2, 10), 1.5, 0.5)),
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
        Mistake("you chose the nucleus before applying the temperature: divide the logits by T first, then keep "
                 "the top-p set of the *tempered* distribution.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z, p) / t, -1)),
        Mistake("you did not renormalise after filtering: the kept probabilities must sum to 1 again.",
                 lambda z, t, p: torch.softmax(z / t, -1) * torch.isfinite(distributions.top_p_filter(z / t, p))),
        Mistake("the temperature has no effect in your function: divide the logits by it first.",
                 lambda z, t, p: _renormalised_top_p(z, 1.0, p)),
        Mistake("top_p has no effect in your function: drop the tokens outside the nucleus.",
                 lambda z, t, p: torch.softmax(z / t, -1)),
        Mistake("you dropped the token that takes the total past top_p (off by one): keep the *smallest* set "
                 "of most likely tokens whose total reaches top_p, so the token that crosses it stays.",
                 _strict_top_p),
        Mistake("you multiplied the logits by the temperature: divide them.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z * t, p), -1)),
    ),
)


def _study_results():
    """The study's results table, from the results folders in use now ($DFTLAB_RESULTS, read at each call)."""
    from dftlab.storage import results_folders

    return _results_in(tuple(str(folder) for folder in results_folders()))


@functools.lru_cache(maxsize=4)
def _results_in(folders: tuple):
    """Cached by the folders a read looks in (`folders`): a later $DFTLAB_RESULTS is a new key."""
    from dftlab import study

    return study.load_results()


def _comparison_cases(g):
    from dftlab.study.config import STRONG_PRIOR, WEAK_PRIOR, default_config

    steps = default_config().steps
    rows = [("kl", "dft", "nll", "T=1", STRONG_PRIOR, steps),
            ("validity", "dft", "nll", "T=0.7,top-p=0.9", STRONG_PRIOR, steps),
            ("distinct_2", "power_0.5", "nll", "T=1", STRONG_PRIOR, steps),
            ("token_l2_1", "asft", "dft_floored", "T=0.7,top-p=0.9", STRONG_PRIOR, steps),
            ("prob_character", "dft", "nll", "T=1", WEAK_PRIOR, steps),
            ("top_opener_share", "nll", "dft", "T=1", STRONG_PRIOR, 50)]
    return [Case(f"metric={m!r}, a={a!r}, b={b!r}, decoding={d!r}, base_model={bm!r}, steps={st}",
                  (_study_results().copy(), m, a, b, d, bm, st)) for m, a, b, d, bm, st in rows]


def _reference_comparison(results, metric, a, b, decoding, base_model, steps):
    from dftlab import study

    c = study.compare(results, metric, a, b, decoding, base_model=base_model, steps=steps)
    return c.difference, c.low, c.high


def _per_seed(results, objective, metric, decoding, base_model, steps, filtered=True):
    rows = results[(results["objective"] == objective) & (results["decoding"] == decoding)]
    if filtered:
        rows = rows[(rows["base_model"] == base_model) & (rows["steps"] == steps)]
    return rows.groupby("seed")[metric].mean()


def _paired_variant(quantile="t", ddof=1, reverse=False, filtered=True):
    def comparison(results, metric, a, b, decoding, base_model, steps):
        first = _per_seed(results, a, metric, decoding, base_model, steps, filtered)
        second = _per_seed(results, b, metric, decoding, base_model, steps, filtered)
        seeds = sorted(set(first.index) & set(second.index))
        differences = np.array([first[s] - second[s] for s in seeds]) * (-1 if reverse else 1)
        n = len(differences)
        from scipy import stats

        factor = stats.t.ppf(0.975, n - 1) if quantile == "t" else stats.norm.ppf(0.975)
        half = factor * differences.std(ddof=ddof) / math.sqrt(n)
        return differences.mean(), differences.mean() - half, differences.mean() + half
    return comparison


def _unpaired_variant(welch=True):
    """Two independent samples: each objective's mean over its own seeds, a two-sample t-interval."""
    def comparison(results, metric, a, b, decoding, base_model, steps):
        from scipy import stats

        first = _per_seed(results, a, metric, decoding, base_model, steps).to_numpy()
        second = _per_seed(results, b, metric, decoding, base_model, steps).to_numpy()
        va, vb, na, nb = first.var(ddof=1), second.var(ddof=1), len(first), len(second)
        se = math.sqrt(va / na + vb / nb)
        if welch:
            df = (va / na + vb / nb) ** 2 / ((va / na) ** 2 / (na - 1) + (vb / nb) ** 2 / (nb - 1))
        else:
            df = na + nb - 2
        mean = first.mean() - second.mean()
        half = stats.t.ppf(0.975, df) * se
        return mean, mean - half, mean + half
    return comparison


_UNPAIRED = ("you compared the two objectives as independent samples (a mean over each one's own seeds, a "
             "two-sample interval). Pair them by seed: two runs with the same seed share the data split, the data "
             "order and the sampling stream, so take a - b within each seed both have, then one t-interval over "
             "those differences.")

CH07_PAIRED_COMPARISON = FunctionExercise(
    "ch07.paired_comparison", "paired_comparison(results, metric, a, b, decoding, base_model, steps)",
    "Objective a minus objective b on one metric of the study table, paired by seed: the mean difference and its "
    "95% Student-t interval, as (mean, low, high).",
    reference=_reference_comparison, cases=_comparison_cases,
    mistakes=(
        Mistake(_UNPAIRED, _unpaired_variant(welch=True)),
        Mistake(_UNPAIRED, _unpaired_variant(welch=False)),
        Mistake("you used the sample standard deviation with ddof=0 (numpy's default divides by n): the "
                 "t-interval needs the n - 1 version, `np.std(x, ddof=1)` (pandas' `.std()` already does this).",
                 _paired_variant(ddof=0)),
        Mistake("you used the normal quantile 1.96: with 3 to 5 seeds the interval needs Student's t with n - 1 "
                 "degrees of freedom, `scipy.stats.t.ppf(0.975, n - 1)`, which is much wider.",
                 _paired_variant(quantile="normal")),
        Mistake("the sign is flipped: the difference is a - b, not b - a.", _paired_variant(reverse=True)),
        Mistake("you kept rows from other runs: filter on base_model and steps as well, or the budget sweep "
                 "(50 and 100 steps) and the weak-prior runs are averaged into each seed.",
                 _paired_variant(filtered=False)),
    ),
)


FUNCTIONS = (CH07_DECODING, CH07_PAIRED_COMPARISON)

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
    PredictionExercise(
        "ch07.floor_top_opener",
        "Three 30-step fine-tunes of tiny-gpt2 (nll, dft, and dft_floored with floor 0.1): predict whether the "
        "floored run's probability of 'Once upon a time,' ends closer to the nll run's or to the dft run's: "
        "'nll' or 'dft'.",
        kind="choice", choices=("nll", "dft"),
        misconceptions=((lambda v: v == "nll", "The floor only lifts the weight of tokens the model gives less "
                                               "than 0.1. The common opener's tokens are above it from early on, so "
                                               "they are weighted by p(y) exactly as in DFT: the push that makes "
                                               "the likeliest tokens likelier stays."),),
        lesson="max(p, floor) lifts the weight of the rare openers from p to the floor, so they keep some "
               "probability instead of vanishing, but the common ones are weighted by p as in DFT. The fixed point "
               "solves p_y proportional to q_y w(p_y): a sharpened copy of q, not q itself. A floor softens "
               "Dynamic FT's collapse of the tail; it does not stop the head from taking over. Only the NLL's weight "
               "1 (a proper score) aims at q."),
)
