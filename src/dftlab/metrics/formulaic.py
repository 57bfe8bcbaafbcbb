"""Formulaic writing in free text (the chapter "What formulaic writing looks like").

Where the true distribution is unknown, as for a real chat model's answers to open prompts, formulaic writing
shows up in three ways this module measures:

- `word_overuse`: words used far more often than in modern English (wordfreq's frequencies), in the spirit of
  slop-forensics and Antislop (arXiv 2510.15061);
- `phrase_spread`: phrases that recur across answers to *different* prompts;
- `opening_table` and `same_opener_run_rate`: answers that open the same way, and sentences that keep starting
  with the same word (Rosmine reports three in a row in 53% of SFT outputs at T=0.7, against 17.4% of human text).

Words are wordfreq's English tokens: lower case, punctuation dropped, apostrophes kept ("it's").
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from dftlab.validation import check_int, check_number, check_texts

REFERENCES = ("english",)
# wordfreq lists English words down to a frequency of 1e-8 (Zipf 1); a word it does not list is treated as if it
# had that frequency, so an overuse ratio is always finite.
ENGLISH_FREQUENCY_FLOOR = 1e-8


def words(text: str) -> list[str]:
    """The English words of `text`, as wordfreq counts them (lower case, no punctuation, no numbers)."""
    from wordfreq import tokenize

    return [token for token in tokenize(text, "en") if any(ch.isalpha() for ch in token)]


def english_frequency(word: str) -> float:
    """The frequency of `word` in modern English (wordfreq 'best' list), floored at ENGLISH_FREQUENCY_FLOOR."""
    from wordfreq import word_frequency

    return max(word_frequency(word, "en"), ENGLISH_FREQUENCY_FLOOR)


def _check_reference(reference) -> str:
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {list(REFERENCES)} (modern English word frequencies from "
                         f"wordfreq), got {reference!r}. To compare with your own reference texts, use "
                         f"dftlab.metrics.overuse_table(samples, reference_texts).")
    return reference


def word_overuse(texts, reference: str = "english", *, groups=None, min_count: int = 5, min_groups: int = 1,
                 top: int | None = None, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """How much more often each word appears in `texts` than in modern English.

    overuse_ratio = (count / total words of `texts`) / english_frequency(word). Words seen fewer than `min_count`
    times are left out (a single odd word would otherwise top the table). Rows are sorted by overuse_ratio, highest
    first; `top` keeps the first rows.

    `groups` gives each text's prompt (default: every text its own group). Words used in answers to fewer than
    `min_groups` different prompts are left out: a word that only one prompt calls for ("lighthouse") is the topic,
    not a habit. With `bootstrap` > 0, `ci_low` and `ci_high` give a percentile interval over `bootstrap` resamples
    of the groups, drawn with replacement (so the answers to one prompt, and the words of one answer, move together).

    Columns: word, count, responses (how many texts use it), groups (how many prompts), text_frequency,
    english_frequency, overuse_ratio (and ci_low, ci_high).
    """
    texts = check_texts(texts)
    _check_reference(reference)
    min_count = check_int(min_count, "min_count")
    top = None if top is None else check_int(top, "top")
    bootstrap = check_int(bootstrap, "bootstrap", minimum=0)
    confidence = check_number(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True)
    seed = check_int(seed, "seed", minimum=0)
    min_groups = check_int(min_groups, "min_groups")
    group_ids = _group_ids(groups, len(texts))
    per_text = [Counter(words(text)) for text in texts]
    lengths = np.array([sum(counts.values()) for counts in per_text], dtype=float)
    total = lengths.sum()
    if total == 0:
        raise ValueError("texts hold no English words (they are empty or only punctuation and numbers); "
                         "pass the responses' text.")
    counts = Counter()
    for text_counts in per_text:
        counts.update(text_counts)
    number_of_groups = int(group_ids.max()) + 1
    candidates = sorted(word for word, count in counts.items() if count >= min_count)
    matrix = np.array([[text_counts.get(word, 0) for word in candidates] for text_counts in per_text], dtype=float)
    by_group = np.zeros((number_of_groups, len(candidates)))
    np.add.at(by_group, group_ids, matrix)
    spread = (by_group > 0).sum(0)  # how many prompts use each word
    keep = spread >= min_groups
    kept, matrix, spread = [w for w, k in zip(candidates, keep) if k], matrix[:, keep], spread[keep]
    columns = ["word", "count", "responses", "groups", "text_frequency", "english_frequency", "overuse_ratio"]
    if not kept:
        return pd.DataFrame(columns=columns + (["ci_low", "ci_high"] if bootstrap else []))
    english = np.array([english_frequency(word) for word in kept])
    text_frequency = matrix.sum(0) / total
    table = pd.DataFrame({"word": kept, "count": matrix.sum(0).astype(int), "responses": (matrix > 0).sum(0),
                          "groups": spread, "text_frequency": text_frequency,
                          "english_frequency": english, "overuse_ratio": text_frequency / english})
    if bootstrap:
        rng = np.random.default_rng(seed)
        drawn = rng.multinomial(number_of_groups, np.full(number_of_groups, 1 / number_of_groups), size=bootstrap)
        weights = drawn[:, group_ids].astype(float)  # each text weighs as often as its group was drawn
        ratios = (weights @ matrix) / np.maximum(weights @ lengths, 1.0)[:, None] / english
        alpha = (1 - confidence) / 2
        table["ci_low"], table["ci_high"] = np.quantile(ratios, [alpha, 1 - alpha], axis=0)
    table = table.sort_values(["overuse_ratio", "word"], ascending=[False, True], ignore_index=True)
    return table.head(top) if top is not None else table


def _group_ids(groups, number_of_texts: int) -> np.ndarray:
    """Each text's group as 0, 1, 2, ... in order of first appearance (default: every text its own group)."""
    if groups is None:
        return np.arange(number_of_texts)
    if isinstance(groups, str) or not hasattr(groups, "__len__"):
        raise ValueError(f"groups must be a list with one prompt (or prompt index) per text, got {groups!r:.60}.")
    groups = list(groups)
    if len(groups) != number_of_texts:
        raise ValueError(f"groups must give one group per text: {len(groups)} groups for {number_of_texts} texts.")
    index = {}
    return np.array([index.setdefault(group, len(index)) for group in groups])


def phrase_spread(texts, groups=None, n: int = 3, *, top: int = 20, min_groups: int = 2) -> pd.DataFrame:
    """Word n-grams that recur across answers to different prompts.

    `groups` gives each text's prompt (any hashable; default: every text its own group). A phrase counts once per
    group that uses it, so a phrase that only one prompt calls for ("the lighthouse keeper") cannot rank high.
    Returns the `top` phrases used in at least `min_groups` groups, with columns phrase, groups, group_share, count.
    """
    texts = check_texts(texts)
    n = check_int(n, "n")
    top = check_int(top, "top")
    min_groups = check_int(min_groups, "min_groups")
    groups = _group_ids(groups, len(texts)).tolist()
    phrase_groups, phrase_counts = {}, Counter()
    for text, group in zip(texts, groups):
        tokens = words(text)
        for phrase in (" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1)):
            phrase_groups.setdefault(phrase, set()).add(group)
            phrase_counts[phrase] += 1
    number_of_groups = len(set(groups))
    rows = [{"phrase": phrase, "groups": len(members), "group_share": len(members) / number_of_groups,
             "count": phrase_counts[phrase]} for phrase, members in phrase_groups.items() if len(members) >= min_groups]
    table = pd.DataFrame(rows, columns=["phrase", "groups", "group_share", "count"])
    return table.sort_values(["groups", "count", "phrase"], ascending=[False, False, True],
                             ignore_index=True).head(top)


def opening_table(texts, n_words: int = 3, top: int = 10) -> pd.DataFrame:
    """The most common first `n_words` words of the texts: columns opening, count, share."""
    texts = check_texts(texts)
    n_words = check_int(n_words, "n_words")
    top = check_int(top, "top")
    openings = Counter(" ".join(words(text)[:n_words]) for text in texts)
    table = pd.DataFrame([{"opening": opening, "count": count, "share": count / len(texts)}
                          for opening, count in openings.items() if opening],
                         columns=["opening", "count", "share"])
    return table.sort_values(["count", "opening"], ascending=[False, True], ignore_index=True).head(top)


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n+")


def sentence_openers(text: str) -> list[str]:
    """The first word of each sentence of `text` (sentences end at . ! ? or a line break)."""
    openers = []
    for sentence in _SENTENCE_END.split(text):
        sentence_words = words(sentence)
        if sentence_words:
            openers.append(sentence_words[0])
    return openers


def same_opener_run_rate(texts, run: int = 3) -> float:
    """The share of texts in which `run` consecutive sentences start with the same word (Rosmine's statistic)."""
    texts = check_texts(texts)
    run = check_int(run, "run", minimum=2)

    def has_run(openers: list[str]) -> bool:
        return any(len(set(openers[i:i + run])) == 1 for i in range(len(openers) - run + 1))

    return float(np.mean([has_run(sentence_openers(text)) for text in texts]))


def formulaic_words(texts, groups, *, max_english_frequency: float = 1e-5, min_group_share: float = 0.1,
                    min_ratio: float = 10.0, bootstrap: int = 1000, seed: int = 0) -> pd.DataFrame:
    """The words that are habits rather than topics: rare in English (frequency below `max_english_frequency`),
    used in answers to at least `min_group_share` of the prompts, and over-used beyond doubt (the bootstrap
    interval's lower end, resampling prompts, above `min_ratio`). A `word_overuse` table, filtered by that rule."""
    max_english_frequency = check_number(max_english_frequency, "max_english_frequency", 0.0, 1.0, low_open=True)
    min_group_share = check_number(min_group_share, "min_group_share", 0.0, 1.0, low_open=True)
    min_ratio = check_number(min_ratio, "min_ratio", 0.0, low_open=True)
    bootstrap = check_int(bootstrap, "bootstrap")
    number_of_groups = len(set(_group_ids(groups, len(check_texts(texts))).tolist()))
    min_groups = max(1, int(np.ceil(min_group_share * number_of_groups)))
    table = word_overuse(texts, groups=groups, min_groups=min_groups, bootstrap=bootstrap, seed=seed)
    keep = (table["english_frequency"] < max_english_frequency) & (table["ci_low"] > min_ratio)
    return table[keep].reset_index(drop=True)
