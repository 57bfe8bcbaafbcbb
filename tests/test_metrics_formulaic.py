"""dftlab.metrics.formulaic: habit words in free text. Word overuse against English, the split-half topic control,
openings, and the habit words against slop-score's list and human baseline."""

import numpy as np
import pandas as pd
import pytest
from wordfreq import word_frequency

from dftlab import metrics
from dftlab.metrics import formulaic
from dftlab.metrics.formulaic import (controlled_habit_words, formulaic_words, habit_word_evidence,
                                      slop_list_enrichment, slop_list_words, word_overuse)
from dftlab.metrics.words import words


def test_word_overuse_is_the_text_frequency_over_the_english_frequency():
    texts = ["The tapestry of the night.", "A tapestry, the sky.", "the tapestry"]
    table = metrics.word_overuse(texts, min_count=2).set_index("word")
    total = 11  # the tapestry of the night (5) / a tapestry the sky (4) / the tapestry (2)
    assert table.loc["tapestry", "count"] == 3 and table.loc["the", "count"] == 4
    assert table.loc["tapestry", "responses"] == 3
    assert table.loc["tapestry", "overuse_ratio"] == pytest.approx((3 / total) / word_frequency("tapestry", "en"))
    assert table.loc["the", "overuse_ratio"] == pytest.approx((4 / total) / word_frequency("the", "en"))
    assert "night" not in table.index  # seen once, under min_count
    assert list(table.index[:2]) == ["tapestry", "the"]  # sorted by overuse ratio, highest first


def test_a_word_english_does_not_list_gets_a_finite_ratio():
    table = metrics.word_overuse(["zqxvle zqxvle zqxvle"], min_count=1)
    assert table["english_frequency"].iloc[0] == formulaic.ENGLISH_FREQUENCY_FLOOR
    assert np.isfinite(table["overuse_ratio"].iloc[0])


def test_min_groups_drops_words_that_only_one_prompt_calls_for():
    texts = ["a lighthouse keeper", "the lighthouse light", "a tapestry of light", "a tapestry of sound"]
    groups = [0, 0, 1, 2]
    table = metrics.word_overuse(texts, groups=groups, min_count=2, min_groups=2).set_index("word")
    assert "tapestry" in table.index and "lighthouse" not in table.index
    assert table.loc["tapestry", "groups"] == 2


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["tapestry", "the", "sky", "of", "whispers"], size=12)) for _ in range(40)]
    first = metrics.word_overuse(texts, bootstrap=300, seed=1)
    again = metrics.word_overuse(texts, bootstrap=300, seed=1)
    assert first.equals(again)
    assert (first["ci_low"] <= first["overuse_ratio"]).all() and (first["overuse_ratio"] <= first["ci_high"]).all()
    assert (first["ci_high"] > first["ci_low"]).all()


@pytest.mark.parametrize("texts, reference, message", [
    ([], "english", "non-empty list"),
    (["fine", 3], "english", "texts[1] must be a str"),
    ("a single string", "english", "wrap it as [text]"),
    (["...", "123"], "english", "no English words"),
    (["some words here"], "klingon", "reference must be one of ['english']"),
])
def test_word_overuse_bad_input(texts, reference, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        metrics.word_overuse(texts, reference=reference)


def test_phrase_spread_counts_a_phrase_once_per_prompt():
    texts = ["in the heart of the city", "in the heart of the forest", "in the heart of it", "a cat sat"]
    table = metrics.phrase_spread(texts, groups=[0, 1, 1, 2], n=3).set_index("phrase")
    assert table.loc["in the heart", "groups"] == 2 and table.loc["in the heart", "count"] == 3
    assert table.loc["in the heart", "group_share"] == pytest.approx(2 / 3)
    assert "a cat sat" not in table.index  # one prompt only


def test_openings_and_same_opener_runs():
    texts = ["Once upon a time, a fox.", "Once upon a hill.", "He ran. He sat. He slept.", "He ran. She sat. He slept."]
    openings = metrics.opening_table(texts, n_words=2)
    assert openings.iloc[:2].values.tolist() == [["he ran", 2, 0.5], ["once upon", 2, 0.5]]  # ties: alphabetical
    assert formulaic.sentence_openers("He ran. She sat!\nThen it rained.") == ["he", "she", "then"]
    assert metrics.same_opener_run_rate(texts, run=3) == 0.25
    with pytest.raises(ValueError, match="run must be an int >= 2"):
        metrics.same_opener_run_rate(texts, run=1)


def test_word_overuse_counts_a_possessive_as_its_word_and_keeps_contractions():
    texts = ["The moon's light on the sea.", "A moon over the sea, and it's late.", "The moon! It's here."]
    table = word_overuse(texts, min_count=1).set_index("word")
    assert table.at["moon", "count"] == 3 and "moon's" not in table.index
    assert table.at["it's", "count"] == 2 and "it" not in table.index
    assert table["count"].sum() == sum(len(words(t)) for t in texts)  # merging never changes the number of words
    apart = word_overuse(texts, min_count=1, merge_possessives=False).set_index("word")
    assert apart.at["moon", "count"] == 2 and apart.at["moon's", "count"] == 1
    with pytest.raises(ValueError, match="merge_possessives"):
        word_overuse(texts, merge_possessives="yes")


FILLER = "the day was long and we walked home together after the rain"


def _topic_corpus():
    """20 prompts x 2 answers: 'tapestry' in every answer; 'lighthouse' 3 times in each answer to prompts 0, 2, 4,
    6 and 8 only (one topic, all in the discovery half of the alternating split)."""
    texts, groups = [], []
    for prompt in range(20):
        for answer in range(2):
            text = f"{FILLER} a tapestry of light"
            if prompt in (0, 2, 4, 6, 8):
                text += " the lighthouse the lighthouse the lighthouse"
            texts.append(text)
            groups.append(f"prompt {prompt}")
    return texts, groups


def test_the_split_half_rule_rejects_a_topic_word_and_keeps_a_word_used_everywhere():
    texts, groups = _topic_corpus()
    everything = set(formulaic_words(texts, groups, bootstrap=300)["word"])
    assert {"tapestry", "lighthouse"} <= everything  # without the control both pass
    control = controlled_habit_words(texts, groups, bootstrap=300).set_index("word")
    assert control.at["tapestry", "survives"]
    assert control.at["lighthouse", "discovered"] and not control.at["lighthouse", "confirmed"]
    assert not control.at["lighthouse", "survives"]
    assert control.at["lighthouse", "held_out_count"] == 0 and control.at["lighthouse", "held_out_ratio"] == 0
    assert control.at["tapestry", "discovery_groups"] == 10 and control.at["tapestry", "held_out_groups"] == 10


def test_the_split_half_rule_reports_given_words_and_takes_another_split():
    texts, groups = _topic_corpus()
    table = controlled_habit_words(texts, groups, words=["lighthouse", "tapestry", "absentword"], bootstrap=200)
    assert table["word"].tolist() == ["lighthouse", "tapestry", "absentword"]
    assert table["survives"].tolist() == [False, True, False]
    # prompts 0-9 against 10-19: the topic (prompts 0-8) is again in one half only
    halves = [0 if int(g.split()[1]) < 10 else 1 for g in groups]
    blocks = controlled_habit_words(texts, groups, halves=halves, bootstrap=200).set_index("word")
    assert blocks.at["tapestry", "survives"] and not blocks.at["lighthouse", "survives"]


def test_each_half_is_judged_by_formulaic_words_own_rule():
    texts, groups = _topic_corpus()
    rng = np.random.default_rng(3)
    texts = [t + " " + " ".join(rng.choice(["woven", "scent", "glow", "canvas", "cat"], size=4)) for t in texts]
    even = [i for i, g in enumerate(groups) if int(g.split()[1]) % 2 == 0]
    by_rule = set(formulaic_words([texts[i] for i in even], [groups[i] for i in even], bootstrap=200)["word"])
    control = controlled_habit_words(texts, groups, bootstrap=200)
    assert set(control["word"]) == by_rule and control["discovered"].all()


@pytest.mark.parametrize("kwargs, message", [
    ({"halves": [0] * 40}, "held-out half has fewer than 2 prompts"),
    ({"halves": [2] * 40}, "only 0"),
    ({"halves": [0, 1]}, "each of the 40 texts"),
    ({"words": "tapestry"}, "list of words"),
])
def test_the_split_half_rule_bad_input(kwargs, message):
    texts, groups = _topic_corpus()
    with pytest.raises(ValueError, match=message):
        controlled_habit_words(texts, groups, bootstrap=10, **kwargs)


def test_slop_list_words_reads_the_vendored_list():
    listed = slop_list_words()
    assert 1500 < len(listed) <= 1648 and {"tapestry", "bustling", "faded"} <= listed
    assert "lighthouse" not in listed and all(w == w.lower() for w in listed)


def _evidence_corpus():
    texts, groups = _topic_corpus()
    return [t + " and faded scent" for t in texts], groups


def test_habit_word_evidence_flags_list_words_and_compares_with_the_human_rate():
    texts, groups = _evidence_corpus()
    table = habit_word_evidence(texts, groups, bootstrap=200).set_index("word")
    assert {"tapestry", "lighthouse", "faded", "scent"} <= set(table.index)
    assert table.at["tapestry", "on_slop_list"] and not table.at["lighthouse", "on_slop_list"]
    assert table.at["tapestry", "survives"] and not table.at["lighthouse", "survives"]
    # 'faded' is among the human baseline's 50 most frequent list words (460 times in 17,244,010 words)
    assert table.at["faded", "human_per_1k"] == pytest.approx(460 / 17_244_010 * 1000)
    assert table.at["faded", "vs_human"] == "above"
    assert np.isnan(table.at["tapestry", "human_per_1k"]) and table.at["tapestry", "human_max_per_1k"] > 0
    assert table.at["lighthouse", "vs_human"] == "no human figure"
    ok = table["text_low"] <= table["text_per_1k"] + 1e-12
    assert ok.all() and (table["text_per_1k"] <= table["text_high"] + 1e-12).all()
    # the rate counts slop-score tokens: 'tapestry' once in each answer
    total = sum(len(words(t)) for t in texts)
    assert table.at["tapestry", "text_per_1k"] == pytest.approx(40 / total * 1000)


def test_slop_list_enrichment_compares_the_habit_words_with_every_candidate():
    texts, groups = _evidence_corpus()
    table = slop_list_enrichment(texts, groups, bootstrap=200)
    assert list(table.index) == ["habit words", "split-half survivors", "candidate words", "rare candidate words"]
    habits = set(formulaic_words(texts, groups, bootstrap=200)["word"])
    assert table.at["habit words", "words"] == len(habits)
    assert table.at["habit words", "on_slop_list"] == len(habits & slop_list_words())
    candidates = word_overuse(texts, groups=groups, min_count=5)
    assert table.at["candidate words", "words"] == len(candidates)
    assert table.at["candidate words", "enrichment_vs_candidates"] == 1.0
    expected = (table.at["habit words", "share"] / table.at["candidate words", "share"])
    assert table.at["habit words", "enrichment_vs_candidates"] == pytest.approx(expected)
    assert 0 <= table.at["habit words", "p_vs_candidates"] <= 1
    assert isinstance(table, pd.DataFrame)
