"""slop-score's list rates: how often a text uses words and trigrams from lists of LLM-overused language.

slop-score (Paech 2025, https://github.com/sam-paech/slop-score) publishes a leaderboard whose two list figures,
"slop_list_matches_per_1k_words" and "slop_trigram_matches_per_1k_words", `slop_list_rate` reproduces exactly on
the outputs that ship with dftlab (see `dftlab.slop_score_data`). This is a reimplementation in Python, written from
reading slop-score's JavaScript (js/utils.js, js/metrics.js, generate-leaderboard.mjs); no code was copied.

Unlike the other text statistics of `dftlab.metrics`, the rules here are slop-score's, kept even where they
surprise, so that a number measured here can sit next to a published one:

- the texts are joined into one (a blank line between texts), so a trigram may run from one text into the next;
- tokens are runs of letters, not whitespace-separated words (see `slop_score_tokens`).
"""
from __future__ import annotations

import re

from dftlab.slop_score_data import slop_word_lists
from dftlab.validation import check_texts

# The leaderboard measures only outputs longer than this many characters (counted as JavaScript counts them, in
# UTF-16 code units: an emoji is two), and joins them with a blank line.
MIN_CHARS_EXCLUSIVE = 300
JOINER = "\n\n"
# Characters slop-score straightens to an apostrophe before tokenising: curly single quotes, the single low and
# reversed quotes, the prime, the modifier apostrophe, the fullwidth apostrophe and the backtick.
_APOSTROPHE_LIKE = re.compile("[\u2018\u2019\u201a\u201b\u2032\u02bc\uff07`]")
_LETTERS_AND_APOSTROPHES = re.compile(r"[a-z']+")
_KEPT_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?")  # letters, optionally one inner apostrophe: "don't", "o'clock"
# JavaScript's \s (Python's \s differs in a few code points), for reading list entries exactly as slop-score does.
_JS_SPACE = "[\t\n\v\f\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff]"
# How a list entry is read: the first match of this pattern in the lower-cased entry. The published figures were
# computed with the first; slop-score's commit 289264a (2025-11-23) changed it to the second, which keeps an inner
# apostrophe ("k'tharr" had been read as "k", and the trigram "today's fast paced" as the lone word "today").
_ENTRY_AS_PUBLISHED = re.compile(f"[a-z]+(?:{_JS_SPACE}+[a-z]+)*")
_ENTRY_CORRECTED = re.compile(f"[a-z]+(?:'[a-z]+)?(?:{_JS_SPACE}+[a-z]+(?:'[a-z]+)?)*")


def slop_score_tokens(text: str) -> list[str]:
    """The words of `text` as slop-score counts them.

    1. Lower-case the text, and straighten curly and other apostrophe-like quotes (' ' ‛ ‚ ′ ʼ ＇ `) to "'".
    2. Take every run of the characters a-z and "'". Everything else separates words: spaces, punctuation,
       hyphens ("well-being" is two words), digits ("covid19" gives "covid"), and letters outside a-z ("café"
       gives "caf").
    3. Strip apostrophes from both ends of each run ("'tis" gives "tis", "students'" gives "students"), and drop
       what is left empty.
    4. Keep only letters with at most one inner apostrophe: "don't", "o'clock" and the possessive "sea's" stay
       whole (so "sea's" is not the word "sea"), while "rock'n'roll" is dropped entirely.
    """
    straightened = _APOSTROPHE_LIKE.sub("'", text.lower())
    runs = (run.strip("'") for run in _LETTERS_AND_APOSTROPHES.findall(straightened))
    return [run for run in runs if _KEPT_TOKEN.fullmatch(run)]


def slop_list_entries(raw_entries: list[str], corrected: bool) -> set[str]:
    """The entries of one of slop-score's lists as they are matched: lower case, read as published or corrected."""
    pattern = _ENTRY_CORRECTED if corrected else _ENTRY_AS_PUBLISHED
    found = (pattern.search(entry.lower()) for entry in raw_entries)
    return {match.group(0) for match in found if match}


def _utf16_length(text: str) -> int:
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _check_flag(value, name: str, meaning: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False ({meaning}), got {value!r}.")
    return value


def slop_list_rate(texts, *, drop_short: bool = True, corrected_lists: bool = False) -> dict:
    """slop-score's slop-word and slop-trigram rates per 1,000 words, over `texts` joined as its leaderboard joins them.

    What it measures: how many of the words are on slop-score's list of about 1,600 words that language models
    overuse relative to human writing ("tapestry", "palpable", "unwavering", invented fantasy names), and how many
    three-word windows are on its list of 430 overused trigrams, each per 1,000 words. Lower is less formulaic by
    this yardstick; slop-score reports a human-written baseline of about 6.9 slop words per 1,000.

    The computation, step by step as slop-score's leaderboard does it:

    1. With `drop_short` (the default), texts of 300 characters or fewer are dropped (JavaScript's count, in UTF-16
       code units). The rest are joined in the given order, with a blank line between them.
    2. The joined text is tokenised by `slop_score_tokens`: lower case, curly apostrophes straightened, runs of
       a-z letters with at most one inner apostrophe; digits, hyphens and other characters separate words.
    3. Word hits: tokens equal to a word-list entry. An entry is read as the first run of a-z words (separated by
       spaces) in its lower-cased text; an entry of several words could never equal a single token (the current
       word list has none).
    4. Trigram hits: windows of three consecutive tokens of the same stream, stopwords included, equal to a
       trigram-list entry. The trigram list reads as if built from text with stopwords removed ("took deep
       breath", "voice barely whisper"), so an entry matches only where the text has no stopword in between
       ("took a deep breath" does not match): the trigram rate counts few hits, and that is how the published
       figures count them. Windows run across the boundary between two texts, since the texts are joined first.
    5. Each rate is hits / tokens x 1000.

    `corrected_lists`: False (default) reads list entries as they were read for the published figures; True applies
    slop-score's later fix (commit 289264a), which keeps an apostrophe inside an entry. The difference is small (at
    most 0.7% of the word rate on the vendored models, 5% of one model's trigram rate) but only the default
    reproduces the published numbers exactly.

    Source: slop-score (Paech 2025, https://github.com/sam-paech/slop-score): generate-leaderboard.mjs, js/metrics.js
    and js/utils.js at commit 289264a, reimplemented here; the lists are its data/slop_list.json and
    data/slop_list_trigrams.json, vendored in dftlab/assets/slop_score (loaded by `dftlab.slop_score_data`).

    Caveat: the Antislop model (gemma-3-27b-it-antislop; Paech et al. 2025) was fine-tuned to avoid these very
    lists, so its low rate is partly circular: it shows the training worked on the measured words, not that the
    writing is less formulaic in ways the lists do not name.

    Returns a dict: slop_words_per_1k, slop_trigrams_per_1k, words (tokens counted), slop_word_hits,
    slop_trigram_hits, texts_used (after `drop_short`).
    """
    try:
        texts = check_texts(texts)
    except ValueError as exc:
        raise ValueError(f"{exc} slop_list_rate measures a list of model outputs, e.g. "
                         f"[o['output'] for o in dftlab.slop_score_data.load_slop_score_outputs('qwen3-4b')].") from None
    drop_short = _check_flag(drop_short, "drop_short", "drop texts of 300 characters or fewer, as the leaderboard does")
    corrected_lists = _check_flag(corrected_lists, "corrected_lists",
                                  "read list entries with slop-score's later fix instead of as published")
    used = [text for text in texts if _utf16_length(text) > MIN_CHARS_EXCLUSIVE] if drop_short else texts
    if not used:
        raise ValueError(f"all {len(texts)} texts are {MIN_CHARS_EXCLUSIVE} characters or shorter, and the leaderboard "
                         f"drops those; pass drop_short=False to measure them anyway.")
    tokens = slop_score_tokens(JOINER.join(used))
    if not tokens:
        raise ValueError("texts hold no words (no letters a-z), so there is no rate per 1,000 words; "
                         "pass the models' written outputs.")
    lists = slop_word_lists()
    words = slop_list_entries(lists["words"], corrected_lists)
    # As word tuples: an entry with other whitespace or another number of words becomes a tuple no window equals,
    # just as its string never equals three tokens joined by single spaces.
    trigrams = {tuple(entry.split(" ")) for entry in slop_list_entries(lists["trigrams"], corrected_lists)}
    word_hits = sum(token in words for token in tokens)
    trigram_hits = sum(window in trigrams for window in zip(tokens, tokens[1:], tokens[2:]))
    return {"slop_words_per_1k": word_hits / len(tokens) * 1000,
            "slop_trigrams_per_1k": trigram_hits / len(tokens) * 1000,
            "words": len(tokens), "slop_word_hits": word_hits, "slop_trigram_hits": trigram_hits,
            "texts_used": len(used)}


def slop_list_word_hits(texts, *, corrected_lists: bool = False) -> list[tuple[int, int]]:
    """For each text on its own: (slop-list word hits, words), counted exactly as `slop_list_rate` counts them
    (steps 2, 3 and 5 of its docstring; no text is dropped). Word hits never span two texts, so over texts longer
    than 300 characters, sum(hits) / sum(words) x 1000 is `slop_list_rate`'s slop_words_per_1k. For a bootstrap
    over texts, or a rate per answer."""
    texts = check_texts(texts)
    corrected_lists = _check_flag(corrected_lists, "corrected_lists",
                                  "read list entries with slop-score's later fix instead of as published")
    words = slop_list_entries(slop_word_lists()["words"], corrected_lists)
    counts = []
    for text in texts:
        tokens = slop_score_tokens(text)
        counts.append((sum(token in words for token in tokens), len(tokens)))
    return counts

