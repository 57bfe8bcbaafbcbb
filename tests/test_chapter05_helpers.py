"""Chapter 5's helpers: the MMD-by-Zipf-exponent sweep, its figure and the MMD explorer widget."""
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from dftlab import plots, widgets


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_mmd_sweep_has_one_row_per_exponent_and_size():
    table = plots.mmd_by_zipf_exponent([0.3, 1.1], sample_sizes=(10, 20), num_permutations=20)
    assert len(table) == 4
    assert set(table.columns) >= {"zipf_exponent", "sample_size", "mmd2", "p_value", "bandwidth", "significant"}
    assert table["p_value"].between(0, 1).all() and (table["bandwidth"] > 0).all()
    assert (table["significant"] == (table["p_value"] < 0.05)).all()


def test_mmd_sweep_is_deterministic():
    first = plots.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    second = plots.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    assert first.equals(second)


def test_mmd_sweep_separates_far_distributions_and_not_the_same_one():
    table = plots.mmd_by_zipf_exponent([0.0, 1.1], sample_sizes=(150,), num_permutations=100)
    far, same = table.set_index("zipf_exponent").loc[0.0], table.set_index("zipf_exponent").loc[1.1]
    assert far["significant"] and not same["significant"]
    assert far["mmd2"] > same["mmd2"]


def test_mmd_plot_is_labelled_and_draws_one_line_per_size():
    table = plots.mmd_by_zipf_exponent([0.3, 1.1, 1.9], sample_sizes=(10, 20), num_permutations=20)
    ax = plots.plot_mmd_by_zipf_exponent(table, highlight=(1.1, 10))
    assert ax.get_xlabel() and ax.get_ylabel()
    labels = [line.get_label() for line in ax.get_lines()]
    assert "n = 10 per sample" in labels and "n = 20 per sample" in labels


def test_mmd_explorer_builds():
    explorer = widgets.mmd_explorer(exponents=(0.5, 1.1), num_permutations=20)
    assert len(explorer.children) == 3  # two sliders and the output
