"""dftlab.plots: figures build without error, label their axes and draw in the course style."""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from dftlab import metrics, plots, scoring_rules, study, toy

from conftest import _clouds


def test_plots_only_draw():
    """The analyses behind the figures live with their concept, not in the plotting module."""
    for name in ("entropy_by_temperature", "rank_frequency", "power_family_check"):
        assert not hasattr(plots, name) or getattr(plots, name).__module__ != "dftlab.plots", name


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
    assert "NLL" in labels and "DFT" in labels


def test_decoding_label_names_only_the_settings_that_are_on():
    assert plots._decoding_label(0.7, None, 0.9) == "T = 0.7, top-p = 0.9"
    assert plots._decoding_label(1.0, 5, None) == "T = 1, top-k = 5"


def test_table_shows_readable_headers_and_no_negative_zero_nan_or_lost_small_values():
    frame = pd.DataFrame({"train_loss": [np.nan, 0.38], "KL(q||p)": [-1e-12, 0.0], "reference_freq": [0.0, 2.1e-5],
                          "sample_count": [3, 4]})
    shown = plots.table(frame)
    assert list(shown.columns) == ["training loss", "KL(q||p)", "reference freq", "sample count"]
    assert shown["training loss"].tolist() == ["—", "0.380"]
    assert shown["KL(q||p)"].tolist() == ["0", "0"]
    assert shown["reference freq"].tolist() == ["0", "2.1e-05"]
    assert plots.readable("dft_floored") == "DFT, floored" and plots.readable("valid_nll") == "validation NLL"


def test_mmd_plot_is_labelled_and_draws_one_line_per_size():
    table = metrics.mmd_by_zipf_exponent([0.3, 1.1, 1.9], sample_sizes=(10, 20), num_permutations=20)
    ax = plots.plot_mmd_by_zipf_exponent(table, highlight=(1.1, 10))
    assert ax.get_xlabel() and ax.get_ylabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "n = 10 per sample" in labels and "n = 20 per sample" in labels


def test_study_grid_draws_one_panel_per_metric(summary):
    panel_metrics = ["validity", "kl", "top_opener_share", "token_l2_1", "predictive_entropy"]
    axes = plots.plot_study_grid(summary, panel_metrics, decoding="T=0.7,top-p=0.9", ncols=3)
    visible = [ax for ax in axes.flat if ax.get_visible()]
    assert len(visible) == len(panel_metrics) and axes.shape == (2, 3)  # ncols=3 asked for
    assert visible[0].get_title() == plots.STUDY_PANELS["validity"]
    assert visible[1].get_xscale() == "log" and visible[0].get_xscale() == "linear"
    labels = [tick.get_text() for tick in visible[0].get_yticklabels()]
    assert "NLL" in labels and "DFT" in labels and "truth" not in labels
    plt.close("all")


def test_study_grid_refuses_no_metrics_and_unknown_metrics(summary):
    with pytest.raises(ValueError, match="at least one metric"):
        plots.plot_study_grid(summary, [])
    with pytest.raises(ValueError, match="no rows for metric='nonsense'"):
        plots.plot_study_grid(summary, ["nonsense"])
    plt.close("all")


def test_budget_sweep_and_role_figures_draw_from_the_study(summary):
    axes = plots.plot_budget_sweep(summary)
    assert len(axes) == 2 and axes[0].get_yscale() == "log"
    assert len(axes[0].lines) >= 2  # nll and dft, each across the budgets
    ax = plots.plot_target_probability_by_role(study.load_results())
    labels = [tick.get_text() for tick in ax.get_yticklabels()]
    assert "strong prior: dft" in labels and "weak prior: dft" in labels
    plt.close("all")


def test_power_family_figure_puts_markers_on_the_closed_form():
    from dftlab import toy

    q = [0.4, 0.25, 0.15, 0.12, 0.08]
    fitted = {0.5: toy.fit_categorical(q, "power", steps=4000, lr=0.5, alpha=0.5, record_every=4000).probs}
    ax = plots.plot_power_family(q, alphas=(0.0, 0.5), fitted=fitted)
    line = ax.lines[1].get_ydata()
    markers = ax.collections[0].get_offsets()[:, 1]
    assert abs(markers - line).max() < 0.01  # the long-run fit sits on q^(1/(1 - alpha))
    plt.close("all")


def test_importing_plots_changes_no_setting_and_a_plot_restores_the_callers():
    import importlib

    import matplotlib

    before = dict(matplotlib.rcParams)
    importlib.reload(plots)  # runs the module's top level again, as an import does
    assert dict(matplotlib.rcParams) == before
    ax = plots.plot_zipf({"a": ["the cat sat on the mat", "the dog sat"]})
    assert dict(matplotlib.rcParams) == before
    assert ax.get_figure().get_size_inches().tolist() == [7.0, 3.6]  # drawn in the course style all the same
    matplotlib.pyplot.close("all")


def test_every_public_plot_function_draws_in_the_course_style():
    import inspect

    for name, function in inspect.getmembers(plots, inspect.isfunction):
        if name.startswith("plot_") and function.__module__ == plots.__name__:
            assert hasattr(function, "__wrapped__"), f"plots.{name} is not decorated with @_course_style"


def test_slop_leaderboard_draws_each_model_once_and_reads_at_phone_width():
    import io
    import re

    table = pd.DataFrame({"source": ["slop-score outputs", "dftlab sample", "published figures"],
                          "slop_words_per_1k": [5.0, 14.0, 6.9], "slop_words_low": [4.0, 10.0, np.nan],
                          "slop_words_high": [6.0, 18.0, np.nan]},
                         index=["a-model", "SmolLM2-135M-Instruct, T=1", "human-baseline"])
    ax = plots.plot_slop_leaderboard(table)
    assert [label.get_text() for label in ax.get_yticklabels()] == ["a-model", "SmolLM2, T=1"]
    assert ax.get_xlabel() and "human baseline (6.9" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    buffer = io.StringIO()
    with matplotlib.rc_context(plots.COURSE_STYLE):  # text kept as text, as the chapters' figures are
        ax.figure.savefig(buffer, format="svg", bbox_inches="tight")
    svg = buffer.getvalue()
    width = float(re.search(r'<svg[^>]*width="([\d.]+)pt"', svg).group(1))
    smallest = min(float(size) for size in re.findall(r'font(?:-size)?:[^;"]*?([\d.]+)px', svg))
    assert smallest * 390 / width >= 9, (smallest, width)  # text of at least 9 px when shown 390 px wide
    with pytest.raises(ValueError, match="no row named"):
        plots.plot_slop_leaderboard(table.drop(index="human-baseline"))


matplotlib.use("Agg")


def test_the_quality_diversity_frontier_draws_one_point_per_objective_and_decoding(results):
    summary = study.summary_table(results)
    ax = plots.plot_quality_diversity(summary)
    headline = summary[(summary["base_model"] == "tiny-gpt2") & (summary["steps"].isin([0, 200]))
                       & (summary["metric"] == "validity") & (summary["objective"] != "truth")]
    # one scatter per objective x decoding, plus the truth's star
    assert len(ax.collections) == len(headline) + 1
    star = ax.collections[-1].get_offsets()[0]
    truth = summary[(summary["objective"] == "truth")].set_index("metric")["mean"]
    assert star[0] == pytest.approx(truth["distinct_2"]) and star[1] == pytest.approx(truth["validity"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert plots.readable("dft") in labels and "truth (the data)" in labels
    plt.close("all")


def test_the_frontier_names_a_metric_it_cannot_find(results):
    with pytest.raises(ValueError, match="no 'nonsense'"):
        plots.plot_quality_diversity(study.summary_table(results), quality="nonsense")


matplotlib.use("Agg")


def test_the_clouds_plot_draws_one_panel_per_set_over_the_reference():
    clouds = _clouds()
    clouds["same"] = np.random.default_rng(1).normal(size=(25, 6))
    projection = metrics.embedding_projection(clouds)
    axes = plots.plot_embedding_clouds(projection, "reference", titles={"same": "a second sample"})
    visible = [ax for ax in axes.flat if ax.get_visible()]
    assert len(visible) == 2 and visible[1].get_title() == "a second sample"
    assert len(visible[0].collections) == 4  # two clouds and their two means
    assert "variance" in axes[-1, 0].get_xlabel()
    with pytest.raises(ValueError, match="no set named"):
        plots.plot_embedding_clouds(projection, "nothing")
    plt.close("all")
