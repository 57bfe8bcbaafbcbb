"""Figures and widgets build without error and label their axes (their pictures are checked in the browser test)."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch

from dftlab import plots, scoring_rules, toy, widgets


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_entropy_by_temperature_rises_with_temperature():
    table = plots.entropy_by_temperature(torch.tensor([3.0, 1.0, 0.0, -1.0]), [0.1, 1.0, 10.0])
    assert table["entropy (nats)"].is_monotonic_increasing


def test_axes_are_labelled():
    class ByteTokenizer:
        def decode(self, ids):
            return "".join(chr(97 + i) for i in ids)

    logits = torch.linspace(2, -2, 20)
    for ax in [plots.plot_entropy_by_temperature(logits),
               plots.plot_decoding_distribution(logits, ByteTokenizer(), temperature=0.7, top_p=0.9, k=5),
               plots.plot_zipf({"a": ["the cat saw the dog", "the end"]}),
               plots.plot_score_curves(scoring_rules.binary_score_curves(0.7, points=11), 0.7)]:
        assert ax.get_xlabel() and ax.get_ylabel()


def test_simplex_plot_draws_one_path_per_objective():
    paths = toy.simplex_trajectories([0.6, 0.3, 0.1], objectives=("nll", "dft"), steps=50, record_every=10)
    ax = plots.plot_simplex_trajectories(paths, [0.6, 0.3, 0.1])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "nll" in labels and "dft" in labels


def test_simplex_explorer_builds():
    explorer = widgets.simplex_explorer(objectives=("nll",), steps=20)
    assert len(explorer.children) == 4  # three sliders and the output
