"""Tests for dftlab.toy: the dynamics of one categorical distribution, and of a bigram language."""
import math

import numpy as np
import pytest
import torch

from dftlab import toy
from dftlab.objectives import OBJECTIVES
from dftlab.toy import (fit_bigram, fit_categorical, fixed_point, logit_gradient, simplex_trajectories,
                        ternary_coordinates)

# The worked example of science.md section 3.
TARGET = np.array([0.40, 0.25, 0.15, 0.12, 0.08])


def entropy(p):
    p = np.asarray(p)
    return float(-(p[p > 0] * np.log(p[p > 0])).sum())


def kl(q, p):
    return float((q * np.log(q / p)).sum())


def test_exact_nll_reaches_the_target():
    fit = fit_categorical(TARGET, "nll", steps=1000, lr=0.5)
    assert kl(TARGET, fit.probs) < 1e-3
    assert fit.kl[-1] < 1e-3
    assert entropy(fit.probs) == pytest.approx(1.454, abs=1e-3)  # H(q), the value science.md quotes
    assert fit.trajectory.shape == (1001, 5) and np.allclose(fit.trajectory[0], 0.2)


def test_exact_dft_goes_to_the_mode_at_the_quoted_speed():
    fit = fit_categorical(TARGET, "dft", steps=1000, lr=0.5, record_every=100)
    assert list(fit.steps) == list(range(0, 1001, 100))
    assert fit.probs.argmax() == 0 and fit.probs.max() > 0.99
    # science.md: top probability 0.835 after 100 steps, 0.992 after 1000.
    assert fit.trajectory[1].max() == pytest.approx(0.835, abs=1e-3)
    assert fit.trajectory[-1].max() == pytest.approx(0.992, abs=1e-3)
    # The top probability only ever grows, and KL(q || p) grows with it.
    assert np.all(np.diff(fit.trajectory[:, 0]) > 0) and np.all(np.diff(fit.kl) > 0)


def test_mix_lands_between_nll_and_dft():
    entropies = {name: entropy(fit_categorical(TARGET, name, steps=2000, lr=0.5).probs) for name in ("nll", "dft")}
    mixed = fit_categorical(TARGET, "mix", steps=2000, lr=0.5, lam=0.5).probs
    assert entropies["dft"] < entropy(mixed) < entropies["nll"]
    assert TARGET[0] < mixed[0] < 1.0


@pytest.mark.parametrize("name, kwargs", [
    ("nll", {}), ("dft", {}), ("dft_floored", {"floor": 0.3}), ("power", {"alpha": 0.5}),
    ("power", {"alpha": 1.0}), ("mix", {"lam": 0.3}), ("asft", {"lam": 0.2}),
])
def test_logit_gradient_matches_autograd_of_the_expected_loss(name, kwargs):
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(5))
    logits = torch.tensor(np.log(probs), requires_grad=True)
    base = {"base_logits": torch.zeros(1, 5, dtype=torch.float64)} if name == "asft" else {}
    expected_loss = sum(TARGET[y] * OBJECTIVES[name](logits[None], torch.tensor([y]), **base, **kwargs)
                        for y in range(5))
    (autograd,) = torch.autograd.grad(expected_loss, logits)
    assert np.allclose(logit_gradient(probs, TARGET, name, **kwargs), autograd.numpy(), atol=1e-12)


def test_logit_gradient_closed_forms_of_the_chapter():
    probs = np.array([0.1, 0.2, 0.3, 0.3, 0.1])
    assert np.allclose(logit_gradient(probs, TARGET, "nll"), probs - TARGET)
    by_hand = sum(TARGET[y] * probs[y] * (probs - np.eye(5)[y]) for y in range(5))
    assert np.allclose(logit_gradient(probs, TARGET, "dft"), by_hand)
    # A user's own objective goes through autograd.
    own = logit_gradient(probs, TARGET, lambda logits, labels, reduction="mean": OBJECTIVES["nll"](
        logits, labels, reduction=reduction))
    assert np.allclose(own, probs - TARGET)


def test_sampled_nll_ends_near_the_target():
    fit = fit_categorical(TARGET, "nll", steps=400, lr=0.5, exact=False, batch_size=64, seed=1, record_every=400)
    assert np.abs(fit.probs - TARGET).max() < 0.06
    assert fit.kl[-1] < 0.02
    again = fit_categorical(TARGET, "nll", steps=400, lr=0.5, exact=False, batch_size=64, seed=1, record_every=400)
    assert np.array_equal(fit.probs, again.probs)  # seeded


def test_asft_stays_closer_to_its_uniform_anchor_than_dft():
    uniform = np.full(5, 0.2)
    anchored = fit_categorical(TARGET, "asft", steps=2000, lam=0.2, record_every=2000).probs
    free = fit_categorical(TARGET, "dft", steps=2000, record_every=2000).probs
    assert kl(uniform, anchored) < kl(uniform, free)


def test_fixed_points():
    assert np.allclose(fixed_point(TARGET, "nll"), TARGET)
    assert np.allclose(fixed_point(TARGET, "dft"), [1, 0, 0, 0, 0])
    assert np.allclose(fixed_point(TARGET, "power", alpha=1.0), [1, 0, 0, 0, 0])
    assert np.allclose(fixed_point(TARGET, "mix", lam=1.0), TARGET)
    assert np.allclose(fixed_point([0.4, 0.4, 0.2], "dft"), [0.5, 0.5, 0])
    # Without a closed form the answer comes from the dynamics; at it the expected gradient vanishes.
    mixed = fixed_point(TARGET, "mix", lam=0.5, steps=4000)
    assert np.abs(logit_gradient(mixed, TARGET, "mix", lam=0.5)).max() < 1e-8


def test_simplex_trajectories_table():
    table = simplex_trajectories([0.5, 0.3, 0.2], steps=200, record_every=50,
                                 objective_kwargs={"mix": {"lam": 0.3}})
    assert list(table.columns[:7]) == ["objective", "step", "p0", "p1", "p2", "x", "y"]
    assert table.groupby("objective").size().to_dict() == {"nll": 5, "dft": 5, "mix": 5}
    assert np.allclose(table[["p0", "p1", "p2"]].sum(axis=1), 1.0)
    start = table[table.step == 0]
    assert np.allclose(start.x, 0.5) and np.allclose(start.y, math.sqrt(3) / 6)  # the centroid


def test_ternary_coordinates_of_the_vertices():
    x, y = ternary_coordinates(np.eye(3))
    assert np.allclose(x, [0, 1, 0.5]) and np.allclose(y, [0, 0, math.sqrt(3) / 2])


def test_bigram_nll_fits_every_context_and_dft_only_the_modes():
    transitions = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.2, 0.7]])
    fit = fit_bigram(transitions, "nll", steps=1500, lr=1.0, context_probs=[0.5, 0.3, 0.2], record_every=500)
    assert fit.conditionals.shape == (3, 3) and fit.kl.shape == (3,)
    assert fit.kl.max() < 1e-3
    assert np.all(np.diff(fit.mean_kl) < 1e-12)  # never rises (down to rounding)
    sharp = fit_bigram(transitions, "dft", steps=1500, lr=1.0, record_every=1500)
    assert np.array_equal(sharp.conditionals.argmax(1), [0, 1, 2])
    assert np.all(sharp.entropy < fit.entropy)


def test_sampled_bigram_nll_ends_near_the_conditionals():
    transitions = np.array([[0.7, 0.3], [0.2, 0.8]])
    fit = fit_bigram(transitions, "nll", steps=400, lr=1.0, exact=False, batch_size=64, record_every=400)
    assert np.abs(fit.conditionals - transitions).max() < 0.08


@pytest.mark.parametrize("call, message", [
    (lambda: fit_categorical([0.5, 0.6], "nll"), "sum to 1"),
    (lambda: fit_categorical([1.2, -0.2], "nll"), "non-negative"),
    (lambda: fit_categorical([1.0], "nll"), "V >= 2"),
    (lambda: fit_categorical(TARGET, "dtf"), "Valid names"),
    (lambda: fit_categorical(TARGET, "nll", lr=-1), "lr"),
    (lambda: fit_categorical(TARGET, "nll", steps=-5), "steps"),
    (lambda: fit_categorical(TARGET, "nll", init_logits=[0, 0]), "init_logits"),
    (lambda: fit_categorical(TARGET, "mix", lam=2.0, steps=1), "lam"),
    (lambda: simplex_trajectories(TARGET), "3-token"),
    (lambda: fit_bigram([[0.5, 0.5], [0.1, 0.9]], context_probs=[1.0]), "context_probs"),
])
def test_bad_input_raises_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_power_fixed_point_is_q_sharpened_and_matches_long_descent():
    q = np.array([0.4, 0.25, 0.15, 0.12, 0.08])
    assert toy.power_fixed_point(q, 0.0) == pytest.approx(q)
    closed = toy.power_fixed_point(q, 0.5)
    assert closed == pytest.approx(q ** 2 / (q ** 2).sum())
    fitted = toy.fit_categorical(q, "power", steps=6000, lr=0.5, alpha=0.5, record_every=6000).probs
    assert np.abs(fitted - closed).max() < 2e-3
    with pytest.raises(ValueError, match="one-hot mode"):
        toy.power_fixed_point(q, 1.0)


def test_target_view_of_dft_is_the_model_mixed_with_the_target():
    p = np.array([0.7, 0.2, 0.1])
    target = np.array([0.0, 0.0, 1.0])
    assert toy.target_view(p, target, "nll") == pytest.approx(target)
    assert toy.target_view(p, target, "dft") == pytest.approx((1 - 0.1) * p + 0.1 * target)


def test_preference_optimum_tilts_the_reference_and_a_typicality_reward_is_a_temperature():
    reference = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    tuned = toy.preference_optimum(reference, torch.tensor([0.0, 1.0, 0.0]), beta=0.5)
    expected = reference * torch.exp(torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(tuned, expected / expected.sum())
    # r = gamma log p_ref with gamma = 3 beta: the reference at T = 1/4, the power fixed point at alpha = 3/4
    typical = toy.preference_optimum(reference, 3.0 * torch.log(reference), beta=1.0)
    np.testing.assert_allclose(typical.numpy(), toy.power_fixed_point(reference.numpy(), 0.75), rtol=1e-12)
    assert toy.preference_optimum(torch.tensor([0.7, 0.3, 0.0]), torch.zeros(3), 1.0)[2] == 0  # never given, never
    batch = toy.preference_optimum(torch.full((4, 3), 1 / 3), torch.randn(4, 3, generator=torch.Generator().manual_seed(0)), 2.0)
    torch.testing.assert_close(batch.sum(-1), torch.ones(4))
    with pytest.raises(ValueError, match="beta"):
        toy.preference_optimum(reference, torch.zeros(3), 0.0)
    with pytest.raises(ValueError, match="one reward per answer"):
        toy.preference_optimum(reference, torch.zeros(4), 1.0)
