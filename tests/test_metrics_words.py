"""dftlab.metrics.words: the course's one word rule, possessives merged as slop-score merges them."""

import pytest

from dftlab.metrics.words import merge_possessive, words


@pytest.mark.parametrize("word, merged", [
    ("moon's", "moon"), ("fox\u2019s", "fox"), ("o'neill's", "o'neill"),  # possessives, a curly one too
    ("it's", "it's"), ("let's", "let's"), ("he\u2019s", "he's"), ("there's", "there's"),  # "'s" = is / us
    ("don't", "don't"), ("can't", "can't"), ("moon", "moon"), ("s", "s"), ("'s", "'s"),
])
def test_merge_possessive(word, merged):
    assert merge_possessive(word) == merged


def test_words_merges_possessives_only_when_asked():
    text = "The moon's glow, it's late; the students' hall. Don't go! Let's see the fox\u2019s den."
    assert words(text) == ["the", "moon's", "glow", "it's", "late", "the", "students", "hall", "don't", "go",
                           "let's", "see", "the", "fox\u2019s", "den"]
    assert words(text, merge_possessives=True) == ["the", "moon", "glow", "it's", "late", "the", "students", "hall",
                                                   "don't", "go", "let's", "see", "the", "fox", "den"]
