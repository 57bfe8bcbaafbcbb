"""dftlab.widgets: the explorers build and embed what their figures need."""

import json

import matplotlib

matplotlib.use("Agg")
import numpy as np
import torch

from dftlab import toy, widgets


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


def test_mmd_explorer_builds():
    spec = _explorer_json(widgets.mmd_explorer(exponents=(0.5, 1.1), sample_sizes=(10, 20), num_permutations=20))
    assert set(_bound_params(spec)) == {"exponent", "sample_size"}
    assert len(spec["data"]["values"]) == 4


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
