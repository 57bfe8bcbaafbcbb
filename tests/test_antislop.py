"""dftlab.antislop: gemma-3-27b-it against its anti-slop fine-tune, on what the tuning did not target."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dftlab import antislop
from dftlab.metrics import slop_list_rate
from dftlab.slop_score_data import load_slop_score_outputs
from dftlab.storage import write_json_with_hash


ROOT = Path(__file__).resolve().parents[1]


def test_the_pairs_keep_the_prompts_both_models_answered_and_alternate_the_halves():
    pairs = antislop.paired_answers()
    failed = {o["prompt_index"] for o in load_slop_score_outputs(antislop.ANTISLOP) if o["failed"]}
    assert failed and not failed & set(pairs["prompt_index"])
    assert len(pairs) == 298
    assert (pairs[["original", "antislop"]].map(len) > antislop.MIN_CHARS_EXCLUSIVE).all().all()
    assert pairs["half"].tolist() == [i % 2 for i in range(len(pairs))]
    assert set(pairs.loc[pairs["half"] == 0, "category"]) == {"creative", "essay"}


def test_openings_and_distinct_2_on_hand_made_text():
    assert antislop.opening("## The Static of Creation\n\nThe universe") == "the static of"
    assert antislop.distinct_2_of_opening_words("a b a b", n_words=4) == pytest.approx(2 / 3)
    assert antislop.distinct_2_of_opening_words("a b c a b a b", n_words=3) == 1.0


@pytest.mark.parametrize("text, broken", [("It wasn’ a vision.", 1), ("He hadn' a wanted this. I wasn’ and", 2),
                                          ("It wasn’t. I can't. Don’t. Won't.", 0), ("The inn's door; 'In' is", 0)])
def test_broken_contractions_are_negative_contractions_cut_after_the_apostrophe(text, broken):
    assert antislop.broken_contractions(text) == broken


def test_the_measure_added_after_reading_says_so(comparison):
    row = comparison["measures"].iloc[-1]
    assert "broken contraction" in row["measure"] and "added after reading" in row["note"]
    assert "broken contraction" not in antislop.EXPECTED_OUTCOME
    assert comparison["config"]["added_after_reading"] == antislop.ADDED_AFTER_READING


def test_the_expected_outcome_was_committed_before_the_first_result():
    """The rule of the course: the expected outcome is in the history before any result file of the comparison."""
    log = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", "src/dftlab/antislop.py"],
                         cwd=ROOT, capture_output=True, text=True)
    results = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--",
                              "src/dftlab/assets/results/antislop-comparison-*.json"],
                             cwd=ROOT, capture_output=True, text=True)
    if log.returncode != 0 or not log.stdout.strip():
        pytest.skip("not a git checkout with history")
    module_commit, result_commits = log.stdout.split()[-1], results.stdout.split()
    assert result_commits, "no committed comparison"
    for commit in result_commits:
        ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", module_commit, commit], cwd=ROOT)
        assert ancestor.returncode == 0 and commit != module_commit
    first = subprocess.run(["git", "show", f"{module_commit}:src/dftlab/antislop.py"], cwd=ROOT,
                           capture_output=True, text=True).stdout
    assert "EXPECTED_OUTCOME" in first and "Written before the comparison was first computed" in first


@pytest.fixture(scope="module")
def comparison():
    return antislop.load_comparison()


def test_the_committed_comparison_is_for_todays_data_and_settings(comparison):
    assert comparison["config"] == antislop.comparison_config()
    assert comparison["halves"]["discovery"] + comparison["halves"]["held_out"] == 298


def test_the_targeted_rate_matches_slop_list_rate_on_the_same_answers(comparison):
    """The first row counts slop-score's words exactly as slop_list_rate does (joined texts count the same words)."""
    pairs = antislop.paired_answers()
    row = comparison["measures"].iloc[0]
    assert row["targeted"] and "list words" in row["measure"]
    for column in ("original", "antislop"):
        assert row[column] == pytest.approx(slop_list_rate(pairs[column].tolist())["slop_words_per_1k"], rel=1e-3)


def test_every_difference_lies_in_its_interval_and_intervals_are_over_prompts(comparison):
    measures = comparison["measures"]
    assert len(measures) == 8 and tuple(measures.columns) == antislop.MEASURE_COLUMNS
    assert (measures["difference"] - (measures["antislop"] - measures["original"])).abs().max() < 1e-12
    assert ((measures["ci_low"] <= measures["difference"] + 1e-12)
            & (measures["difference"] <= measures["ci_high"] + 1e-12)).all()
    assert set(measures["prompts"]) <= {298, comparison["halves"]["held_out"]}
    assert measures["targeted"].sum() == 2  # the list words, and the original's habits that are on the list


def test_the_word_table_says_which_model_each_habit_belongs_to(comparison):
    words = comparison["words"]
    assert set(words["habit_of"]) <= {"original", "anti-slop", "original and anti-slop"}
    assert (words[["original_per_1k", "antislop_per_1k"]] >= 0).all().all()
    new = comparison["measures"].iloc[3]
    assert f"{(words['habit_of'] == 'anti-slop').sum()} words" in new["note"]


def test_the_mmd_is_paired_over_the_shared_prompts(comparison):
    assert comparison["mmd"]["prompts"] == 298
    assert 0 < comparison["mmd"]["p_value"] <= 1


def test_a_comparison_of_other_settings_is_refused_with_the_command(tmp_path):
    config = {**antislop.comparison_config(), "bootstrap": 7}
    write_json_with_hash(antislop.comparison_path(folder=tmp_path), {"config": config})
    with pytest.raises(ValueError, match="python -m dftlab.antislop"):
        antislop.load_comparison(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m dftlab.antislop"):
        antislop.load_comparison(tmp_path / "empty")


def test_the_command_line_names_its_output_folder(tmp_path):
    help_text = subprocess.run([sys.executable, "-m", "dftlab.antislop", "--help"], capture_output=True, text=True)
    assert help_text.returncode == 0 and "--out" in help_text.stdout
