"""Chapter 5, Dynamic Fine-Tuning in the study: the exercises on the power family's fixed point, DFT's logit step
(one bar for every token), the temperature that training at alpha aims at, the fine-tuned models' opener
distributions, DFT's exact steps from a start that gives the data's mode almost nothing, and the optimum of
preference tuning with a reward that likes the familiar.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import torch

from dftlab import toy
from dftlab.course.checks.ch04 import DFT_TOY_TARGET
from dftlab.course.checks.engine import (Case, FunctionExercise, Mistake, PredictionExercise, float_result, near,
                                         probs_of, random_logits, random_probs)
from dftlab.study.config import STRONG_PRIOR, WEAK_PRIOR, default_config

# --- The power family's fixed point --------------------------------------------------------------------------------


def _power_cases(g):
    toy_q = torch.tensor(DFT_TOY_TARGET, dtype=torch.float64)
    return [
        Case("q = (0.40, 0.25, 0.15, 0.12, 0.08), alpha = 0.75", (toy_q, 0.75)),
        Case("q = (0.40, 0.25, 0.15, 0.12, 0.08), alpha = 0.5", (toy_q, 0.5)),
        Case("q = (0.40, 0.25, 0.15, 0.12, 0.08), alpha = 0 (the NLL)", (toy_q, 0.0)),
        Case("uniform q over 4 tokens, alpha = 0.25", (torch.full((4,), 0.25, dtype=torch.float64), 0.25)),
        Case("q = (0.7, 0.3, 0), alpha = 0.25 (a token the data never uses)",
              (torch.tensor([0.7, 0.3, 0.0], dtype=torch.float64), 0.25)),
        Case("random q over 6 tokens, alpha = 0.6", (random_probs(g, 6).double(), 0.6)),
    ]


def _normalised(values):
    values = torch.as_tensor(values, dtype=torch.float64)
    return values / values.sum()


CH05_POWER_FIXED_POINT = FunctionExercise(
    "ch05.power_fixed_point", "power_fixed_point(q, alpha)",
    "Where the power family (1 - p^alpha) / alpha ends on one context with data q, for 0 <= alpha < 1; a "
    "probability vector the shape of q.",
    reference=lambda q, alpha: torch.as_tensor(toy.power_fixed_point(q, alpha)),
    cases=_power_cases,
    mistakes=(
        Mistake("you raised q to 1 - alpha, which flattens it. Setting the expected gradient to zero gives "
                 "p^(1 - alpha) proportional to q, so p is proportional to q^(1 / (1 - alpha)): sharper than q.",
                 lambda q, a: _normalised(q ** (1 - a))),
        Mistake("you raised q to 1 / alpha. alpha = 0 is the NLL, whose fixed point is q itself; the exponent is "
                 "1 / (1 - alpha), which is 1 at alpha = 0 and grows without bound as alpha approaches 1 (DFT).",
                 lambda q, a: _normalised(q ** (1 / a))),
        Mistake("the shape is right but the probabilities do not sum to 1: divide q^(1 / (1 - alpha)) by its sum.",
                 lambda q, a: torch.as_tensor(q, dtype=torch.float64) ** (1 / (1 - a))),
        Mistake("you divided the probabilities by T = 1 - alpha and took a softmax. A temperature divides the "
                 "*log*-probabilities: softmax(log q / (1 - alpha)), which is q^(1 / (1 - alpha)) renormalised.",
                 lambda q, a: torch.softmax(torch.as_tensor(q, dtype=torch.float64) / (1 - a), -1)),
        Mistake("you raised q to alpha. The power alpha is in the loss, (1 - p^alpha) / alpha; the fixed point "
                 "raises q to 1 / (1 - alpha).",
                 lambda q, a: _normalised(q ** a)),
    ),
)

# --- DFT's logit step: one bar for every token ---------------------------------------------------------------------


def _step_cases(g):
    toy_q = probs_of(DFT_TOY_TARGET).double()
    one_hot = torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
    return [
        Case("probs = (0.5, 0.2, 0.2, 0.1), q = (0.40, 0.25, 0.15, 0.20), lr = 0.5",
              (torch.tensor([0.5, 0.2, 0.2, 0.1], dtype=torch.float64),
               torch.tensor([0.40, 0.25, 0.15, 0.20], dtype=torch.float64), 0.5)),
        Case("uniform probs, q = (0.40, 0.25, 0.15, 0.12, 0.08), lr = 1",
              (torch.full((5,), 0.2, dtype=torch.float64), toy_q, 1.0)),
        Case("probs = q = (0.40, 0.25, 0.15, 0.12, 0.08), lr = 0.5 (NLL's fixed point)", (toy_q.clone(), toy_q, 0.5)),
        Case("probs = (0.4, 0.3, 0.2, 0.1), a one-hot q on token 1 (one demonstrated token), lr = 0.1",
              (torch.tensor([0.4, 0.3, 0.2, 0.1], dtype=torch.float64), one_hot, 0.1)),
        Case("random probs and q over 6 tokens, lr = 0.2",
              (random_probs(g, 6).double(), random_probs(g, 6).double(), 0.2)),
    ]


def _bar(probs, q):
    return (torch.as_tensor(q, dtype=torch.float64) * torch.as_tensor(probs, dtype=torch.float64)).sum()


CH05_DFT_LOGIT_STEP = FunctionExercise(
    "ch05.dft_logit_step", "dft_logit_step(probs, q, lr)",
    "The change in the logits from one gradient-descent step of size lr on DFT's expected loss at p = probs with data "
    "q, -lr * sum_y q_y p_y (p - e_y); a vector the shape of probs.",
    reference=lambda probs, q, lr: -lr * torch.as_tensor(toy.logit_gradient(probs, q, "dft")),
    cases=_step_cases,
    mistakes=(
        Mistake("this is the NLL step, lr (q_k - p_k), which compares each token with its own probability in the "
                 "data. DFT's gradient sum_y q_y p_y (p - e_y) compares every token with the same bar s = sum_y q_y p_y.",
                 lambda p, q, lr: lr * (q - p)),
        Mistake("you left out the factor p_k: DFT's step is lr * p_k * (q_k - s), so a token the model gives little "
                 "probability moves slowly, up or down.",
                 lambda p, q, lr: lr * (q - _bar(p, q))),
        Mistake("the sign is flipped: the gradient of the loss in z_k is p_k (s - q_k), and gradient *descent* "
                 "moves against it, so the step is lr * p_k * (q_k - s).",
                 lambda p, q, lr: lr * p * (_bar(p, q) - q)),
        Mistake("your bar is the mean of q. The bar is the model's expected probability of the data, "
                 "s = sum_y q_y p_y, which equals the mean of q only when p is uniform; it rises as p sharpens.",
                 lambda p, q, lr: lr * p * (q - q.mean())),
        Mistake("you returned the gradient, not the step: the step is -lr times the gradient p_k (s - q_k).",
                 lambda p, q, lr: p * (_bar(p, q) - q)),
    ),
)

# --- The fine-tuned models' openers: training at alpha against sampling at T = 1 - alpha ---------------------------

HEADLINE_STEPS = default_config().steps  # the study's budget, from its config


def _study_openers() -> pd.DataFrame:
    """The study's opener table, from the results folders in use now ($DFTLAB_RESULTS, read at each call)."""
    from dftlab.storage import results_folders

    return _openers_in(tuple(str(folder) for folder in results_folders()))


@functools.lru_cache(maxsize=4)
def _openers_in(folders: tuple) -> pd.DataFrame:
    """Cached by the folders a read looks in (`folders`): a later $DFTLAB_RESULTS is a new key."""
    from dftlab import study

    return study.load_opener_probabilities()


def _toy_openers() -> pd.DataFrame:
    """A small hand-made opener table with the columns of load_opener_probabilities: two seeds, two base models and
    two budgets, so that a missing filter or a sum over seeds changes the answer."""
    truth = {"A": 0.5, "B": 0.3, "C": 0.2}
    shares = {("nll", 1.0): [(0.50, 0.30, 0.20), (0.46, 0.34, 0.20)],
              ("nll", 0.75): [(0.60, 0.28, 0.12), (0.58, 0.30, 0.12)],
              ("nll", 0.5): [(0.72, 0.22, 0.06), (0.70, 0.24, 0.06)],
              ("power_0.25", 1.0): [(0.62, 0.27, 0.11), (0.64, 0.25, 0.11)],
              ("power_0.5", 1.0): [(0.75, 0.20, 0.05), (0.69, 0.24, 0.07)]}
    rows = []
    for (objective, temperature), per_seed in shares.items():
        for seed, values in enumerate(per_seed):
            for opener, share in zip(truth, values):
                rows.append({"base_model": STRONG_PRIOR, "steps": HEADLINE_STEPS, "objective": objective, "seed": seed,
                             "temperature": temperature, "opener": opener, "share": share, "true_prob": truth[opener]})
    for base_model, steps in ((WEAK_PRIOR, HEADLINE_STEPS), (STRONG_PRIOR, 50)):  # runs to leave out
        for temperature, values in ((1.0, (0.1, 0.1, 0.8)), (0.75, (0.05, 0.05, 0.9)), (0.5, (0.0, 0.0, 1.0))):
            for opener, share in zip(truth, values):
                rows.append({"base_model": base_model, "steps": steps, "objective": "nll", "seed": 0,
                             "temperature": temperature, "opener": opener, "share": share, "true_prob": truth[opener]})
    return pd.DataFrame(rows)


def _match_cases(g):
    return [
        Case("the study's opener table (load_opener_probabilities()), alpha = 0.5", (_study_openers().copy(), 0.5)),
        Case("the study's opener table, alpha = 0.25", (_study_openers().copy(), 0.25)),
        Case("a hand-made table: 3 openers, 2 seeds, plus a weak-prior and a 50-step run, alpha = 0.5",
              (_toy_openers(), 0.5)),
        Case("the same hand-made table, alpha = 0.25", (_toy_openers(), 0.25)),
    ]


def _reference_match(openers, alpha):
    check = toy.power_family_check(openers, alphas=(alpha,), base_model=STRONG_PRIOR, steps=HEADLINE_STEPS)
    distances = toy.power_family_distances(check)  # the numbers in the legend of chapter 5's figure
    return float(distances.loc[distances["alpha"] == alpha, "sampled"].iloc[0])


def _shares(openers, objective, temperature, filtered=True, how="mean"):
    rows = openers[(openers["objective"] == objective) & np.isclose(openers["temperature"], temperature)]
    if filtered:
        rows = rows[(rows["base_model"] == STRONG_PRIOR) & (rows["steps"] == HEADLINE_STEPS)]
    return rows.groupby("opener")["share"].agg(how)


def _match_variant(other=None, half=True, filtered=True, how="mean"):
    def distance(openers, alpha):
        trained = _shares(openers, f"power_{alpha:g}", 1.0, filtered, how)
        if other == "closed_form":
            true = openers.groupby("opener")["true_prob"].first()
            compared = pd.Series(toy.power_fixed_point(true.to_numpy(), alpha), index=true.index)
        else:
            compared = _shares(openers, "nll", {None: 1 - alpha, "T=1": 1.0, "T=alpha": alpha}[other], filtered, how)
        gap = (trained - compared.reindex(trained.index)).abs().sum()
        return (0.5 if half else 1.0) * float(gap)
    return distance


CH05_TEMPERATURE_MATCH = FunctionExercise(
    "ch05.temperature_match", "temperature_match(openers, alpha)",
    "From the study's opener table (dftlab.study.load_opener_probabilities()): the total variation distance over the "
    "openers between power_<alpha> sampled at T = 1 and nll sampled at T = 1 - alpha, each opener's share averaged "
    f"over seeds, for {STRONG_PRIOR} at {HEADLINE_STEPS} steps; one number.",
    reference=_reference_match, cases=_match_cases, convert=float_result,
    mistakes=(
        Mistake("you compared with SFT sampled at T = 1. Training at alpha aims at SFT sampled at T = 1 - alpha: "
                 "take the nll rows whose temperature is 1 - alpha.", _match_variant(other="T=1")),
        Mistake("you compared with SFT sampled at T = alpha. The temperature that training at alpha matches is "
                 "T = 1 - alpha (alpha = 0.25 is T = 0.75).", _match_variant(other="T=alpha")),
        Mistake("you compared with the closed form q^(1 / (1 - alpha)) on the true openers. The exercise asks for SFT "
                 "sampled at T = 1 - alpha, which is sharpened token by token like the power objective.",
                 _match_variant(other="closed_form")),
        Mistake("the total variation distance is *half* the sum of the absolute differences (so that it lies "
                 "between 0 and 1).", _match_variant(half=False)),
        Mistake(f"you kept rows from other runs: filter on base_model == {STRONG_PRIOR!r} and steps == "
                f"{HEADLINE_STEPS} too, or the "
                 "budget sweep and the weak prior are averaged into SFT's shares.", _match_variant(filtered=False)),
        Mistake("you summed each opener's share over the seeds instead of averaging it, so the shares no longer "
                 "sum to 1.", _match_variant(how="sum")),
    ),
)


# --- The optimum of KL-regularised preference tuning -----------------------------------------------------------------


def _preference_cases(g):
    hand = probs_of([0.5, 0.3, 0.2])
    return [
        Case("reference_probs = [0.5, 0.3, 0.2], rewards = [0, 1, 0], beta = 1",
              (hand, torch.tensor([0.0, 1.0, 0.0]), 1.0)),
        Case("reference_probs = [0.5, 0.3, 0.2], rewards = [0, 1, 0], beta = 0.25",
              (hand, torch.tensor([0.0, 1.0, 0.0]), 0.25)),
        Case("reference_probs = [0.5, 0.3, 0.2], rewards = [2, 2, 2] (all answers equally good), beta = 0.5",
              (hand, torch.tensor([2.0, 2.0, 2.0]), 0.5)),
        Case("reference_probs = [0.4, 0.25, 0.15, 0.12, 0.08], rewards = log(reference_probs) (a typicality "
              "reward), beta = 1",
              (probs_of([0.4, 0.25, 0.15, 0.12, 0.08]), torch.log(probs_of([0.4, 0.25, 0.15, 0.12, 0.08])), 1.0)),
        Case("a batch: reference_probs of shape (3, 6), rewards of shape (3, 6), beta = 2",
              (torch.softmax(random_logits(g, 3, 6), -1), torch.randn(3, 6, generator=g), 2.0)),
    ]


def _tilted(weights):
    return weights / weights.sum(-1, keepdim=True)


CH05_PREFERENCE_OPTIMUM = FunctionExercise(
    "ch05.preference_optimum", "preference_optimum(reference_probs, rewards, beta)",
    "The distribution that maximises E[reward] - beta KL(pi || reference): pi proportional to "
    "reference_probs * exp(rewards / beta), over the last axis.",
    reference=toy.preference_optimum, cases=_preference_cases,
    mistakes=(
        Mistake("you did not normalise: pi is proportional to reference * exp(reward / beta), so divide by the sum "
                 "over the answers (the last axis).",
                 lambda ref, r, beta: ref * torch.exp(r / beta)),
        Mistake("you multiplied the rewards by beta: beta is the price of moving away from the reference, so the "
                 "rewards are divided by it (a large beta keeps pi close to the reference).",
                 lambda ref, r, beta: _tilted(ref * torch.exp(r * beta))),
        Mistake("you left out the reference model: softmax(rewards / beta) is the optimum without the KL anchor's "
                 "starting point. Multiply by reference_probs (or add log reference_probs to the logits).",
                 lambda ref, r, beta: torch.softmax(r / beta, dim=-1)),
        Mistake("the sign of the rewards is flipped: a higher reward must raise an answer's probability, "
                 "exp(+reward / beta).",
                 lambda ref, r, beta: _tilted(ref * torch.exp(-r / beta))),
        Mistake("you normalised over the wrong axis: each row is one prompt's distribution over answers, so "
                 "normalise over the last axis (dim=-1).",
                 lambda ref, r, beta: (ref * torch.exp(r / beta)) / (ref * torch.exp(r / beta)).sum(0, keepdim=True)),
    ),
)


FUNCTIONS = (CH05_POWER_FIXED_POINT, CH05_DFT_LOGIT_STEP, CH05_TEMPERATURE_MATCH, CH05_PREFERENCE_OPTIMUM)

PREDICTIONS = (
    PredictionExercise(
        "ch05.alpha_for_temperature",
        "Sweep alpha from 0 to 0.9 on the toy q = (0.40, 0.25, 0.15, 0.12, 0.08): predict the alpha whose power-family "
        "fit is closest to q sampled at temperature T = 0.4.",
        kind="number", tolerance=0.051,
        misconceptions=((near(0.4, 0.051), "You set alpha = T. The power fixed point is q^(1 / (1 - alpha)) and "
                                            "sampling at T raises q to 1 / T, so they match when T = 1 - alpha."),
                        (lambda v: v >= 0.85, "alpha near 1 is DFT's end of the family, the mode, which sampling "
                                              "reaches only as T goes to 0.")),
        lesson="Training with the power objective at alpha aims at the maximum-likelihood model sampled at "
               "T = 1 - alpha, so T = 0.4 needs alpha = 0.6. Raising alpha lowers the temperature, down to the mode "
               "(greedy decoding) at alpha = 1, which is DFT."),
    PredictionExercise(
        "ch05.dft_weak_start",
        "Exact DFT steps on q = (0.70, 0.10, 0.10, 0.05, 0.05) from a start p0 = (0.0001, 0.40, 0.30, 0.20, 0.10) that "
        "gives the data's mode almost nothing: after 1,000 steps, does token 0 ('data') or token 1 ('start') hold "
        "most of the probability?",
        kind="choice", choices=("data", "start"),
        misconceptions=((lambda v: v == "data",
                         "From uniform (chapter 4) DFT ends on the data's mode, and it would here too in the very long "
                         "run. But DFT's step on token k is p_k (q_k - s), scaled by the model's own probability: "
                         "token 0's p of 0.0001 makes its steps tiny, while token 1, which the start already favours "
                         "and whose q is above the bar s, grows fast and takes the mass."),),
        lesson="DFT moves every logit at a rate proportional to its probability. Where the model gives the right token "
               "almost nothing, that token barely moves and the tokens the start half-predicts take over: after 1,000 "
               "steps token 0 has less probability than at the start, while the NLL steps, whose size q - p does not "
               "shrink with p, reach q. This is the weak prior of the chapter in five numbers: DFT can only sharpen "
               "what the model already predicts."),
    PredictionExercise(
        "ch05.typicality_top_share",
        "A reference model answers with probabilities [0.5, 0.3, 0.2]. All three answers are equally good, but the "
        "reward adds gamma log p_ref (raters prefer the familiar) with gamma = beta. Predict the tuned model's "
        "probability of the first answer.",
        kind="number", tolerance=0.05,
        misconceptions=((near(0.5, 0.02), "A reward that prefers typical answers does not leave the distribution "
                                           "alone: the optimum is p_ref^(1 + gamma/beta), which sharpens it."),
                        (near(1.0, 0.05), "The KL term keeps every answer: the optimum is a sharpened reference "
                                           "(p_ref squared, renormalised), not the single most typical answer. "
                                           "Only beta -> 0 would give the argmax."),
                        (near(0.25, 0.02), "0.5 squared is right, but a distribution must be renormalised: divide "
                                            "by 0.5^2 + 0.3^2 + 0.2^2.")),
        lesson="pi* is proportional to p_ref exp(r / beta) = p_ref^(1 + gamma/beta): here p_ref squared, "
               "renormalised, the reference decoded at temperature 1/2, and the power family's fixed point at "
               "alpha = 1/2. A reward that merely likes familiar text acts on the trained model like a lower sampling "
               "temperature, even when every answer is equally good."),
)
