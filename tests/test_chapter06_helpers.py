"""Chapter 6's helpers: the study grid, the study explorer widget (on the cached results, nothing retrained)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from dftlab import plots, study, widgets  # noqa: E402


@pytest.fixture(scope="module")
def summary():
    return study.summary_table(study.load_results())


def test_study_grid_draws_one_panel_per_metric(summary):
    metrics = ["validity", "kl", "top_opener_share", "token_l2_1", "predictive_entropy"]
    axes = plots.plot_study_grid(summary, metrics, decoding="T=0.7,top-p=0.9", ncols=3)
    visible = [ax for ax in axes.flat if ax.get_visible()]
    assert len(visible) == len(metrics) and axes.shape == (2, 3)
    assert visible[0].get_title() == plots.STUDY_PANELS["validity"]
    assert visible[1].get_xscale() == "log" and visible[0].get_xscale() == "linear"
    labels = [tick.get_text() for tick in visible[0].get_yticklabels()]
    assert "nll" in labels and "dft" in labels and "truth" not in labels
    plt.close("all")


def test_study_grid_refuses_no_metrics_and_unknown_metrics(summary):
    with pytest.raises(ValueError, match="at least one metric"):
        plots.plot_study_grid(summary, [])
    with pytest.raises(ValueError, match="no rows for metric='nonsense'"):
        plots.plot_study_grid(summary, ["nonsense"])
    plt.close("all")


def test_study_explorer_offers_the_study_and_redraws(summary, monkeypatch):
    drawn = []
    monkeypatch.setattr(plt, "show", lambda: drawn.append(plt.gca().get_title()))
    explorer = widgets.study_explorer(summary)
    metric, decoding, zipf = explorer.children[:3]
    assert metric.value == "top_opener_share" and "validity" in metric.options
    assert decoding.options == ("T=1", "T=0.7,top-p=0.9") and "data" not in decoding.options
    assert {value for _, value in zipf.options} == {1.1, 0.3} and zipf.value == 1.1
    metric.value, decoding.value, zipf.value = "kl", "T=0.7,top-p=0.9", 0.3
    assert drawn[-1].startswith(plots.STUDY_PANELS["kl"]) and drawn[-1].endswith("zipf 0.3")
    plt.close("all")
