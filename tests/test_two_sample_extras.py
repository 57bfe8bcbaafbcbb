"""Chapter 6's picture of the embeddings behind MMD: metrics.embedding_projection and plots.plot_embedding_clouds."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest

from dftlab import metrics, plots


def _clouds(shift=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return {"reference": rng.normal(size=(40, 6)), "shifted": rng.normal(size=(30, 6)) + shift * np.eye(6)[2]}


def test_points_on_a_line_need_one_component():
    t = np.linspace(-1, 1, 11)[:, None]
    line = t * np.array([[1.0, 2.0, -2.0]]) + np.array([[5.0, 0.0, 1.0]])
    frame = metrics.embedding_projection({"line": line})
    assert frame.attrs["explained_variance_ratio"][0] == pytest.approx(1.0)
    np.testing.assert_allclose(frame["pc2"], 0.0, atol=1e-12)
    np.testing.assert_allclose(frame["pc1"], 3.0 * t[:, 0], atol=1e-12)  # |(1, 2, -2)| = 3, sign: largest loading > 0


def test_the_projection_is_principal_component_analysis_of_the_pooled_sets():
    clouds = _clouds()
    frame = metrics.embedding_projection(clouds, dims=3)
    pooled = np.concatenate(list(clouds.values()))
    centred = pooled - pooled.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(centred, rowvar=False))
    top = eigenvectors[:, ::-1][:, :3]
    for k in range(3):  # the same axes up to sign
        np.testing.assert_allclose(np.abs(frame[f"pc{k + 1}"]), np.abs(centred @ top[:, k]), atol=1e-9)
    ratios = eigenvalues[::-1][:3] / eigenvalues.sum()
    np.testing.assert_allclose(frame.attrs["explained_variance_ratio"], ratios, rtol=1e-9)
    assert list(frame["set"]) == ["reference"] * 40 + ["shifted"] * 30


def test_a_shifted_set_separates_along_the_first_component_and_the_signs_are_fixed():
    frame = metrics.embedding_projection(_clouds())
    means = frame.groupby("set")["pc1"].mean()
    assert abs(means["shifted"] - means["reference"]) > 2.5
    again = metrics.embedding_projection({"shifted": _clouds()["shifted"], "reference": _clouds()["reference"]})
    for name in ("reference", "shifted"):
        np.testing.assert_allclose(again.loc[again["set"] == name, ["pc1", "pc2"]].to_numpy(),
                                   frame.loc[frame["set"] == name, ["pc1", "pc2"]].to_numpy(), atol=1e-9)


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="non-empty dict"):
        metrics.embedding_projection({})
    with pytest.raises(ValueError, match="different embedding dimensions"):
        metrics.embedding_projection({"a": np.zeros((3, 4)), "b": np.zeros((3, 5))})
    with pytest.raises(ValueError, match="dims"):
        metrics.embedding_projection({"a": np.random.default_rng(0).normal(size=(3, 4))}, dims=3)
    with pytest.raises(ValueError, match="NaN"):
        metrics.embedding_projection({"a": np.full((3, 4), np.nan)})


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


# --- Precision and recall by k-nearest-neighbour coverage (chapter 6) ---------------------------------------------

def test_knn_coverage_by_hand():
    line = np.array([[0.0], [1.0], [2.0], [10.0]])
    samples = np.array([[0.5], [5.0], [13.0], [30.0]])
    # k = 1: the balls around 0, 1 and 2 have radius 1, the ball around 10 radius 8 (its nearest other point is 2):
    # 0.5, 5 and 13 are covered, 30 is not
    assert metrics.knn_coverage(line, samples, k=1) == 0.75
    assert metrics.knn_coverage(line, line, k=1) == 1.0  # every point lies in its own ball


def test_a_narrow_cloud_inside_a_wide_one_has_precision_without_recall():
    rng = np.random.default_rng(0)
    wide, narrow = rng.normal(size=(200, 2)), 0.2 * rng.normal(size=(100, 2))
    result = metrics.knn_precision_recall(wide, narrow, k=5)
    assert result["precision"] > 0.9 and result["recall"] < 0.5
    same = metrics.knn_precision_recall(wide[::2], wide[1::2], k=5)
    assert same["precision"] > 0.7 and same["recall"] > 0.7


def test_knn_coverage_refuses_bad_arguments():
    line = np.array([[0.0], [1.0], [2.0], [10.0]])
    with pytest.raises(ValueError, match="k must be"):
        metrics.knn_coverage(line, line, k=4)  # only 3 other reference points
    with pytest.raises(ValueError, match="as wide as reference"):
        metrics.knn_coverage(line, np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.knn_coverage(line, np.array([[np.nan]]), k=1)
