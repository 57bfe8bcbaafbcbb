"""Tests for dftlab.temperature: five mechanisms, one temperature (chapter 7).

Each mechanism's measured temperature is checked against its theory: decoding and synthetic data at T give T (the
second up to sampling noise, with Zipf's exponent s becoming s / T), a reward gamma log p with KL price beta gives
beta / (beta + gamma), the power loss at alpha aims at 1 - alpha, and Dynamic FT ends at the mode, T -> 0, without
being a temperature on the way.
"""
import math

import matplotlib
import numpy as np
import pytest

from dftlab import temperature, toy
from dftlab.temperature import (compare_mechanisms, fit_temperature, mechanism_probs, tail_temperature,
                                top_token_temperature)
from dftlab.tinytales import zipf_probabilities

matplotlib.use("Agg")
ZIPF = np.array(zipf_probabilities(10, 1.1))


@pytest.fixture(scope="module")
def comparison():
    return compare_mechanisms(dft_steps=(0, 100, 1000), sample_size=200_000)


@pytest.mark.parametrize("mechanism", ["decoding", "preference", "power loss"])
def test_closed_form_mechanisms_are_exactly_their_theory_temperature(comparison, mechanism):
    rows = comparison.table[comparison.table["mechanism"] == mechanism]
    assert len(rows) == 4
    for column in ("fitted T", "top-token T", "tail T"):
        assert np.allclose(rows[column], rows["theory T"], atol=1e-9), column
    assert np.allclose(rows["misfit (nats)"], 0, atol=1e-9)
    assert np.allclose(rows["Zipf exponent"], 1.1 / rows["theory T"])


def test_synthetic_data_at_T_is_p_at_T_and_divides_zipfs_exponent_by_T(comparison):
    rows = comparison.table[comparison.table["mechanism"] == "synthetic data"]
    assert np.allclose(rows["fitted T"], rows["theory T"], rtol=0.03)
    assert np.allclose(rows["top-token T"], rows["theory T"], rtol=0.01)
    assert np.allclose(rows["Zipf exponent"], 1.1 / rows["theory T"], rtol=0.03)


def test_preference_for_the_familiar_is_temperature_beta_over_beta_plus_gamma():
    for gamma, beta in [(0.5, 1.0), (2.0, 0.5), (1.0, 3.0)]:
        tuned = toy.preference_optimum(ZIPF, gamma * np.log(ZIPF), beta=beta).numpy()
        assert fit_temperature(tuned, ZIPF).temperature == pytest.approx(beta / (beta + gamma), abs=1e-9)
        # the module's knob is gamma / beta at beta = 1: the same point
        assert np.allclose(mechanism_probs(ZIPF, "preference", gamma / beta), tuned, atol=1e-12)


def test_gradient_descent_on_the_power_loss_reaches_T_equal_one_minus_alpha():
    """The power loss's fixed point, where descent on it actually goes (slowly in the tail: a large step helps)."""
    q = np.array(zipf_probabilities(5, 1.1))
    for alpha, steps, lr in [(0.25, 500, 2.0), (0.5, 1000, 4.0)]:
        fit = toy.fit_categorical(q, "power", alpha=alpha, steps=steps, lr=lr, record_every=steps)
        assert fit_temperature(fit.probs, q).temperature == pytest.approx(1 - alpha, abs=1e-6)


def test_dft_heads_for_T_zero_but_is_no_temperature_on_the_way(comparison):
    rows = comparison.table[comparison.table["mechanism"] == "dft"].set_index("setting")
    assert rows.loc[0.0, "fitted T"] == pytest.approx(1.0)  # it starts from p itself
    top = rows["top-token T"].to_numpy()
    assert (np.diff(top) < 0).all() and top[-1] < 0.2  # the top token sharpens towards T = 0 ...
    assert (rows.loc[[100.0, 1000.0], "tail T"] > 1.1).all()  # ... while the rest grows flatter than p
    assert (rows.loc[[100.0, 1000.0], "misfit (nats)"] > 1).all()  # so no single temperature fits it
    assert math.isnan(rows.loc[0.0, "theory T"])
    fixed = mechanism_probs(ZIPF, "dft", math.inf)
    assert fit_temperature(fixed, ZIPF) == (0.0, 0.0) and top_token_temperature(fixed, ZIPF) == 0.0
    assert math.isnan(tail_temperature(fixed, ZIPF))


def test_the_three_measures_agree_on_a_tempered_distribution_and_a_flat_one_is_infinitely_hot():
    for T in (0.3, 1.0, 2.0):
        tempered = ZIPF ** (1 / T) / (ZIPF ** (1 / T)).sum()
        assert fit_temperature(tempered, ZIPF).temperature == pytest.approx(T)
        assert top_token_temperature(tempered, ZIPF) == pytest.approx(T, rel=1e-9)
        assert tail_temperature(tempered, ZIPF) == pytest.approx(T)
    assert fit_temperature(np.full(10, 0.1), ZIPF).temperature == math.inf


def test_the_figure_has_five_mechanism_panels_and_the_distributions(comparison):
    axes = temperature.plot_temperatures(comparison, show_temperature=0.5, show_dft_steps=1000)
    assert axes.shape == (3, 2)
    assert [ax.get_title() for ax in axes.flat[:5]] == [temperature.TITLES[m] for m in temperature.MECHANISMS]
    matplotlib.pyplot.close("all")
    with pytest.raises(ValueError, match="dft_steps"):
        temperature.plot_temperatures(comparison, show_dft_steps=77)


@pytest.mark.parametrize("call, message", [
    (lambda: mechanism_probs(ZIPF, "sampling", 0.5), "unknown mechanism 'sampling'; choose one of"),
    (lambda: mechanism_probs(ZIPF, "decoding", 0), r"setting \(the temperature T\) must be a finite number > 0"),
    (lambda: mechanism_probs(ZIPF, "power loss", 1.0), r"setting \(alpha\) must be a finite number in \[0, 1\)"),
    (lambda: mechanism_probs(ZIPF, "preference", -1.0), r"setting \(gamma / beta\) must be"),
    (lambda: mechanism_probs(ZIPF, "dft", 2.5), r"setting \(training steps\).*math.inf for DFT's fixed point"),
    (lambda: mechanism_probs([0.5, 0.6], "decoding", 0.5), "must sum to 1"),
    (lambda: mechanism_probs([1.0, 0.0], "decoding", 0.5), "each with positive probability"),
    (lambda: fit_temperature(ZIPF[:5] / ZIPF[:5].sum(), ZIPF), "same length"),
    (lambda: fit_temperature(ZIPF, np.full(10, 0.1)), "reference is uniform"),
    (lambda: fit_temperature(np.eye(10)[3], ZIPF), "not the reference's most likely"),
    (lambda: compare_mechanisms(temperatures=(0.5, 1.5)), "Sharpening means T <= 1"),
    (lambda: compare_mechanisms(zipf_exponent=0), "0 would be uniform"),
])
def test_bad_input_names_the_problem_and_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_chapters_the_docstring_names_hold_what_it_says():
    """The module says chapter 7 draws it, and names where each mechanism was derived."""
    from pathlib import Path

    import nbformat

    chapters = Path(__file__).resolve().parents[1] / "chapters"

    def code(name):
        return "\n".join(cell.source for cell in nbformat.read(chapters / name, as_version=4).cells)

    assert "temperature.compare_mechanisms(" in code("07_back_to_mle.ipynb")
    assert "temperature.plot_temperatures(" in code("07_back_to_mle.ipynb")
    assert "1.1 / 0.55" in code("03_sft.ipynb")  # synthetic data sampled at T: Zipf exponent s / T
    assert "toy.preference_optimum(" in code("05_dft_in_the_study.ipynb")
    assert "toy.power_fixed_point(" in code("05_dft_in_the_study.ipynb")
