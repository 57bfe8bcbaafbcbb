"""Figures and explorers build without error and label their axes (the browser test drives the explorers on the site)."""
import matplotlib

matplotlib.use("Agg")
import json

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from dftlab import metrics, plots, scoring_rules, study, toy, widgets


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_entropy_by_temperature_rises_with_temperature():
    from dftlab.distributions import entropy_by_temperature

    table = entropy_by_temperature(torch.tensor([3.0, 1.0, 0.0, -1.0]), [0.1, 1.0, 10.0])
    assert table["entropy (nats)"].is_monotonic_increasing


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


def _explorer_json(explorer) -> dict:
    bundle = explorer._repr_mimebundle_()
    assert set(bundle) == {widgets.VEGALITE_MIME, "text/plain"}
    spec = json.loads(json.dumps(bundle[widgets.VEGALITE_MIME], allow_nan=False))  # valid JSON: no NaN
    assert spec["$schema"].endswith("vega-lite/v5.json")
    return spec


def _bound_params(spec) -> dict:
    return {param["name"]: param for param in spec["params"] if "bind" in param}


def test_decoding_spec_embeds_every_log_probability_and_binds_three_sliders():
    log_probs = torch.log_softmax(torch.linspace(3, -3, 50, dtype=torch.float64), -1).numpy()
    spec = widgets.decoding_spec(log_probs, {i: f"t{i}" for i in range(50)}, "after 'x'", k=5)
    assert len(spec["data"]["values"]) == 50
    assert [row["r"] for row in spec["data"]["values"]] == list(range(1, 51))
    assert sum("token" in row for row in spec["data"]["values"]) == 5
    assert set(_bound_params(spec)) == {"T", "top_k", "top_p"}


def test_simplex_paths_match_the_toy_run_alone():
    paths = widgets.simplex_paths(("nll", "dft"), steps=40, weights=(0.6, 0.3), learning_rates=(0.5,), points=4)
    assert len(paths) == 2 * 4  # objectives x (w0, w1) grid
    row = paths[(paths["objective"] == "dft") & (paths["w0"] == 0.6) & (paths["w1"] == 0.3)].iloc[0]
    alone = toy.simplex_trajectories([0.6, 0.3, 0.1], objectives=("dft",), steps=40, lr=0.5, record_every=10)
    assert np.allclose(row["x"], alone["x"], atol=1e-3) and np.allclose(row["y"], alone["y"], atol=1e-3)
    spec = _explorer_json(widgets.Explorer("simplex", widgets.simplex_spec(paths, 40), "test"))
    assert set(_bound_params(spec)) == {"w0", "w1", "lr"}


def test_simplex_explorer_builds():
    spec = _explorer_json(widgets.simplex_explorer(objectives=("nll",), steps=20))
    assert set(_bound_params(spec)) == {"w0", "w1", "lr"}


# ---------------------------------------------------------------------------------------------
# Chapter 5: the MMD sweep's figure and explorer.
# ---------------------------------------------------------------------------------------------

def test_mmd_plot_is_labelled_and_draws_one_line_per_size():
    table = metrics.mmd_by_zipf_exponent([0.3, 1.1, 1.9], sample_sizes=(10, 20), num_permutations=20)
    ax = plots.plot_mmd_by_zipf_exponent(table, highlight=(1.1, 10))
    assert ax.get_xlabel() and ax.get_ylabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "n = 10 per sample" in labels and "n = 20 per sample" in labels


def test_mmd_explorer_builds():
    spec = _explorer_json(widgets.mmd_explorer(exponents=(0.5, 1.1), sample_sizes=(10, 20), num_permutations=20))
    assert set(_bound_params(spec)) == {"exponent", "sample_size"}
    assert len(spec["data"]["values"]) == 4


# ---------------------------------------------------------------------------------------------
# Chapter 6: the study grid and explorer, on the cached results (nothing is retrained).
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def summary():
    return study.summary_table(study.load_results())


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


def test_study_explorer_offers_the_study_with_readable_names(summary):
    spec = _explorer_json(widgets.study_explorer(summary))
    params = _bound_params(spec)
    metric, decoding, run = params["metric"], params["decoding"], params["run"]
    assert metric["value"] == "top_opener_share" and "validity" in metric["bind"]["options"]
    assert "KL(q || p)" in metric["bind"]["labels"] and "MMD p-value" in metric["bind"]["labels"]
    # readable names in the menu: no column names ("prob character", "loss scale"), no underscores
    for label in metric["bind"]["labels"]:
        assert "_" not in label and label not in ("prob character", "prob other", "loss scale",
                                                 "top opener true prob", "overuse formulaic"), label
    assert set(metric["bind"]["options"]) <= set(widgets.STUDY_METRICS)
    assert decoding["bind"]["options"] == ["T=1", "T=0.7,top-p=0.9"] and "T = 1" in decoding["bind"]["labels"]
    bases = {option.split("|")[0] for option in run["bind"]["options"]}
    assert bases == {"tiny-gpt2", "tiny-gpt2-english"} and run["value"].startswith("tiny-gpt2|")
    objectives = {row["objective"] for row in spec["data"]["values"]}
    assert {"NLL", "DFT", "truth"} <= objectives and not any("_" in name for name in objectives)


def test_study_explorer_keeps_every_interval_within_what_its_measure_can_take(summary):
    """Chapter 7's explorer: an interval over seeds that runs past a measure's range (a share above 1, a p-value
    below 0, a KL below 0) is cut at it, and says so in its tooltip; the truth's legend is offered only for the
    metrics that have a truth line; the x-axis names the metric; a metric with one value for every row (it
    describes the data) is left out of the menu, and drawn on a widened axis when asked for by name."""
    spec = widgets.study_explorer(summary).spec
    rows = spec["data"]["values"]
    cut = 0
    for row in rows:
        _, _, low, high = widgets.study_metric(row["metric"])
        for field in ("low", "mean", "high"):
            assert (low is None or row[field] >= low) and (high is None or row[field] <= high), row
        assert row["low"] <= row["mean"] <= row["high"], row
        cut += row["interval"] != "as computed"
    assert cut > 0  # the study's MMD p-values, validities and shares do run past 0 or 1 before the cut
    p_values = [row for row in rows if row["metric"] == "mmd_p_value"]
    assert p_values and all(0 <= row["low"] and row["high"] <= 1 for row in p_values)
    # a measure that can dip below 0 (the unbiased MMD²) keeps its interval as computed
    assert any(row["low"] < 0 for row in rows if row["metric"] == "mmd2")

    params = {param["name"]: param for param in spec["params"]}
    menu = params["metric"]["bind"]["options"]
    assert "top_opener_true_prob" not in menu and "true_entropy" not in menu
    truth = {row["metric"] for row in rows if row["objective"] == "truth"}
    assert "kl" not in truth and "top_opener_share" in truth
    readout = spec["title"]["text"]["expr"]
    legend_metrics = json.loads(readout[readout.index("indexof(") + len("indexof("):readout.index("], metric)") + 1])
    assert set(legend_metrics) == truth  # every metric with a truth line, and no other
    axis = spec["layer"][1]["encoding"]["x"]["axis"]["title"]["expr"]
    assert "mean and 95% CI over seeds" in axis and widgets.study_metric("kl")[1] in axis

    constant = widgets.study_spec(summary, metrics=["top_opener_true_prob", "validity"], metric="top_opener_true_prob")
    extent = constant["layer"][-1]["data"]["values"]
    assert [row["metric"] for row in extent] == ["top_opener_true_prob"]
    assert 0 <= extent[0]["low"] < 0.33 < extent[0]["high"] <= 1


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
