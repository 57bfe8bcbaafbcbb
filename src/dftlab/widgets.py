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
