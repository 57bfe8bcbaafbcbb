"""Five mechanisms, one temperature (chapter 7).

Sampling a distribution p at temperature T turns p_k into p_k ** (1 / T), normalised: T < 1 gives more of the
already likely and less of the rest. Five different steps in a language model's life end at such a sharpened copy
of the distribution they start from, p (here a Zipf distribution, as in TinyTales):

===================  ===============================================  ====================================
mechanism            knob                                             where it ends
===================  ===============================================  ====================================
decoding             sample at temperature T (chapter 1)              p at T
synthetic data       fit, by maximum likelihood, text sampled at T    p at T, up to sampling noise;
                     (chapter 3)                                      Zipf's exponent s becomes s / T
preference           reward gamma log p(y) (raters who like the       p at T = beta / (beta + gamma)
                     familiar), KL penalty beta (chapter 5)
power loss           (1 - p**alpha) / alpha (chapter 5)               its fixed point: p at T = 1 - alpha
dft                  Dynamic FT, trained from p (chapters 4 and 5)    its fixed point: the mode, T -> 0
===================  ===============================================  ====================================

Each mechanism is computed with the package's own function for it (`distributions.softmax_with_temperature`,
`toy.preference_optimum`, `toy.power_fixed_point`, `toy.fit_categorical`); nothing here derives them a second time.
The temperature of a result q is then *measured*, three ways that agree whenever q really is p at some temperature:

- from its shape: the least-squares slope of log q against log p, since log q = log p / T + const
  (`fit_temperature`, which also reports the misfit: how far, in nats, the worst token lies off that line);
- from its top token: the T at which p's most likely token gets the probability q gives it (`top_token_temperature`);
- from the rest: the slope fitted without that top token (`tail_temperature`).

For the first four they agree to rounding (synthetic data: to sampling noise). For Dynamic FT they do not: on its
way to the mode it is no temperature at all. Its top token rises as at a temperature far below the fitted one,
while the rest, drained at a rate proportional to each token's own probability, grows *flatter* than p
(`compare_mechanisms` measures it; chapter 7 draws it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from dftlab import toy
from dftlab.distributions import check_probs, softmax_with_temperature
from dftlab.plots import COURSE_STYLE, PALETTE
from dftlab.tinytales import DEFAULT_ZIPF_EXPONENT, zipf_probabilities
from dftlab.validation import check_int, check_number

# mechanism -> (its knob as a reader sees it, the temperature theory predicts from the knob's setting, a setting
# written short)
MECHANISMS = {
    "decoding": ("sampling temperature T", lambda T: T, "T = {:.3g}".format),
    "synthetic data": ("temperature T of the synthetic text", lambda T: T, "T = {:.3g}".format),
    "preference": ("familiarity reward γ / β", lambda ratio: 1.0 / (1.0 + ratio), "γ/β = {:.3g}".format),
    "power loss": ("α of the power loss", lambda alpha: 1.0 - alpha, "α = {:.3g}".format),
    "dft": ("training steps", lambda steps: 0.0 if steps == math.inf else math.nan,
            lambda steps: "fixed point" if steps == math.inf else f"{steps:,} steps"),
}
DEFAULT_TEMPERATURES = (1.0, 0.75, 0.5, 0.25)
DEFAULT_DFT_STEPS = (0, 10, 100, 1000, 10_000)


class TemperatureFit(NamedTuple):
    """The temperature that best explains q as p ** (1 / T), and the worst token's distance from that line (nats)."""

    temperature: float
    misfit: float


def _pair(probs, reference) -> tuple[np.ndarray, np.ndarray]:
    probs = check_probs(torch.as_tensor(np.asarray(probs, dtype=np.float64)), "probs").numpy()
    reference = check_probs(torch.as_tensor(np.asarray(reference, dtype=np.float64)), "reference").numpy()
    if probs.shape != reference.shape or probs.ndim != 1:
        raise ValueError(f"probs and reference must be 1-D distributions of the same length, got shapes "
                         f"{probs.shape} and {reference.shape}")
    if (reference <= 0).any():
        raise ValueError("reference must give every token a positive probability: a temperature cannot bring back "
                         "a token it rules out. Drop those tokens from both distributions first.")
    if np.ptp(np.log(reference)) < 1e-12:
        raise ValueError("reference is uniform, and a uniform distribution is the same at every temperature; "
                         "pass a reference with some tokens more likely than others (e.g. a Zipf distribution)")
    return probs, reference


def fit_temperature(probs, reference) -> TemperatureFit:
    """The temperature T of `probs` relative to `reference`, from the least-squares line log q = log p / T + c.

    Tokens to which `probs` gives no probability are left out of the fit (a finite sample misses rare tokens). A
    distribution that keeps only the reference's most likely token is the T -> 0 limit: temperature 0, misfit 0.
    A flat `probs` has slope 0: temperature infinity. The misfit is the largest distance, in nats, of a token's
    log q from the line: 0 when `probs` is exactly `reference` at some temperature.
    """
    probs, reference = _pair(probs, reference)
    kept = probs > 0
    if kept.sum() == 1:
        if reference[kept][0] == reference.max():
            return TemperatureFit(0.0, 0.0)
        raise ValueError("probs puts all its mass on a token that is not the reference's most likely one; no "
                         "temperature of the reference does that")
    x, y = np.log(reference[kept]), np.log(probs[kept])
    slope, intercept = np.polyfit(x, y, 1)
    misfit = float(np.abs(y - (slope * x + intercept)).max())
    return TemperatureFit(math.inf if abs(slope) < 1e-12 else float(1.0 / slope), misfit)


def tail_temperature(probs, reference) -> float:
    """`fit_temperature` of everything but the reference's most likely token: the shape of the rest, renormalised.

    For a distribution that is `reference` at some temperature, the same temperature. NaN when `probs` leaves the
    rest no probability (the T -> 0 limit has no tail to measure).
    """
    probs, reference = _pair(probs, reference)
    rest = reference < reference.max()
    if probs[rest].sum() == 0 or (probs[rest] > 0).sum() < 2:
        return math.nan
    return fit_temperature(probs[rest] / probs[rest].sum(), reference[rest] / reference[rest].sum()).temperature


def top_token_temperature(probs, reference) -> float:
    """The temperature at which `reference` gives its most likely token the probability that `probs` gives it.

    Found by bisection on log T between 1e-3 and 1e3 (`softmax_with_temperature` computes each candidate); 0 when
    `probs` gives that token probability 1. For a distribution that is `reference` at some temperature, the answer
    is that temperature, as `fit_temperature`'s is.
    """
    probs, reference = _pair(probs, reference)
    top = int(np.argmax(reference))
    if probs[top] >= 1.0 - 1e-15:
        return 0.0
    log_reference = torch.as_tensor(np.log(reference))

    def top_probability(temperature):
        return softmax_with_temperature(log_reference, temperature)[top].item()

    low, high = math.log(1e-3), math.log(1e3)  # top_probability falls as T rises
    if not top_probability(math.exp(high)) <= probs[top] <= top_probability(math.exp(low)):
        raise ValueError(f"probs gives the reference's top token {probs[top]:.4g}, which no temperature between "
                         "1e-3 and 1e3 gives it")
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if top_probability(math.exp(middle)) > probs[top] else (low, middle)
    return math.exp((low + high) / 2)


def mechanism_probs(reference, mechanism: str, setting: float, *, sample_size: int = 1_000_000, seed: int = 0,
                    lr: float = 0.5) -> np.ndarray:
    """The distribution `mechanism` makes from `reference` at `setting` of its knob (see MECHANISMS).

    decoding: `reference` at temperature T = setting. synthetic data: the maximum-likelihood fit (the frequencies,
    chapter 2) of `sample_size` tokens drawn from `reference` at T = setting, seeded. preference: the optimum of
    KL-regularised preference tuning with reward gamma log reference and beta = 1, gamma = setting. power loss: the
    power loss's fixed point at alpha = setting. dft: `reference` after `setting` steps of exact-gradient Dynamic FT
    (learning rate `lr`) starting from it, a model that already matches its data; setting = math.inf gives DFT's
    fixed point.
    """
    reference = check_probs(torch.as_tensor(np.asarray(reference, dtype=np.float64)), "reference")
    if reference.ndim != 1 or len(reference) < 2 or (reference <= 0).any():
        raise ValueError("reference must be one distribution over at least 2 tokens, each with positive probability")
    if mechanism not in MECHANISMS:
        raise ValueError(f"unknown mechanism {mechanism!r}; choose one of {list(MECHANISMS)}")
    log_reference = torch.log(reference)
    if mechanism in ("decoding", "synthetic data"):
        temperature = check_number(setting, "setting (the temperature T)", 0.0, low_open=True)
        tempered = softmax_with_temperature(log_reference, temperature)
        if mechanism == "decoding":
            return tempered.numpy()
        sample_size = check_int(sample_size, "sample_size")
        generator = torch.Generator().manual_seed(check_int(seed, "seed", None))
        tokens = torch.multinomial(tempered, sample_size, replacement=True, generator=generator)
        return (torch.bincount(tokens, minlength=len(reference)).double() / sample_size).numpy()
    if mechanism == "preference":
        gamma = check_number(setting, "setting (gamma / beta)", 0.0,
                             hint="gamma = 0 is a reward that ignores familiarity; larger gamma favours it more.")
        return toy.preference_optimum(reference, gamma * log_reference, beta=1.0).numpy()
    if mechanism == "power loss":
        return toy.power_fixed_point(reference.numpy(), check_number(setting, "setting (alpha)", 0.0, 1.0,
                                                                     high_open=True))
    if setting == math.inf:
        return toy.fixed_point(reference.numpy(), "dft")
    steps = check_int(setting, "setting (training steps)", 0, hint="Use math.inf for DFT's fixed point.")
    return toy.fit_categorical(reference.numpy(), "dft", steps=steps, lr=lr, record_every=max(steps, 1),
                               init_logits=log_reference.numpy()).probs


@dataclass
class TemperatureComparison:
    """The result of `compare_mechanisms`: the reference, a tidy table, and each distribution the table measures."""

    reference: np.ndarray
    zipf_exponent: float
    table: pd.DataFrame
    distributions: dict = field(repr=False)  # (mechanism, setting) -> the distribution, shape [V]


def compare_mechanisms(vocab_size: int = 10, zipf_exponent: float = DEFAULT_ZIPF_EXPONENT,
                       temperatures=DEFAULT_TEMPERATURES, dft_steps=DEFAULT_DFT_STEPS, *,
                       sample_size: int = 1_000_000, seed: int = 0) -> TemperatureComparison:
    """Every mechanism applied to a Zipf distribution over `vocab_size` tokens, each measured for its temperature.

    The first four mechanisms are set to match each of `temperatures` by their theory (T; T; gamma / beta = 1 / T - 1;
    alpha = 1 - T); Dynamic FT has no such knob and runs for each of `dft_steps` (math.inf: its fixed point). One row
    per (mechanism, setting), the setting also written short ("α = 0.25"): the theory's temperature (NaN where it has
    none), the fitted temperature and misfit (`fit_temperature`), the top-token and tail temperatures
    (`top_token_temperature`, `tail_temperature`) and the Zipf exponent of the result, s / T fitted (exact for a
    Zipf reference, since log p = -s log rank + const).
    """
    vocab_size = check_int(vocab_size, "vocab_size", 2)
    zipf_exponent = check_number(zipf_exponent, "zipf_exponent", 0.0, low_open=True,
                                 hint="0 would be uniform, which no temperature changes.")
    temperatures = [check_number(t, "each of temperatures", 0.0, 1.0, low_open=True,
                                 hint="Sharpening means T <= 1.") for t in temperatures]
    reference = np.array(zipf_probabilities(vocab_size, zipf_exponent))
    settings = {"decoding": temperatures, "synthetic data": temperatures,
                "preference": [1.0 / t - 1.0 for t in temperatures], "power loss": [1.0 - t for t in temperatures],
                "dft": list(dft_steps)}
    rows, distributions = [], {}
    for mechanism, values in settings.items():
        knob, theory, written = MECHANISMS[mechanism]
        for setting in values:
            probs = mechanism_probs(reference, mechanism, setting, sample_size=sample_size, seed=seed)
            distributions[(mechanism, setting)] = probs
            fit = fit_temperature(probs, reference)
            rows.append({"mechanism": mechanism, "knob": knob, "setting": float(setting),
                         "knob setting": written(setting),
                         "theory T": theory(setting), "fitted T": fit.temperature,
                         "top-token T": top_token_temperature(probs, reference),
                         "tail T": tail_temperature(probs, reference), "misfit (nats)": fit.misfit,
                         "Zipf exponent": zipf_exponent / fit.temperature if fit.temperature else math.inf})
    return TemperatureComparison(reference, zipf_exponent, pd.DataFrame(rows), distributions)


# ---------------------------------------------------------------------------------------------
# The figure: one panel per mechanism, and the distributions themselves.
# ---------------------------------------------------------------------------------------------

TITLES = {"decoding": "decoding at T", "synthetic data": "training on text sampled at T",
          "preference": "preference for the familiar", "power loss": "the power loss",
          "dft": "Dynamic FT (from p)"}


def plot_temperatures(comparison: TemperatureComparison, show_temperature: float = 0.5, show_dft_steps: int = 1000):
    """Five panels, one per mechanism: the temperature measured three ways (filled circles: the fitted slope; open
    squares: the top token; triangles: the rest) against the mechanism's knob, with the theory as a line. A sixth
    panel draws the distributions on log-log axes: the first four mechanisms at `show_temperature` fall on one
    straight line, p at that temperature, and Dynamic FT after `show_dft_steps` steps does not. Two panels per row,
    for a phone. Returns the Axes [3, 2].
    """
    with matplotlib.rc_context({**COURSE_STYLE, "font.size": 11, "axes.titlesize": 12, "axes.labelsize": 11,
                                "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 10}):
        return _draw(comparison, show_temperature, show_dft_steps)


def _draw(comparison, show_temperature, show_dft_steps):
    fig, axes = plt.subplots(3, 2, figsize=(7.6, 10.4))
    palette = sns.color_palette(PALETTE)
    table = comparison.table
    for index, (ax, mechanism) in enumerate(zip(axes.flat, MECHANISMS)):
        rows = table[table["mechanism"] == mechanism]
        colour = palette[index]
        top = 1.1
        if mechanism == "dft":
            rows = rows[np.isfinite(rows["setting"])]
            x = rows["setting"].to_numpy()
            ax.set_xscale("symlog", linthresh=10)
            ax.axhline(0, color="black", lw=1.2, ls="--")
            ax.text(0.3, 0.03, "fixed point: T → 0", ha="left", va="bottom", fontsize=10)
            top = max(top, float(np.nanmax(rows["tail T"])) + 0.15)
        else:
            x = rows["setting"].to_numpy()
            grid = np.linspace(x.min(), x.max(), 200)
            ax.plot(grid, [MECHANISMS[mechanism][1](value) for value in grid], color="black", lw=1.2, ls="--")
        ax.plot(x, rows["fitted T"], "o", color=colour, ms=8, zorder=3)
        ax.plot(x, rows["top-token T"], "s", mfc="none", mec="black", mew=1.3, ms=12, zorder=2)
        ax.plot(x, rows["tail T"], "^", mfc="none", mec="black", mew=1.1, ms=7, zorder=4)
        ax.set(title=TITLES[mechanism], xlabel=MECHANISMS[mechanism][0], ylabel="temperature", ylim=(-0.05, top))
    _draw_distributions(axes.flat[5], comparison, show_temperature, show_dft_steps, palette)
    handles = [matplotlib.lines.Line2D([], [], color="grey", marker="o", ls="", ms=8, label="T fitted to all tokens"),
               matplotlib.lines.Line2D([], [], color="black", marker="s", mfc="none", ls="", ms=10,
                                       label="T of the top token"),
               matplotlib.lines.Line2D([], [], color="black", marker="^", mfc="none", ls="", ms=7,
                                       label="T of the rest"),
               matplotlib.lines.Line2D([], [], color="black", ls="--", label="theory")]
    fig.legend(handles=handles, loc="lower center", ncol=2, bbox_to_anchor=(0.5, -0.06), frameon=False)
    fig.tight_layout()
    return axes


def _draw_distributions(ax, comparison, temperature, dft_steps, palette):
    ranks = np.arange(1, len(comparison.reference) + 1)
    ax.plot(ranks, comparison.reference, color="grey", lw=1.5, label="p itself")
    tempered = softmax_with_temperature(torch.as_tensor(np.log(comparison.reference)), temperature).numpy()
    ax.plot(ranks, tempered, color="black", ls="--", lw=1.2, label=f"p at T = {temperature:g}")
    settings = {"decoding": temperature, "synthetic data": temperature, "preference": 1.0 / temperature - 1.0,
                "power loss": 1.0 - temperature}
    sizes = {"decoding": 12, "synthetic data": 9.5, "preference": 7, "power loss": 4.5}  # nested, all visible
    for index, (mechanism, setting) in enumerate(settings.items()):
        probs = _stored(comparison, mechanism, setting)
        ax.plot(ranks, probs, "o", color=palette[index], ms=sizes[mechanism], mec="black", mew=0.4, ls="",
                label="the four (colours as above)" if index == 0 else None)
    dft = _stored(comparison, "dft", dft_steps)
    ax.plot(ranks, dft, "-", color=palette[4], lw=2, marker="s", ms=5, label=f"DFT, {dft_steps:,} steps")
    ax.set(xscale="log", yscale="log", xlabel="rank of the token in p", ylabel="probability",
           title=f"the four at T = {temperature:g}, and DFT")
    ax.set_ylim(bottom=1e-6)  # room for the legend below DFT's tail
    ax.legend(loc="lower left", fontsize=9)


def _stored(comparison, mechanism, setting):
    for (name, value), probs in comparison.distributions.items():
        if name == mechanism and math.isclose(value, setting, rel_tol=1e-9, abs_tol=1e-12):
            return probs
    raise ValueError(f"compare_mechanisms computed no {mechanism!r} at {setting!r}; pass it in its settings "
                     f"(temperatures or dft_steps) or choose one it has")
