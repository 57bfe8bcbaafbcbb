"""dftlab.study.decoding_levers: decoding as a lever against SmolLM2's habit words, with guards for the text's quality."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from dftlab.study import decoding_levers
from dftlab.chat_samples import generate_responses
from dftlab.study.slop_samples import load_slop_samples
from dftlab.storage import write_json_with_hash

ROOT = Path(__file__).resolve().parents[1]


class SpellingTokenizer:
    """A stand-in tokenizer: one token id per character, so a word's tokens are easy to predict."""

    def encode(self, text, add_special_tokens=False):
        return [ord(ch) for ch in text]


def test_the_bias_covers_each_word_with_a_leading_space_in_lower_case_and_capitalised():
    bias = decoding_levers.habit_sequence_bias(SpellingTokenizer(), ["tapestry", "beacon"], bias=-5.0)
    assert bias == {tuple(map(ord, " tapestry")): -5.0, tuple(map(ord, " Tapestry")): -5.0,
                    tuple(map(ord, " beacon")): -5.0, tuple(map(ord, " Beacon")): -5.0}


@pytest.mark.parametrize("bias", [{"tapestry": -5.0}, {(): -5.0}, {(1.5,): -5.0}, [((1,), -5.0)]])
def test_a_malformed_sequence_bias_is_refused_with_an_example(bias):
    with pytest.raises(ValueError, match="sequence_bias must map non-empty tuples of token ids"):
        generate_responses(None, None, ["a prompt"], sequence_bias=bias)


def test_the_expected_outcome_was_committed_before_the_results():
    def added(path):
        log = subprocess.run(["git", "log", "--format=%H", "--diff-filter=A", "--", path], cwd=ROOT,
                             capture_output=True, text=True)
        return log.stdout.split() if log.returncode == 0 else []

    module_commits = added("src/dftlab/decoding_levers.py")
    if not module_commits:
        pytest.skip("not a git checkout with history")
    result_commits = added("src/dftlab/assets/results/decoding-levers-*.json")
    assert result_commits, "no committed decoding-levers results"
    first = module_commits[-1]
    for commit in result_commits:
        assert commit != first
        assert subprocess.run(["git", "merge-base", "--is-ancestor", first, commit], cwd=ROOT).returncode == 0
    source = subprocess.run(["git", "show", f"{first}:src/dftlab/decoding_levers.py"], cwd=ROOT,
                            capture_output=True, text=True).stdout
    assert "Written before the first answer was sampled" in source


@pytest.fixture(scope="module")
def levers():
    return decoding_levers.load_levers()


def test_the_committed_answers_reuse_the_leaderboard_set_and_add_two_decodings(levers):
    answers = levers["answers"]
    reused = {(row["decoding"], row["prompt_index"]): row["response"] for row in load_slop_samples()["responses"]}
    decodings = {}
    for answer in answers:
        decodings.setdefault(answer["decoding"], set()).add(answer["prompt_index"])
        if (answer["decoding"], answer["prompt_index"]) in reused:
            assert answer["response"] == reused[(answer["decoding"], answer["prompt_index"])]
    assert set(decodings) == {decoding_levers.BASELINE, "T=1", *decoding_levers.NEW_DECODINGS}
    assert all(prompts == set(levers["config"]["prompt_indices"]) for prompts in decodings.values())
    assert all(np.isfinite(answer["mean_log_prob"]) and answer["mean_log_prob"] < 0 for answer in answers
               if answer["response"])


def test_the_habit_list_comes_from_other_prompts_than_the_ones_measured(levers):
    from dftlab.chat_samples import load_sample_set

    chat_prompts = {row["prompt"] for row in load_sample_set()["responses"]}
    measured = {answer["prompt"] for answer in levers["answers"]}
    assert not chat_prompts & measured
    assert levers["config"]["habit_words"] == decoding_levers.biased_habit_words()


def test_the_table_compares_every_decoding_with_the_leaderboard_decoding_on_the_same_prompts(levers):
    table = decoding_levers.levers_table(levers, bootstrap=200)
    assert len(table) == 4 * len(decoding_levers.MEASURES)
    baseline = table[table["decoding"] == decoding_levers.BASELINE]
    assert (baseline["difference"] == 0).all() and (baseline[["ci_low", "ci_high"]] == 0).all().all()
    others = table[table["decoding"] != decoding_levers.BASELINE]
    assert ((others["ci_low"] <= others["difference"] + 1e-9) & (others["difference"] <= others["ci_high"] + 1e-9)).all()
    assert (table["prompts"] == 100).all()


def test_results_of_other_settings_are_refused_with_the_command(tmp_path):
    config = {**decoding_levers.levers_config(), "habit_bias": -1.0}
    write_json_with_hash(decoding_levers.levers_path(folder=tmp_path), {"config": config})
    with pytest.raises(ValueError, match="python -m dftlab.study.decoding_levers"):
        decoding_levers.load_levers(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m dftlab.study.decoding_levers"):
        decoding_levers.load_levers(tmp_path / "empty")


@pytest.mark.parametrize("word, non_word", [("tapestr", True), ("sheeft", True), ("bustling", False),
                                            ("elara", False), ("the", False)])
def test_a_non_word_is_one_the_english_list_does_not_know(word, non_word):
    assert decoding_levers.is_non_word(word) is non_word
