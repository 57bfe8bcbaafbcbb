"""Interactive controls for the chapters (ipywidgets).

Every widget has a static twin: the chapter draws the same figure once with fixed settings, for readers
of the website, where no kernel runs and a slider cannot redraw anything.
"""
from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt

from dftlab.generate import next_token_probs
from dftlab.plots import plot_decoding_distribution


def decoding_explorer(model, tokenizer, prompt: str, k: int = 15):
    """Sliders for temperature and top-p over the next-token distribution after `prompt` (chapter 1)."""
    logits = next_token_probs(model, tokenizer, prompt).log()
    temperature = widgets.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.05, description="temperature")
    top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p")

    def draw(temperature: float, top_p: float) -> None:
        fig, ax = plt.subplots()
        plot_decoding_distribution(logits, tokenizer, temperature=temperature, top_p=top_p, k=k, ax=ax)
        ax.set_title(f"prompt {prompt!r}: " + ax.get_title(), fontsize=10)
        plt.show()

    return widgets.interactive(draw, temperature=temperature, top_p=top_p)


def simplex_explorer(objectives=("nll",), steps: int = 300):
    """Sliders for a 3-token data distribution q and the learning rate; draws each objective's path on the simplex
    (chapter 2 with nll alone, chapter 4 to compare objectives)."""
    from dftlab.plots import plot_simplex_trajectories
    from dftlab.toy import simplex_trajectories

    weight_0 = widgets.FloatSlider(value=0.6, min=0.05, max=0.9, step=0.05, description="weight of token 0")
    weight_1 = widgets.FloatSlider(value=0.3, min=0.05, max=0.9, step=0.05, description="weight of token 1")
    lr = widgets.FloatLogSlider(value=0.5, base=10, min=-2, max=0.5, step=0.1, description="learning rate")

    def draw(weight_0: float, weight_1: float, lr: float) -> None:
        weights = [weight_0, weight_1, 0.1]  # token 2 keeps weight 0.1; q is the normalised weights
        target = [w / sum(weights) for w in weights]
        paths = simplex_trajectories(target, objectives=objectives, steps=steps, lr=lr, record_every=5)
        fig, ax = plt.subplots(figsize=(5, 4.4))
        plot_simplex_trajectories(paths, target, ax=ax)
        ax.set_title("q = (" + ", ".join(f"{t:.2f}" for t in target) + f"), lr = {lr:.2g}, {steps} steps", fontsize=10)
        plt.show()

    return widgets.interactive(draw, weight_0=weight_0, weight_1=weight_1, lr=lr)


def study_explorer(summary, metrics=None):
    """Dropdowns for a metric, a decoding and a base model x budget; redraws that panel of the cached study (chapter 6).

    `summary` is `dftlab.study.summary_table(load_results())`; nothing is retrained.
    """
    from dftlab.plots import STUDY_PANELS, plot_study_metric

    metrics = list(metrics) if metrics is not None else list(dict.fromkeys(summary["metric"]))
    decodings = [d for d in dict.fromkeys(summary["decoding"]) if d != "data"]
    tuned = summary[summary["steps"] > 0][["base_model", "steps"]].drop_duplicates()
    runs = [(f"{base}, {steps} steps", (base, int(steps))) for base, steps in tuned.itertuples(index=False)]
    metric = widgets.Dropdown(options=metrics, value="top_opener_share" if "top_opener_share" in metrics else metrics[0],
                              description="metric")
    decoding = widgets.Dropdown(options=decodings, value=decodings[0], description="decoding")
    run = widgets.Dropdown(options=runs, value=runs[0][1], description="runs")

    def draw(metric: str, decoding: str, run: tuple) -> None:
        fig, ax = plt.subplots()
        plot_study_metric(summary, metric, decoding=decoding, base_model=run[0], steps=run[1], ax=ax)
        ax.set_title(STUDY_PANELS.get(metric, metric.replace("_", " ")) + f", {run[0]}, {run[1]} steps", fontsize=10)
        plt.show()

    return widgets.interactive(draw, metric=metric, decoding=decoding, run=run)


def mmd_explorer(reference_exponent: float = 1.1, exponents=(0.3, 0.5, 0.7, 0.9, 1.1, 1.3, 1.5, 1.7, 1.9),
                 method: str = "ngram", num_permutations: int = 200):
    """Sliders for the Zipf exponent of a second TinyTales sample and the sample size; draws MMD^2 and its
    p-value against true stories at `reference_exponent` (chapter 5). The n-gram features keep a redraw fast."""
    import numpy as np

    from dftlab.metrics import mmd_by_zipf_exponent
    from dftlab.plots import plot_mmd_by_zipf_exponent

    exponent = widgets.FloatSlider(value=0.9, min=0.3, max=1.9, step=0.1, description="Zipf exponent")
    sample_size = widgets.IntSlider(value=40, min=10, max=200, step=10, description="stories each")

    def draw(exponent: float, sample_size: int) -> None:
        grid = sorted({round(float(e), 2) for e in exponents} | {round(exponent, 2)})
        table = mmd_by_zipf_exponent(grid, [sample_size], reference_exponent, method, num_permutations)
        chosen = table[np.isclose(table["zipf_exponent"], round(exponent, 2))].iloc[0]
        fig, ax = plt.subplots()
        plot_mmd_by_zipf_exponent(table, reference_exponent, highlight=(chosen["zipf_exponent"], sample_size), ax=ax)
        ax.set_title(f"Zipf {exponent:.1f} vs {reference_exponent:g}, {sample_size} stories each: "
                     f"MMD² = {chosen['mmd2']:.4f}, p = {chosen['p_value']:.3f}", fontsize=10)
        plt.show()

    return widgets.interactive(draw, exponent=exponent, sample_size=sample_size)
