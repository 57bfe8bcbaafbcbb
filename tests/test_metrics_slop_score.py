"""dftlab.metrics.slop_score: slop-score's tokenisation and list rate, pinned on hand-made sentences."""

from __future__ import annotations

import pytest

from dftlab.metrics import slop_list_rate, slop_score_tokens


@pytest.mark.parametrize("text, tokens", [
    ("Don\u2019t \u2018Tis THE Sea\u2019s", ["don't", "tis", "the", "sea's"]),  # curly quotes straightened
    ("don`t o\u2032clock it\u02bcs", ["don't", "o'clock", "it's"]),  # backtick, prime, modifier apostrophe
    ("'hello' students' ''quoted''", ["hello", "students", "quoted"]),  # edge apostrophes stripped
    ("covid19 3pm 42 route66a", ["covid", "pm", "route", "a"]),  # digits separate words and are dropped
    ("well-being, self\u2014aware; end.", ["well", "being", "self", "aware", "end"]),
    ("rock'n'roll is here", ["is", "here"]),  # two inner apostrophes: the whole token is dropped
    ("caf\u00e9 na\u00efve", ["caf", "na", "ve"]),  # letters outside a-z separate words
    ("The tapestry's threads", ["the", "tapestry's", "threads"]),  # a possessive stays one token
    ("", []),
])
def test_slop_score_tokens(text, tokens):
    assert slop_score_tokens(text) == tokens


def test_counts_by_hand(lists):
    assert {"tapestry", "shimmered", "palpable"} <= set(lists["words"]) and "took deep breath" in lists["trigrams"]
    # she took deep breath the tapestry shimmered: 7 words, 2 list words, 1 list trigram
    result = slop_list_rate(["She took deep breath. The TAPESTRY shimmered."], drop_short=False)
    assert (result["words"], result["slop_word_hits"], result["slop_trigram_hits"]) == (7, 2, 1)
    assert result["slop_words_per_1k"] == pytest.approx(2 / 7 * 1000)
    assert result["slop_trigrams_per_1k"] == pytest.approx(1 / 7 * 1000)
    # a stopword in between breaks the trigram; a possessive is not the list word
    result = slop_list_rate(["She took a deep breath by the tapestry's edge."], drop_short=False)
    assert (result["slop_word_hits"], result["slop_trigram_hits"]) == (0, 0)
    # texts are joined before trigrams are taken, so a trigram may run across two texts
    result = slop_list_rate(["She took deep", "breath, palpable."], drop_short=False)
    assert (result["words"], result["slop_word_hits"], result["slop_trigram_hits"]) == (5, 1, 1)


def test_list_entries_with_an_apostrophe_as_published_and_corrected(lists):
    assert "k'tharr" in lists["words"]
    published_rule = slop_list_rate(["K. said k'tharr"], drop_short=False)
    corrected_rule = slop_list_rate(["K. said k'tharr"], drop_short=False, corrected_lists=True)
    assert published_rule["slop_word_hits"] == 1  # read as "k": the lone letter counts, the name does not
    assert corrected_rule["slop_word_hits"] == 1  # the name counts, the letter does not
    assert slop_list_rate(["k k"], drop_short=False, corrected_lists=True)["slop_word_hits"] == 0


def test_drop_short_counts_characters_as_javascript_does():
    word = "tapestry "
    exactly_300 = (word * 34)[:300]
    assert len(exactly_300) == 300
    with pytest.raises(ValueError, match="300 characters or shorter.*drop_short=False"):
        slop_list_rate([exactly_300])
    assert slop_list_rate([exactly_300 + "x"])["texts_used"] == 1
    emoji = exactly_300[:299] + "\U0001f600"  # 300 code points, 301 UTF-16 code units: kept, as in JavaScript
    assert slop_list_rate([emoji, exactly_300])["texts_used"] == 1
    assert slop_list_rate([exactly_300, "short"], drop_short=False)["texts_used"] == 2


@pytest.mark.parametrize("texts, words", [
    ([], ["non-empty list", "load_slop_score_outputs"]),
    ("one long text", ["single str", "[text]"]),
    (None, ["list of strings", "NoneType"]),
    ((t for t in ["a"]), ["list of strings", "generator"]),
    (["fine", 3], ["texts[1]", "str"]),
    (["fine", None], ["texts[1]", "NoneType"]),
])
def test_bad_texts_are_refused_with_the_fix(texts, words):
    with pytest.raises(ValueError) as error:
        slop_list_rate(texts, drop_short=False)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_bad_flags_and_wordless_texts_are_refused():
    with pytest.raises(ValueError, match="drop_short must be True or False"):
        slop_list_rate(["text"], drop_short="no")
    with pytest.raises(ValueError, match="corrected_lists must be True or False"):
        slop_list_rate(["text"], drop_short=False, corrected_lists=1)
    with pytest.raises(ValueError, match="no words"):
        slop_list_rate(["123 456 \u2014 !!!"], drop_short=False)
