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
