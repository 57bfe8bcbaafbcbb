"""Figures used across the chapters, drawn with seaborn in one colour-blind-safe style.

Each function takes data (a table or a tensor) and returns the matplotlib Axes, so a chapter cell is
one call plus, at most, a title. Importing this module changes no matplotlib setting: every plot function
draws inside `matplotlib.rc_context(COURSE_STYLE)`, and `set_style()` applies the course look (and, in a
notebook, SVG figures) to everything else, for a chapter that calls it.
"""
from __future__ import annotations

import functools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from dftlab.distributions import decoding_distribution, entropy, entropy_by_temperature
from dftlab.models import STRONG_PRIOR_MODEL

PALETTE = "colorblind"
# The course look as matplotlib settings: seaborn's white grid and notebook sizes, the colour-blind-safe palette.
COURSE_STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook"),
                "axes.prop_cycle": matplotlib.cycler(color=sns.color_palette(PALETTE)),
                "figure.figsize": (7, 3.6), "figure.dpi": 100, "savefig.bbox": "tight",
                "svg.fonttype": "none", "svg.hashsalt": "dftlab"}


def _course_style(plot):
    """Draw `plot` inside rc_context(COURSE_STYLE): the course look, with the caller's settings left as they were."""
    @functools.wraps(plot)
    def styled(*args, **kwargs):
        with matplotlib.rc_context(COURSE_STYLE):
            return plot(*args, **kwargs)
    return styled


def set_style() -> None:
    """Give every figure from now on the course look (COURSE_STYLE): an explicit, global call for a chapter's
    first cell, so that figures drawn with matplotlib or seaborn directly match those of dftlab.plots.

    In a notebook, figures are SVG (sharp at any zoom, enlarged by a click on the website), with text kept as
    text and fixed ids and no date in the file, so a re-run writes the same bytes.
    """
    matplotlib.rcParams.update(COURSE_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:
        return
    shell = get_ipython()
    if shell is not None and "IPKernelApp" in shell.config:
        set_matplotlib_formats("svg", bbox_inches="tight", metadata={"Date": None})


# Names as a reader should see them in headers, menus and legends (anything else: underscores become spaces).
READABLE_NAMES = {
    "nll": "NLL", "dft": "DFT", "dft_floored": "DFT, floored", "asft": "ASFT", "power": "power (α = 0.5)",
    "power_0.25": "power, α = 0.25", "power_0.5": "power, α = 0.5", "mix": "mix", "base": "base model",
    "truth": "truth", "distribution_matching_0.3": "dist. matching, λ = 0.3",
    "distribution_matching_1": "dist. matching, λ = 1", "distribution_matching_3": "dist. matching, λ = 3",
    "T=1": "T = 1", "T=0.7,top-p=0.9": "T = 0.7, top-p = 0.9", "kl": "KL(q || p)", "mmd2": "MMD²",
    "T=0.7, top-p 0.9": "T = 0.7, top-p = 0.9",  # the chat model's sample set (dftlab.chat_samples)
    "mmd_p_value": "MMD p-value", "self_bleu": "self-BLEU", "distinct_1": "distinct-1", "distinct_2": "distinct-2",
    "distinct_3": "distinct-3", "token_l2_1": "token-L2 (unigrams)", "token_l2_2": "token-L2 (bigrams)",
    "valid_nll": "validation NLL", "valid_entropy": "validation entropy", "train_loss": "training loss",
    "p_value": "p-value", "zipf_exponent": "Zipf exponent", "sample_size": "sample size",
}


def readable(name) -> str:
    """`name` (an objective, metric, decoding or column) as a reader should see it: 'dft_floored' -> 'DFT, floored'."""
    name = str(name)
    return READABLE_NAMES.get(name, name.replace("_", " "))


def table(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """`frame` as a reader should see it: readable headers, and numbers as text with `digits` significant digits.

    Each float column gets enough decimals for its smallest non-zero value (so a frequency of 2e-05 is not shown
    as 0.0); a value that rounds to zero shows as 0, never -0.0, and a missing value (e.g. no training loss at
    step 0, before any step was taken) as an em dash.
    """
    shown = frame.copy()
    for column in shown.columns:
        if pd.api.types.is_float_dtype(shown[column]):
            shown[column] = _format_numbers(shown[column].to_numpy(dtype=float), digits)
    shown.columns = [readable(column) for column in shown.columns]
    if shown.index.name is not None:
        shown.index.name = readable(shown.index.name)
    return shown


def _format_numbers(values: np.ndarray, digits: int) -> list[str]:
    values = np.where(np.abs(values) < 1e-9, 0.0, values)  # rounding noise (a KL of -1e-12) is a zero
    finite = values[np.isfinite(values) & (values != 0)]
    smallest = np.abs(finite).min() if finite.size else 1.0
    decimals = int(max(0, digits - 1 - np.floor(np.log10(smallest))))
    shown = []
    for value in values:
        if not np.isfinite(value):
            shown.append("—")
            continue
        # more than 6 decimals would be a row of zeros to read: scientific notation, e.g. 1.23e-06
        text = f"{value:.{decimals}f}" if decimals <= 6 else f"{value:.{digits}g}"
        if float(text) == 0:
            text = "0"
        shown.append(text)
    return shown


def _new_axes(ax):
    return ax if ax is not None else plt.subplots()[1]


@_course_style
def plot_top_tokens(table: pd.DataFrame, title: str = "", ax=None):
    """Bar chart of a `dftlab.generate.top_tokens` table."""
    ax = _new_axes(ax)
    sns.barplot(data=table, x="probability", y="token", ax=ax, color=sns.color_palette(PALETTE)[0])
    ax.set(xlabel="probability of the next token", ylabel="token", title=title)
    return ax


@_course_style
def plot_entropy_by_temperature(logits: torch.Tensor, temperatures=None, ax=None):
    """How temperature moves the entropy of one next-token distribution, with log(V) as the ceiling."""
    temperatures = np.geomspace(0.1, 10, 40) if temperatures is None else temperatures
    table = entropy_by_temperature(logits, temperatures)
    ax = _new_axes(ax)
    sns.lineplot(data=table, x="temperature", y="entropy (nats)", ax=ax, marker="o", markersize=3)
    ax.axhline(np.log(logits.shape[-1]), ls="--", color="grey", label=f"log V = {np.log(logits.shape[-1]):.2f} (uniform)")
    ax.axvline(1.0, ls=":", color="black", label="T = 1 (the model's own distribution)")
    ax.set(xscale="log", xlabel="temperature T (log scale)", ylabel="entropy (nats)")
    _legend_below(ax, ncol=1, offset=-0.22)
    return ax


@_course_style
def plot_decoding_distribution(logits: torch.Tensor, tokenizer, temperature: float = 1.0, top_k=None, top_p=None,
                               k: int = 15, ax=None):
    """The first k tokens' probabilities before and after temperature / top-k / top-p."""
    original = torch.softmax(logits.double(), -1)
    decoded = decoding_distribution(logits.double(), temperature, top_k, top_p)
    ids = torch.topk(original, k).indices.tolist()
    labels = [repr(tokenizer.decode([i])) for i in ids]
    table = pd.concat([
        pd.DataFrame({"token": labels, "probability": original[ids].tolist(), "distribution": "model (T = 1)"}),
        pd.DataFrame({"token": labels, "probability": decoded[ids].tolist(),
                      "distribution": _decoding_label(temperature, top_k, top_p)}),
    ])
    ax = _new_axes(ax)
    sns.barplot(data=table, x="probability", y="token", hue="distribution", ax=ax)
    ax.set(xlabel="probability", ylabel="token",
           title=f"entropy {entropy(original).item():.2f} -> {entropy(decoded).item():.2f} nats")
    _legend_below(ax, ncol=2, offset=-0.16, title=None)
    return ax


def _decoding_label(temperature: float, top_k=None, top_p=None) -> str:
    """'T = 0.7, top-p = 0.9': only the settings that are on (no 'top-k = None')."""
    parts = [f"T = {temperature:g}"] + ([f"top-k = {top_k}"] if top_k is not None else []) \
        + ([f"top-p = {top_p:g}"] if top_p is not None and top_p < 1 else [])
    return ", ".join(parts)


def _legend_below(ax, ncol: int = 2, offset: float = -0.2, **kwargs):
    """A legend under the axes, off the data (and out of the way on a narrow screen)."""
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, offset), ncol=ncol, frameon=False, fontsize=9, **kwargs)


@_course_style
def plot_zipf(named_texts: dict[str, list[str]], ax=None):
    """Rank-frequency curves on log-log axes, one per named corpus: a straight line is Zipf's law.

    Each curve is `dftlab.metrics.rank_frequency(texts)`, the course's words (`dftlab.metrics.words.words`), the
    same rows `dftlab.metrics.zipf_coefficient` fits its line to."""
    from dftlab.metrics.text import rank_frequency

    ax = _new_axes(ax)
    tables = [rank_frequency(texts).assign(source=name) for name, texts in named_texts.items()]
    sns.lineplot(data=pd.concat(tables), x="rank", y="frequency", hue="source", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="rank of the word (log scale)", ylabel="relative frequency (log scale)")
    return ax


@_course_style
def plot_score_curves(table: pd.DataFrame, q1: float, ax=None):
    """Expected score against the forecast, one panel-free line per rule, with the truth marked (chapter 2)."""
    ax = _new_axes(ax)
    for rule, group in table.groupby("rule", sort=False):
        span = group["expected score"].max() - group["expected score"].min()
        scaled = (group["expected score"] - group["expected score"].min()) / span  # put the rules on one 0-1 scale
        line, = ax.plot(group["forecast p"], scaled, label=f"{rule} score")
        best = group["forecast p"].iloc[int(np.argmax(group["expected score"].to_numpy()))]
        ax.axvline(best, color=line.get_color(), ls=":", lw=1)
    ax.axvline(q1, color="black", ls="--", lw=1, label=f"truth q = {q1}")
    ax.set(xlabel="forecast probability p of outcome 1", ylabel="expected score (rescaled to 0-1)")
    ax.legend(fontsize=9)
    return ax


def _draw_triangle(ax, labels=("token 0", "token 1", "token 2")):
    corners = np.array([[0, 0], [1, 0], [0.5, np.sqrt(3) / 2], [0, 0]])
    ax.plot(corners[:, 0], corners[:, 1], color="grey", lw=1)
    for (x, y), label, offset in zip(corners[:3], labels, [(-0.06, -0.06), (0.0, -0.06), (-0.05, 0.03)]):
        ax.text(x + offset[0], y + offset[1], label, fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")


@_course_style
def plot_simplex_trajectories(trajectories: pd.DataFrame, target, ax=None):
    """Paths of p on the 3-token simplex (a ternary plot), one per objective, with the target q marked (chapters 2 and 4)."""
    from dftlab.toy import ternary_coordinates

    ax = _new_axes(ax)
    _draw_triangle(ax)
    palette = sns.color_palette(PALETTE)
    for index, (objective, path) in enumerate(trajectories.groupby("objective", sort=False)):
        ax.plot(path["x"], path["y"], color=palette[index], lw=2, label=readable(objective))
        ax.scatter(path["x"].iloc[-1], path["y"].iloc[-1], color=palette[index], s=30, zorder=3)
    x, y = ternary_coordinates(np.asarray(target, dtype=float)[None, :])
    ax.scatter(x, y, marker="*", s=160, color="black", zorder=4, label="data distribution q")
    _legend_below(ax, ncol=2, offset=-0.02)
    return ax


@_course_style
def plot_choice_frequencies(tables: dict[str, pd.DataFrame], top: int = 8, ax=None):
    """Share of each option of one TinyTales choice (e.g. the opener) in the truth and in each set of samples.

    `tables` maps a label (e.g. "T = 1") to a `dftlab.metrics.choice_frequency_table`; the truth is read
    from the first table's `true_prob` column (chapters 3 and 4)."""
    first = next(iter(tables.values()))
    options = first.nlargest(top, "true_prob")["option"].tolist()
    rows = [{"option": o, "share": p, "source": "truth (TinyTales)"}
            for o, p in zip(first["option"], first["true_prob"]) if o in options]
    for label, table in tables.items():
        rows += [{"option": o, "share": f, "source": label}
                 for o, f in zip(table["option"], table["sample_freq"]) if o in options]
    ax = _new_axes(ax)
    sns.barplot(data=pd.DataFrame(rows), x="share", y="option", hue="source", order=options, ax=ax)
    ax.set(xlabel="share of stories", ylabel="")
    ax.legend(fontsize=8, loc="lower right")
    return ax


@_course_style
def plot_training_history(history: pd.DataFrame, columns=("valid_nll", "valid_entropy"), ax=None):
    """Validation curves of `dftlab.train` against the step (chapter 3)."""
    ax = _new_axes(ax)
    for column in columns:
        ax.plot(history["step"], history[column], marker="o", markersize=3, label=readable(column))
    ax.set(xlabel="training step", ylabel="nats per token")
    ax.legend(fontsize=9)
    return ax


def _headline_rows(summary: pd.DataFrame, base_model: str | None, steps: int | None) -> pd.DataFrame:
    """The summary rows of one base model at one budget (default: the most common fine-tuning of the first base)."""
    tuned = summary[summary["steps"] > 0]
    base_model = tuned["base_model"].iloc[0] if base_model is None and not tuned.empty else base_model
    steps = int(tuned["steps"].mode().iloc[0]) if steps is None and not tuned.empty else steps
    keep = (summary["objective"] == "truth") | ((summary["base_model"] == base_model)
                                                & summary["steps"].isin([0, steps]))
    return summary[keep]


@_course_style
def plot_study_metric(summary: pd.DataFrame, metric: str, decoding: str = "T=1", base_model: str | None = None,
                      steps: int | None = None, ax=None):
    """One metric of `dftlab.study.summary_table` per objective: the mean over seeds with its 95% CI (chapter 7).

    The rows are the runs from `base_model` at `steps` (default: the strong prior at the headline budget) and
    its base model. The truth (TinyTales' own stories) is drawn as a dashed vertical line when the table has it,
    so the distance of each objective from the data can be read off directly.
    """
    rows = _headline_rows(summary[summary["metric"] == metric], base_model, steps)
    truth = rows[rows["objective"] == "truth"]
    rows = rows[(rows["decoding"] == decoding) & (rows["objective"] != "truth")]
    if rows.empty:
        raise ValueError(f"plot_study_metric: no rows for metric={metric!r}, decoding={decoding!r}, "
                         f"base_model={base_model!r}, steps={steps!r}; check the names against summary_table(results).")
    ax = _new_axes(ax)
    positions = np.arange(len(rows))
    low = (rows["mean"] - rows["ci_low"]).fillna(0.0).to_numpy()
    high = (rows["ci_high"] - rows["mean"]).fillna(0.0).to_numpy()
    ax.errorbar(rows["mean"], positions, xerr=[low, high], fmt="o", color=sns.color_palette(PALETTE)[0], capsize=3)
    if not truth.empty and np.isfinite(truth["mean"].iloc[0]):
        ax.axvline(truth["mean"].iloc[0], color="black", linestyle="--", lw=1, label="truth")
        ax.legend(fontsize=9, loc="best")
    ax.set_yticks(positions, [readable(name) for name in rows["objective"]])
    ax.invert_yaxis()
    ax.set(xlabel=f"{readable(metric)} ({readable(decoding)}; mean and 95% CI over seeds)", ylabel="")
    return ax


@_course_style
def plot_target_probability_histograms(histograms: pd.DataFrame, objectives=("base", "nll", "dft"),
                                       base_model: str = STRONG_PRIOR_MODEL, steps: int | None = None, ax=None):
    """Where p(target token) lands after training, per objective: `dftlab.study.load_histograms`, seeds pooled.

    Dynamic FT piles the mass near 0 and 1 (the bimodal picture of Wu et al.); NLL keeps a spread (chapter 4).
    The runs are those from `base_model` at `steps` (default: its most common budget).
    """
    rows = histograms[(histograms["base_model"] == base_model) & histograms["objective"].isin(objectives)]
    if steps is None and (rows["steps"] > 0).any():
        steps = int(rows.loc[rows["steps"] > 0, "steps"].mode().iloc[0])
    rows = rows[rows["steps"].isin([0, steps])]
    if rows.empty:
        raise ValueError(f"plot_target_probability_histograms: no histograms for objectives {list(objectives)} from "
                         f"base_model={base_model!r}.")
    pooled = rows.groupby(["objective", "bin_left", "bin_right"], as_index=False)["count"].sum()
    ax = _new_axes(ax)
    for index, objective in enumerate(o for o in objectives if o in set(pooled["objective"])):
        part = pooled[pooled["objective"] == objective].sort_values("bin_left")
        share = part["count"] / part["count"].sum()
        ax.stairs(share.to_numpy(), np.append(part["bin_left"].to_numpy(), part["bin_right"].iloc[-1]),
                  color=sns.color_palette(PALETTE)[index], lw=2, label=readable(objective))
    ax.set(xlabel="probability the model gives the target token", ylabel="share of target tokens", yscale="log")
    ax.legend(fontsize=9)
    return ax


# --- Chapter 7: the whole study on one page -------------------------------------------------------------------

# The panels of the study figure: metric -> its title (which way is better, where one way is). The dashed line is the truth.
STUDY_PANELS = {
    "validity": "validity (higher is better)",
    "kl": "KL(q || p), nats per story (lower is better)",
    "top_opener_share": "share opening 'Once upon a time,'",
    "token_l2_1": "token-L2 to true stories (lower is better)",
    "predictive_entropy": "predictive entropy, nats per token",
    "distinct_2": "distinct-2",
}


@_course_style
def plot_study_grid(summary: pd.DataFrame, metrics=tuple(STUDY_PANELS), decoding: str = "T=1",
                    base_model: str | None = None, steps: int | None = None, ncols: int = 2,
                    log_metrics=("kl", "predictive_entropy")):
    """A grid of `plot_study_metric` panels, one per metric, for one decoding (chapter 7).

    Metrics in `log_metrics` get a log x-axis, because Dynamic FT's KL and entropy sit orders of magnitude
    away from the others'. Returns the array of Axes; the figure is `axes.flat[0].figure`.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    metrics = list(metrics)
    if not metrics:
        raise ValueError("plot_study_grid: pass at least one metric, e.g. metrics=['validity'].")
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.8 * ncols, 3.0 * nrows), squeeze=False,
                             sharey=True)
    for ax, metric in zip(axes.flat, metrics):
        plot_study_metric(summary, metric, decoding=decoding, base_model=base_model, steps=steps, ax=ax)
        ax.set_title(STUDY_PANELS.get(metric, readable(metric)), fontsize=10)
        ax.set_xlabel(f"mean and 95% CI over seeds ({readable(decoding)})", fontsize=9)
        if metric in log_metrics:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))  # ticks at 1, 3, 10, 30, ...
            ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    return axes


# --- Chapter 6: distribution-level comparisons (MMD) ---------------------------------------------

@_course_style
def plot_mmd_by_zipf_exponent(table: pd.DataFrame, reference_exponent: float = 1.1, highlight=None, ax=None):
    """MMD^2 against the Zipf exponent of the second sample, one line per sample size (chapter 6).

    A filled marker is a significant difference (permutation p < 0.05), a hollow one is not. The dashed
    line marks the reference exponent, where both samples come from one distribution. `highlight`, an
    (exponent, sample size) pair, rings one point (the widget's current choice).
    """
    ax = _new_axes(ax)
    palette = sns.color_palette(PALETTE)
    for index, (sample_size, part) in enumerate(table.sort_values("zipf_exponent").groupby("sample_size")):
        colour = palette[index % len(palette)]
        ax.plot(part["zipf_exponent"], part["mmd2"], color=colour, lw=1.5, label=f"n = {sample_size} per sample")
        significant = part["significant"].to_numpy(dtype=bool)
        ax.scatter(part["zipf_exponent"][significant], part["mmd2"][significant], color=colour, s=30, zorder=3)
        ax.scatter(part["zipf_exponent"][~significant], part["mmd2"][~significant], facecolors="white",
                   edgecolors=colour, s=30, zorder=3)
    if highlight is not None:
        point = table[np.isclose(table["zipf_exponent"], highlight[0]) & (table["sample_size"] == highlight[1])]
        ax.scatter(point["zipf_exponent"], point["mmd2"], s=180, facecolors="none", edgecolors="black", lw=1.5,
                   zorder=4)
    ax.axvline(reference_exponent, color="black", ls="--", lw=1,
               label=f"reference exponent {reference_exponent:g} (same distribution)")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.scatter([], [], color="grey", s=30, label="filled: p < 0.05")
    ax.scatter([], [], facecolors="white", edgecolors="grey", s=30, label="hollow: not significant")
    ax.set(xlabel="Zipf exponent of the second sample", ylabel="unbiased MMD² (RBF kernel)")
    _legend_below(ax, ncol=2, offset=-0.2)
    return ax


# --- Chapters 4 and 5: the power family, the budget sweep, calibration and the two failures of Dynamic FT ----

@_course_style
def plot_power_family(target, alphas=(0.0, 0.25, 0.5, 0.75), fitted: dict | None = None, labels=None, ax=None):
    """q sharpened by the power family: the closed form q^(1/(1-alpha)) per alpha, as lines (chapter 5).

    `fitted` maps alpha to a measured distribution (from `toy.fit_categorical`, or a model's exact opener
    shares), drawn as markers on top of the line it should match. Every curve is also q sampled at
    T = 1 - alpha. `labels` names the options on the x-axis (default: their rank).
    """
    from dftlab.toy import power_fixed_point

    target = np.asarray(target, dtype=np.float64)
    ax = _new_axes(ax)
    palette = sns.color_palette(PALETTE)
    x = np.arange(1, len(target) + 1)
    for index, alpha in enumerate(alphas):
        colour = palette[index % len(palette)]
        ax.plot(x, power_fixed_point(target, alpha), color=colour, lw=1.6,
                label=f"α = {alpha:g}, i.e. q at T = {1 - alpha:g}" if alpha else "α = 0 (NLL): q itself")
        if fitted is not None and alpha in fitted:
            ax.scatter(x, np.asarray(fitted[alpha], dtype=np.float64), color=colour, s=36, zorder=3,
                       edgecolors="black", linewidths=0.5)
    ax.scatter([], [], color="grey", edgecolors="black", linewidths=0.5, s=36, label="markers: measured")
    ax.set_xticks(x, labels if labels is not None else x, rotation=45 if labels is not None else 0,
                  ha="right" if labels is not None else "center", fontsize=8 if labels is not None else None)
    ax.set(xlabel="option, most frequent first" if labels is None else "", ylabel="probability")
    _legend_below(ax, ncol=2, offset=-0.2 if labels is None else -0.45)
    return ax


@_course_style
def plot_budget_sweep(summary: pd.DataFrame, objectives=("nll", "dft"), base_model: str = STRONG_PRIOR_MODEL,
                      decoding: str = "T=1"):
    """KL and top-opener share against the fine-tuning budget, per objective, mean and 95% CI (chapter 5).

    `summary` is `dftlab.study.summary_table(results)`. The dashed lines are the truth: KL 0, and the top
    opener's true probability. Returns the two Axes.
    """
    fig, axes = plt.subplots(1, 2, figsize=(7.6, 3.4))
    palette = sns.color_palette(PALETTE)
    for metric, ax in zip(("kl", "top_opener_share"), axes):
        for index, objective in enumerate(objectives):
            rows = summary[(summary["metric"] == metric) & (summary["objective"].isin([objective, "base"]))
                           & (summary["base_model"] == base_model) & (summary["decoding"] == decoding)]
            rows = rows.sort_values("steps")
            if rows.empty:
                raise ValueError(f"plot_budget_sweep: no {metric!r} rows for {objective!r} from {base_model!r}.")
            error = [(rows["mean"] - rows["ci_low"]).fillna(0), (rows["ci_high"] - rows["mean"]).fillna(0)]
            ax.errorbar(rows["steps"], rows["mean"], yerr=error, marker="o", capsize=3, color=palette[index],
                        label=objective)
        if metric == "kl":
            ax.set(yscale="log", ylabel="KL(q || p), nats per story (log)", title="fit to the data")
        else:
            truth = summary[(summary["metric"] == "top_opener_true_prob") & (summary["objective"] == "truth")]
            if not truth.empty:
                ax.axhline(truth["mean"].iloc[0], color="black", ls="--", lw=1, label="true probability")
            ax.set(ylabel="share opening 'Once upon a time,'", ylim=(0, 1.05), title="the modal opener")
        ax.set(xlabel="fine-tuning steps (0 = the base model)")
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return axes


@_course_style
def plot_target_probability_by_role(results: pd.DataFrame, objectives=("base", "nll", "dft"), decoding: str = "T=1",
                                    steps: int | None = None, ax=None):
    """Mean p(target) at the character's name against every other token, by prior and objective (chapter 5).

    `results` is `dftlab.study.load_results()`. The weak prior has never seen a story: it gives the copied
    name little probability, and Dynamic FT, whose weight is that probability, never raises it.
    """
    rows = results[(results["decoding"] == decoding) & results["objective"].isin(objectives) & (results["prior"] != "")]
    if steps is None and (rows["steps"] > 0).any():
        steps = int(rows.loc[rows["steps"] > 0, "steps"].mode().iloc[0])
    rows = rows[rows["steps"].isin([0, steps])]
    long = rows.melt(id_vars=["prior", "objective", "seed"], value_vars=["prob_character", "prob_other"],
                     var_name="role", value_name="p")
    long["role"] = long["role"].map({"prob_character": "character's name", "prob_other": "every other token"})
    long["run"] = long["prior"] + " prior: " + long["objective"]
    order = [f"{prior} prior: {o}" for prior in ("strong", "weak") for o in objectives
             if ((long["prior"] == prior) & (long["objective"] == o)).any()]
    ax = _new_axes(ax)
    sns.barplot(data=long, x="p", y="run", hue="role", order=order, errorbar=("ci", 95), ax=ax)
    ax.set(xlabel="mean p(target token) on validation stories", ylabel="", xlim=(0, 1))
    _legend_below(ax, ncol=2, offset=-0.2)
    return ax


@_course_style
def plot_calibration(tables: dict[str, pd.DataFrame], ax=None):
    """Reliability diagram: accuracy against confidence per bin, one line per model (chapter 4).

    `tables` maps a label to a `dftlab.metrics.calibration_bins` (or `calibration_table`) table. Each marker is one
    non-empty bin, its area growing with the bin's count; a calibrated model lies on the dashed diagonal, an
    over-confident one below it.
    """
    if ax is None:
        ax = plt.subplots(figsize=(5, 5))[1]
    palette = sns.color_palette(PALETTE)
    ax.plot([0, 1], [0, 1], color="black", ls="--", lw=1, label="calibrated: accuracy = confidence")
    total = max(int(table["count"].sum()) for table in tables.values())
    for index, (label, table) in enumerate(tables.items()):
        filled = table[table["count"] > 0]
        sizes = 20 + 400 * np.sqrt(filled["count"].to_numpy() / max(total, 1))
        ax.plot(filled["confidence"], filled["accuracy"], color=palette[index], lw=1.2, alpha=0.7)
        ax.scatter(filled["confidence"], filled["accuracy"], s=sizes, color=palette[index], edgecolors="black",
                   linewidths=0.5, zorder=3, label=label)
    ax.set(xlim=(0, 1.04), ylim=(0, 1.04), xlabel="confidence (mean top probability in the bin)",
           ylabel="accuracy (share of top predictions right)")
    ax.set_aspect("equal")
    _legend_below(ax, ncol=1, offset=-0.18, markerscale=0.5)
    return ax


@_course_style
def plot_power_family_check(check: pd.DataFrame, axes=None):
    """Training at alpha is sampling at T = 1 - alpha, on the fine-tuned models' exact opener shares (chapter 5).

    `check` is `dftlab.toy.power_family_check(...)`. Left: each model's share of each opener against q^(1/(1-alpha)); right:
    against SFT sampled at T = 1 - alpha. Log-log, one colour per alpha; on the dashed diagonal they agree. The
    legend gives each alpha's total variation distance over the openers.
    """
    from dftlab.toy import power_family_distances

    if axes is None:
        axes = plt.subplots(1, 2, figsize=(8, 4.4), sharey=True)[1]
    palette = sns.color_palette(PALETTE)
    distances = power_family_distances(check).set_index("alpha")
    low = max(1e-4, 0.7 * float(check[["model", "closed_form", "sampled"]].min().min()))
    for ax, column, xlabel in zip(axes, ("closed_form", "sampled"),
                                  (r"closed form $q^{1/(1-\alpha)}$ from the true openers",
                                   "SFT (nll) sampled at T = 1 - α")):
        ax.plot([low, 1], [low, 1], color="black", ls="--", lw=1)
        for index, (alpha, rows) in enumerate(check.groupby("alpha", sort=True)):
            if column == "sampled" and alpha == 0:
                continue  # nll at T = 1 against itself
            distance = distances.loc[float(alpha), column]
            name = "nll" if alpha == 0 else f"power, α = {alpha:g}"
            ax.scatter(rows[column], rows["model"], s=30, color=palette[index], edgecolors="black", linewidths=0.4,
                       zorder=3, label=f"{name} (TV {distance:.3f})")
        ax.set(xscale="log", yscale="log", xlim=(low, 1), ylim=(low, 1), xlabel=xlabel)
        ax.set_aspect("equal")
        _legend_below(ax, ncol=1, offset=-0.2)
    axes[0].set_ylabel("fine-tuned model at T = 1: share of the opener")
    return axes


@_course_style
def plot_dft_threshold(fit, ax=None):
    """Why DFT collapses, on the toy (chapter 5): each token's q_k against the rising bar s = sum_y q_y p_y.

    `fit` is `dftlab.toy.fit_categorical(q, "dft", ...)`. Under DFT the logit of token k moves at rate
    p_k (q_k - s): it grows while q_k is above s and falls once s has passed it. s is DFT's own objective, so it
    only rises, and in the end only the mode is left above it. Dashed lines: q_k; solid: p_k; black: s.
    """
    ax = _new_axes(ax)
    palette = sns.color_palette(PALETTE)
    steps = np.maximum(fit.steps, 1)
    bar = fit.trajectory @ fit.target
    for k, q_k in enumerate(fit.target):
        colour = palette[k % len(palette)]
        ax.plot(steps, fit.trajectory[:, k], color=colour, lw=1.6, label=f"p of token {k} (q = {q_k:g})")
        ax.axhline(q_k, color=colour, ls="--", lw=1)
    ax.plot(steps, bar, color="black", lw=2.2, label="the bar s = Σ q_y p_y")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="gradient step (log scale)", ylabel="probability")
    _legend_below(ax, ncol=2, offset=-0.2)
    return ax


@_course_style
def plot_word_overuse(tables: dict[str, pd.DataFrame], top: int = 12, ax=None):
    """Horizontal bars of the most over-used words (a `dftlab.metrics.word_overuse` table per decoding), on a log
    scale, with their bootstrap intervals when the tables have them. Words are ranked by the first table."""
    names = list(tables)
    words_shown = list(tables[names[0]]["word"].head(top))
    rows = []
    for name, table in tables.items():
        indexed = table.set_index("word")
        for word in words_shown:
            if word in indexed.index:
                row = indexed.loc[word]
                rows.append({"word": word, "decoding": readable(name), "ratio": row["overuse_ratio"],
                             "low": row.get("ci_low", np.nan), "high": row.get("ci_high", np.nan)})
    data = pd.DataFrame(rows)
    if ax is None:
        ax = plt.subplots(figsize=(7, 0.3 * len(words_shown) + 1.2))[1]
    palette = sns.color_palette(PALETTE)
    height = 0.8 / len(names)
    positions = {word: index for index, word in enumerate(words_shown)}
    for offset, (name, colour) in enumerate(zip(names, palette)):
        part = data[data["decoding"] == readable(name)]
        y = np.array([positions[w] for w in part["word"]]) + (offset - (len(names) - 1) / 2) * height
        ax.barh(y, part["ratio"], height=height, color=colour, label=readable(name))
        if part["low"].notna().all():
            ax.errorbar(part["ratio"], y, xerr=[part["ratio"] - part["low"], part["high"] - part["ratio"]],
                        fmt="none", ecolor="0.25", elinewidth=1, capsize=2)
    ax.set_yticks(range(len(words_shown)), words_shown)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="0.3", linestyle=":", linewidth=1)
    ax.set(xlabel="overuse ratio: frequency in the responses / frequency in English (log scale)", ylabel="")
    if len(names) > 1:
        _legend_below(ax, ncol=len(names), offset=-0.12 - 1.2 / (0.3 * len(words_shown) + 1.2) * 0.5)
    return ax


@_course_style
def plot_next_token_comparison(tables: dict[str, pd.DataFrame], title: str = "", axes=None):
    """Side-by-side bar charts of `dftlab.generate.top_tokens` tables, one panel per model."""
    if axes is None:
        axes = plt.subplots(1, len(tables), figsize=(3.6 * len(tables), 3.2), sharex=True)[1]
    for ax, (name, table), colour in zip(np.atleast_1d(axes), tables.items(), sns.color_palette(PALETTE)):
        sns.barplot(data=table, x="probability", y="token", ax=ax, color=colour)
        ax.set(xlabel="probability of the next token", ylabel="", title=name)
    if title:
        np.atleast_1d(axes)[0].figure.suptitle(title, y=1.02)
    return axes


# --- Chapter 8: the real model beside the tiny ones; then the quality-diversity frontier -------------

@_course_style
def plot_carry_over(table: pd.DataFrame, metrics=("validity", "kl", "top_opener_share", "predictive_entropy",
                                                  "distinct_2", "seq_rep_4"), reference: dict | None = None,
                    log_metrics=("kl", "predictive_entropy"), ncols: int = 3):
    """One panel per metric: the base model, NLL and DFT means of each study, one line per study (chapter 8).

    `table` is `dftlab.study.carry_over.carry_over_table(...)`. A line that climbs or falls from NLL to DFT in
    both studies is a finding that carries over. `reference` draws a dashed line per metric (e.g. the true
    probability of the top opener). Returns the array of Axes.
    """
    metrics = [m for m in metrics if m in set(table["metric"])]
    if not metrics:
        raise ValueError("plot_carry_over: none of the metrics is in the table; pass carry_over_table(...).")
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.55 * ncols, 2.6 * nrows), squeeze=False)
    columns = ["base", "nll", "dft"]
    titles = {"top_opener_share": "share of the top opener", "predictive_entropy": "predictive entropy (nats)",
              "kl": "KL(q || p) (nats per story)", "prob_character": "p(character name)",
              "seq_rep_4": "repeated 4-grams within a sample"}
    for ax, metric in zip(axes.flat, metrics):
        rows = table[table["metric"] == metric]
        for (study, group), marker in zip(rows.groupby("study", sort=False), "osD^v"):
            ax.plot([readable(c) for c in columns], group[columns].to_numpy()[0], marker=marker, label=study)
        if reference and metric in reference:
            ax.axhline(reference[metric], color="0.4", linestyle="--", linewidth=1, label="truth")
        if metric in log_metrics:
            ax.set_yscale("log")
        ax.set_title(titles.get(metric, readable(metric)), fontsize=10)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    for ax in list(axes.flat)[1:len(metrics)]:
        more_handles, more_labels = ax.get_legend_handles_labels()
        for handle, label in zip(more_handles, more_labels):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), bbox_to_anchor=(0.5, 0.0), frameon=False)
    return axes


@_course_style
def plot_quality_diversity(summary: pd.DataFrame, quality: str = "validity", diversity: str = "distinct_2",
                           base_model: str | None = None, steps: int | None = None, ax=None):
    """The quality-diversity frontier: `quality` against `diversity`, one point per objective and decoding (chapter 7).

    `summary` is `dftlab.study.summary_table(results)`; points are means over seeds of the runs from `base_model` at
    `steps` (default: the strong prior at the headline budget). Colour is the objective, the marker the decoding, and
    a thin line joins one objective's decodings. The truth (TinyTales' own stories) is the black star, with a dotted
    line at its diversity: a model left of that line is more repetitive than the data, one right of it more varied.
    """
    rows = _headline_rows(summary[summary["metric"].isin([quality, diversity])], base_model, steps)
    means = rows.pivot_table(index=["objective", "decoding"], columns="metric", values="mean", sort=False)
    if quality not in means or diversity not in means:
        raise ValueError(f"plot_quality_diversity: the summary has no {quality!r} or {diversity!r} rows; pass "
                         f"summary_table(results) and metric names among its 'metric' column.")
    ax = _new_axes(ax)
    objectives = [o for o in dict.fromkeys(means.index.get_level_values("objective")) if o != "truth"]
    decodings = [d for d in dict.fromkeys(means.index.get_level_values("decoding")) if d != "data"]
    colours = dict(zip(objectives, sns.color_palette(PALETTE, len(objectives))))
    markers = dict(zip(decodings, "osD^v"))
    for objective in objectives:
        points = means.loc[objective].reindex(decodings).dropna()
        ax.plot(points[diversity], points[quality], color=colours[objective], lw=0.8, alpha=0.6)
        for decoding, point in points.iterrows():
            ax.scatter(point[diversity], point[quality], color=colours[objective], marker=markers[decoding], s=55,
                       edgecolors="black", linewidths=0.5, zorder=3)
    handles = [plt.Line2D([], [], color=colours[o], marker="o", ls="", label=readable(o)) for o in objectives]
    handles += [plt.Line2D([], [], color="0.5", marker=markers[d], ls="", label=readable(d)) for d in decodings]
    if "truth" in means.index.get_level_values("objective"):
        truth = means.loc["truth"].iloc[0]
        ax.axvline(truth[diversity], color="black", ls=":", lw=1)
        ax.scatter(truth[diversity], truth[quality], marker="*", s=260, color="black", zorder=4)
        handles.append(plt.Line2D([], [], color="black", marker="*", markersize=12, ls="", label="truth (the data)"))
    ax.set(xlabel=readable(diversity) + " (more varied →)", ylabel=readable(quality) + " (better ↑)")
    ax.legend(handles=handles, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return ax


@_course_style
def plot_embedding_clouds(projection: pd.DataFrame, reference: str, others=None, titles: dict | None = None,
                          ncols: int = 2):
    """One panel per set: its projected embeddings over the `reference` set's, in shared axes (chapter 6).

    `projection` is `dftlab.metrics.embedding_projection(...)`. The reference texts are grey circles, the set's
    texts coloured crosses, and each cloud's mean a large marker of its colour: MMD compares the two clouds in
    every dimension of the embedding, this picture shows two. `titles` maps a set's name to its panel title
    (e.g. with its MMD²). Returns the array of Axes.
    """
    names = list(dict.fromkeys(projection["set"]))
    if reference not in names:
        raise ValueError(f"plot_embedding_clouds: no set named {reference!r} in the projection; its sets are {names}.")
    others = [name for name in names if name != reference] if others is None else list(others)
    nrows = -(-len(others) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.3 * nrows), sharex=True, sharey=True,
                             squeeze=False)
    ratios = projection.attrs.get("explained_variance_ratio", ())
    base = projection[projection["set"] == reference]
    palette = sns.color_palette(PALETTE)
    for ax, name, colour in zip(axes.flat, others, palette):
        rows = projection[projection["set"] == name]
        ax.scatter(base["pc1"], base["pc2"], s=14, color="0.6", alpha=0.6, label=reference)
        ax.scatter(rows["pc1"], rows["pc2"], s=18, color=colour, marker="x", alpha=0.8, label=name)
        ax.scatter(base["pc1"].mean(), base["pc2"].mean(), s=160, color="0.3", edgecolors="white", zorder=4)
        ax.scatter(rows["pc1"].mean(), rows["pc2"].mean(), s=160, color=colour, edgecolors="black", zorder=5)
        ax.set_title((titles or {}).get(name, name), fontsize=9)
    for ax in list(axes.flat)[len(others):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("first principal component" + (f" ({ratios[0]:.0%} of the variance)" if ratios else ""),
                      fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("second" + (f" ({ratios[1]:.0%})" if len(ratios) > 1 else ""), fontsize=8)
    fig.tight_layout()
    return axes



@_course_style
def plot_slop_leaderboard(table: pd.DataFrame, reference: str = "human-baseline", highlight: str = "dftlab sample",
                          rate: str = "slop_words_per_1k", ax=None):
    """Chapter 0: slop_samples.leaderboard_table() as dots with intervals, `reference` a dashed line; phone-legible."""
    if reference not in table.index:
        raise ValueError(f"plot_slop_leaderboard: no row named {reference!r}; the rows are {list(table.index)}.")
    models = table.drop(index=reference)
    ax = ax or plt.subplots(figsize=(4.9, 0.34 * len(models) + 1.3))[1]
    y, values, ours = np.arange(len(models)), models[rate].to_numpy(float), (models["source"] == highlight).to_numpy()
    low, high = (np.asarray(models.get(rate[:-len("per_1k")] + end, values * np.nan), float) for end in ("low", "high"))
    for mask, colour, marker, label in ((~ours, 0, "o", "slop-score's outputs of the model"),
                                        (ours, 1, "D", "SmolLM2, sampled for this course")):
        ax.errorbar(values[mask], y[mask], xerr=[values[mask] - low[mask], high[mask] - values[mask]], fmt=marker,
                    color=sns.color_palette(PALETTE)[colour], ms=7, capsize=3, label=label) if mask.any() else None
    ax.axvline(human := float(table.loc[reference, rate]), color="0.25", linestyle="--", linewidth=1.2,
               label=f"{reference.replace('-', ' ')} ({human:.1f}, published)")
    ax.set_yticks(y, [name.replace("SmolLM2-135M-Instruct, ", "SmolLM2, ") for name in models.index], fontsize=11)
    ax.set(ylim=(len(models) - 0.5, -0.5), xlim=(0, None), xlabel="slop-list words per 1,000 words")  # first row on top
    height = ax.get_position().height * ax.figure.get_size_inches()[1]  # inches: the legend sits below the label
    ax.legend(loc="upper right", bbox_to_anchor=(1.0, -0.6 / height), frameon=False, fontsize=11)
    return ax
