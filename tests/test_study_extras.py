"""Chapter 7's additions to the study: the claim-provenance table and the quality-diversity frontier."""
import matplotlib

matplotlib.use("Agg")

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from dftlab import plots, study
from dftlab.study.claims import CLAIM_PROVENANCE, CLAIM_TEXTS, claim_provenance_table

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"


@pytest.fixture(scope="module")
def results():
    return study.load_results()


def test_the_provenance_table_has_a_row_per_claim_with_the_study_verdicts(results):
    judgement = study.judge(results)
    table = claim_provenance_table(results, judgement)
    assert list(table.index) == [1, 2, 3, 4, 5]
    assert list(table.columns) == ["news rewrite", "blog post", "tested in the course", "verdict", "where in the book"]
    assert list(table["news rewrite"]) == list(CLAIM_TEXTS)
    assert list(table["verdict"]) == [c.verdict for c in judgement.claims]
    assert set(table["verdict"]) <= set(study.VERDICTS)
    assert table.notna().all().all() and (table.map(lambda v: len(str(v))) > 0).all().all()


def test_the_provenance_table_judges_the_results_itself_when_not_given_a_judgement(results):
    assert list(claim_provenance_table(results)["verdict"]) == [c.verdict for c in study.judge(results).claims]


def test_every_provenance_entry_points_at_chapters_that_exist():
    assert len(CLAIM_PROVENANCE) == len(CLAIM_TEXTS)
    for entry in CLAIM_PROVENANCE:
        assert entry.blog and entry.tested and entry.chapters == tuple(sorted(entry.chapters))
        for number in entry.chapters:
            assert list(CHAPTERS.glob(f"{number:02d}_*.ipynb")), f"no chapter {number}"


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


def test_rosmine_reported_numbers_are_the_posts_table():
    table = pd.DataFrame(study.ROSMINE_REPORTED).set_index(["model", "method"])
    assert table.loc[("Qwen3 14B", "Distribution FT"), "MMD"] < table.loc[("Qwen3 14B", "SFT super-baseline"), "MMD"]
    assert table.loc[("Qwen3 4B", "Distribution FT"), "token L2"] > table.loc[("Qwen3 4B", "SFT super-baseline"),
                                                                             "token L2"]
    assert list(table.columns) == ["MMD", "JMQ", "token L2"]
