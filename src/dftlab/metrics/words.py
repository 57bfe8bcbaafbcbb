"""What a word is, for every text metric and plot of the course.

`words(text)` is the one definition: the English words of a text as wordfreq counts them. wordfreq splits the text
at Unicode word boundaries, lower-cases it and drops punctuation; a token is kept only if it holds a letter (so
numbers are left out). Apostrophes stay inside a word ("it's", "don't"). So "The" and "the." are one word, as they
are to a reader, and a word is what wordfreq's frequency lists count, which the habit-word measures look words up in.

Every word-based metric (n-gram counts, distinct-n, self-BLEU, token L2, the Zipf coefficient and its rank-frequency
table, seq-rep-n, the overuse tables, the mean length in words) counts `words` unless it is told otherwise: each
takes a `split_words` argument, a function from a text to its list of words.

Two other units are named here because results were measured in them, not because they are better words:

- `whitespace_tokens(text)`: `text.split()`, case and punctuation kept ("The" and "the." are different tokens).
  It is the study's unit: the study's cached text metrics (`dftlab.study.measurement`) were measured on it, and the
  samples they were measured on are not stored, so the study keeps passing it to keep its cached results what the
  code computes. The anti-slop comparison's distinct-2 (`dftlab.antislop`) was measured on it too, and so were the
  distinct-2 of chapter 8's distillation and decoding-lever studies (`dftlab.study.distillation`,
  `dftlab.study.decoding_levers`, `dftlab.study.levers`), whose expectations were written down, and judged, in it:
  changing the unit after seeing the data would move a judged interval, so they keep it.
- `bleu_13a_tokens(text)`: sacrebleu's "13a" tokenizer (case kept, punctuation split off as tokens), the unit the
  study's self-BLEU was measured on.

slop-score's rates (`dftlab.metrics.slop_score`) follow slop-score's own tokens, so that they match its published
leaderboard; they are not text statistics of the course and keep their own unit.
"""
from __future__ import annotations

import functools

# The "'s" endings that are "is" or "us", not a possessive: slop-score's KNOWN_CONTRACTIONS_S (js/metrics.js) and
# slop-forensics' (slop_forensics/constants.py), the same thirteen.
CONTRACTIONS_S = frozenset({"it's", "that's", "what's", "who's", "he's", "she's", "there's", "here's", "where's",
                            "when's", "why's", "how's", "let's"})
_STRAIGHT_APOSTROPHE = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\uff07": "'"})


def merge_possessive(word: str) -> str:
    """`word` with a possessive "'s" removed ("moon's" -> "moon", "o'neill's" -> "o'neill"), curly apostrophes made
    straight; contractions stay whole ("it's", "let's", "don't"), as slop-score and slop-forensics merge them.
    (A plural possessive, "students'", is already "students": wordfreq drops a final apostrophe.)"""
    word = word.translate(_STRAIGHT_APOSTROPHE)
    if word.endswith("'s") and len(word) > 2 and word not in CONTRACTIONS_S:
        return word[:-2]
    return word


def words(text: str, merge_possessives: bool = False) -> list[str]:
    """The English words of `text`, as wordfreq counts them (lower case, no punctuation, no numbers).

    With `merge_possessives`, each word goes through `merge_possessive`: "the moon's glow" gives "the", "moon",
    "glow", while "it's" and "don't" stay whole. `word_overuse` counts words this way."""
    from wordfreq import tokenize

    tokens = [token for token in tokenize(text, "en") if any(ch.isalpha() for ch in token)]
    return [merge_possessive(token) for token in tokens] if merge_possessives else tokens


def whitespace_tokens(text: str) -> list[str]:
    """`text.split()`: whitespace-separated tokens, case and punctuation kept ("The" and "the." differ).

    The study's unit, kept so its cached results stay what the code computes: `dftlab.study.measurement` passes it
    to every text metric it stores (its samples are not stored, so those numbers cannot be measured again in
    `words`). Use `words` for anything new."""
    return text.split()


def bleu_13a_tokens(text: str) -> list[str]:
    """sacrebleu's "13a" tokens of `text` (the tokenizer of WMT's mteval-v13a: case kept, punctuation split off).

    The unit of the study's cached self-BLEU, kept so that number stays what the code computes
    (`dftlab.study.measurement` passes it to `self_bleu`). Use `words` for anything new."""
    return _tokenizer_13a()(text.rstrip()).split()


@functools.lru_cache(maxsize=1)
def _tokenizer_13a():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    return Tokenizer13a()


def check_split_words(split_words):
    """`split_words` if it is a function from a text to its words; a clear error otherwise."""
    if not callable(split_words):
        raise ValueError(f"split_words must be a function from a text to its list of words (e.g. "
                         f"dftlab.metrics.words.words), got {split_words!r:.60}.")
    return split_words
