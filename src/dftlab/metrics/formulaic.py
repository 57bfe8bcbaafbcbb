"""Formulaic writing in free text (the chapter "What formulaic writing looks like").

Where the true distribution is unknown, as for a real chat model's answers to open prompts, formulaic writing
shows up in three ways this module measures:

- `word_overuse`: words used far more often than in modern English (wordfreq's frequencies), in the spirit of
  slop-forensics and Antislop (arXiv 2510.15061);
- `phrase_spread`: phrases that recur across answers to *different* prompts;
- `opening_table` and `same_opener_run_rate`: answers that open the same way, and sentences that keep starting
  with the same word (Rosmine reports three in a row in 53% of SFT outputs at T=0.7, against 17.4% of human text).

Words are the course's words (`dftlab.metrics.words.words`: wordfreq's English tokens, lower case, punctuation
dropped, apostrophes kept, "it's"), so a word is what wordfreq's frequency lists count. For word overuse, a
possessive counts as its word ("moon's" as "moon"), as slop-score and slop-forensics count them, while contractions
stay whole ("it's", "don't"): see `words(text, merge_possessives=True)`.

Whether a habit word is a habit or a topic, and whether others found it too:

- `controlled_habit_words`: a split-half control: words found on half of the prompts must pass the same rule on
  the other half, so a word tied to the topics of one half cannot pass;
- `habit_word_evidence` and `slop_list_enrichment`: the habit words against slop-score's independent list of
  LLM-overused words and its human baseline (`dftlab.slop_score_data`).
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pandas as pd

from dftlab.metrics.words import words
from dftlab.validation import check_int, check_number, check_texts

REFERENCES = ("english",)
# wordfreq lists English words down to a frequency of 1e-8 (Zipf 1); a word it does not list is treated as if it
# had that frequency, so an overuse ratio is always finite.
ENGLISH_FREQUENCY_FLOOR = 1e-8


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
                 top: int | None = None, bootstrap: int = 0, confidence: float = 0.95, seed: int = 0,
                 merge_possessives: bool = True) -> pd.DataFrame:
    """How much more often each word appears in `texts` than in modern English.

    Words are `words(text, merge_possessives=True)`: a possessive counts as its word ("moon's" as "moon"), as in
    slop-score and slop-forensics; contractions ("it's", "don't") stay whole. `merge_possessives=False` counts
    "moon's" as a word of its own.

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
    if not isinstance(merge_possessives, bool):
        raise ValueError(f"merge_possessives must be True or False, got {merge_possessives!r}.")
    per_text = [Counter(words(text, merge_possessives)) for text in texts]
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
    max_english_frequency, min_group_share, min_ratio, bootstrap = _check_rule(
        max_english_frequency, min_group_share, min_ratio, bootstrap)
    min_groups = _min_groups(groups, len(check_texts(texts)), min_group_share)
    table = word_overuse(texts, groups=groups, min_groups=min_groups, bootstrap=bootstrap, seed=seed)
    keep = (table["english_frequency"] < max_english_frequency) & (table["ci_low"] > min_ratio)
    return table[keep].reset_index(drop=True)


def _check_rule(max_english_frequency, min_group_share, min_ratio, bootstrap):
    return (check_number(max_english_frequency, "max_english_frequency", 0.0, 1.0, low_open=True),
            check_number(min_group_share, "min_group_share", 0.0, 1.0, low_open=True),
            check_number(min_ratio, "min_ratio", 0.0, low_open=True), check_int(bootstrap, "bootstrap"))


def _min_groups(groups, number_of_texts: int, min_group_share: float) -> int:
    number_of_groups = len(set(_group_ids(groups, number_of_texts).tolist()))
    return max(1, int(np.ceil(min_group_share * number_of_groups)))


def _rule_table(texts, groups, max_english_frequency, min_group_share, min_ratio, bootstrap, seed) -> pd.DataFrame:
    """`word_overuse` of every word of `texts` (no count or spread filter), indexed by word, with `passes`: whether
    `formulaic_words` with these settings keeps the word. (The bootstrap draws depend only on the number of groups
    and the seed, so each word's interval is the one `formulaic_words` computes.)"""
    table = word_overuse(texts, groups=groups, min_count=1, min_groups=1, bootstrap=bootstrap, seed=seed)
    table["passes"] = ((table["count"] >= 5) & (table["groups"] >= _min_groups(groups, len(texts), min_group_share))
                       & (table["english_frequency"] < max_english_frequency) & (table["ci_low"] > min_ratio))
    return table.set_index("word")


def _word_list(chosen, name: str = "words") -> list[str]:
    if isinstance(chosen, str) or not hasattr(chosen, "__iter__"):
        raise ValueError(f"{name} must be a list of words, got {chosen!r:.60}.")
    chosen = list(chosen)
    if not all(isinstance(word, str) and word for word in chosen):
        raise ValueError(f"{name} must hold non-empty strings, got {chosen!r:.80}.")
    return chosen


def controlled_habit_words(texts, groups, *, words=None, halves=None, max_english_frequency: float = 1e-5,
                           min_group_share: float = 0.1, min_ratio: float = 10.0, bootstrap: int = 1000,
                           seed: int = 0) -> pd.DataFrame:
    """Habit words that survive a topic control: found on half of the prompts, confirmed on the other half.

    The prompts (`groups`, one per text) are split in two: by default the 1st, 3rd, 5th, ... prompt in order of
    first appearance form the discovery half and the 2nd, 4th, ... the held-out half (for the committed chat set,
    whose prompts come in blocks of a kind, even and odd prompt indices: each half gets every kind). `halves`
    (one 0 or 1 per text, 0 = discovery) sets another split, e.g. by kind of writing. `formulaic_words`' rule, with
    these settings, is applied to each half on its own (the share of prompts counts that half's prompts); a word
    survives when it passes on both. A word that one prompt, or a few prompts of one half, call for has no excess
    in the other half and fails there. As the rule is the same on both halves, the survivors are the words that
    pass on each half: swapping the halves changes nothing.

    Rows: the words that pass on the discovery half, by their discovery overuse ratio; or, with `words`, those
    words in that order (e.g. the habit words of all texts, to see which survive). Columns: word,
    english_frequency, discovery_count, discovery_groups, discovery_ratio, discovery_ci_low, discovered,
    held_out_count, held_out_groups, held_out_ratio, held_out_ci_low, confirmed, survives (discovered and
    confirmed). A word absent from a half has count, groups and ratio 0 there.
    """
    texts = check_texts(texts)
    rule = _check_rule(max_english_frequency, min_group_share, min_ratio, bootstrap)
    group_ids = _group_ids(groups, len(texts))
    if halves is None:
        half = group_ids % 2
    else:
        if isinstance(halves, str) or not hasattr(halves, "__len__") or len(halves) != len(texts):
            raise ValueError(f"halves must give 0 (discovery) or 1 (held out) for each of the {len(texts)} texts.")
        half = np.array(list(halves))
        if not set(half.tolist()) <= {0, 1}:
            raise ValueError(f"halves must hold only 0 (discovery) and 1 (held out), got {sorted(set(half.tolist()))}.")
    tables = {}
    for name, side in (("discovery", 0), ("held_out", 1)):
        mask = half == side
        if len(set(group_ids[mask].tolist())) < 2:
            raise ValueError(f"the {name.replace('_', '-')} half has fewer than 2 prompts; the split-half control "
                             f"needs at least 4 prompts (groups) in all.")
        tables[name] = _rule_table([t for t, m in zip(texts, mask) if m], group_ids[mask].tolist(), *rule, seed)
    if words is None:
        discovered = tables["discovery"]
        chosen = discovered.index[discovered["passes"]].tolist()
    else:
        chosen = _word_list(words)
    rows = []
    for word in chosen:
        row = {"word": word, "english_frequency": english_frequency(word)}
        for name, table in tables.items():
            found = word in table.index
            row.update({f"{name}_count": int(table.at[word, "count"]) if found else 0,
                        f"{name}_groups": int(table.at[word, "groups"]) if found else 0,
                        f"{name}_ratio": float(table.at[word, "overuse_ratio"]) if found else 0.0,
                        f"{name}_ci_low": float(table.at[word, "ci_low"]) if found else 0.0,
                        "discovered" if name == "discovery" else "confirmed":
                            bool(table.at[word, "passes"]) if found else False})
        rows.append(row)
    columns = ["word", "english_frequency", "discovery_count", "discovery_groups", "discovery_ratio",
               "discovery_ci_low", "discovered", "held_out_count", "held_out_groups", "held_out_ratio",
               "held_out_ci_low", "confirmed"]
    table = pd.DataFrame(rows, columns=columns)
    table["survives"] = table["discovered"] & table["confirmed"]
    return table


# --- the habit words against slop-score's list and its human baseline ------------------------------------------

def slop_list_words() -> frozenset[str]:
    """slop-score's list of LLM-overused words (data/slop_list.json, vendored in dftlab.slop_score_data), each entry read
    as slop-score's current code reads it (lower case; an inner apostrophe kept)."""
    from dftlab.metrics.slop_score import slop_list_entries
    from dftlab.slop_score_data import slop_word_lists

    return frozenset(slop_list_entries(slop_word_lists()["words"], corrected=True))


def _human_word_rates() -> tuple[dict[str, float], float]:
    """The human baseline's published rate per 1,000 words of each of its 50 most frequent slop-list words, and the
    rate of the 50th (every other list word is rarer in the human texts)."""
    from dftlab.slop_score_data import HUMAN_BASELINE, published_slop_figures, published_slop_hits

    total = float(published_slop_figures().loc[HUMAN_BASELINE, "words"])
    hits = published_slop_hits(HUMAN_BASELINE)["words"]
    rates = {word: count / total * 1000 for word, count in hits}
    return rates, min(rates.values())


def habit_word_evidence(texts, groups, *, max_english_frequency: float = 1e-5, min_group_share: float = 0.1,
                        min_ratio: float = 10.0, bootstrap: int = 1000, confidence: float = 0.95,
                        seed: int = 0) -> pd.DataFrame:
    """Each habit word of `texts` (`formulaic_words` with these settings) with three outside checks.

    1. survives: whether it passes the split-half topic control (`controlled_habit_words`, default split).
    2. on_slop_list: whether slop-score's independently built list of LLM-overused words has it
       (`slop_list_words`; built from other models' writing, so it is an outside check).
    3. The human baseline: slop-score publishes, for its 17.2M words of human fiction and essays, the counts of
       its 50 most frequent slop-list words only (the leaderboard's slop_word_hits; the texts themselves and a
       per-word profile are not published). human_per_1k is that word's human rate per 1,000 words; for another
       list word it is unknown but below human_max_per_1k, the 50th word's rate; for a word not on the list there
       is no human figure. text_per_1k is the word's rate in `texts`, counted as slop-score counts (its tokens, no
       possessive merging), with a `confidence` interval over `bootstrap` resamples of the prompts (text_low,
       text_high). vs_human says "above", "within" or "below" the human rate (the interval is wholly above it,
       contains it, or is wholly below), "above" where the interval is above the bound of an unlisted-in-top-50
       word, "unknown" where it is not, and "no human figure" off the list. It compares against one pooled
       figure (fiction and essays together), not a range over human authors.

    Columns: word, overuse_ratio, ci_low (from `formulaic_words`), survives, on_slop_list, text_per_1k, text_low,
    text_high, human_per_1k, human_max_per_1k, vs_human.
    """
    from dftlab.metrics.slop_score import slop_score_tokens

    texts = check_texts(texts)
    confidence = check_number(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True)
    settings = {"max_english_frequency": max_english_frequency, "min_group_share": min_group_share,
                "min_ratio": min_ratio, "bootstrap": bootstrap, "seed": seed}
    habits = formulaic_words(texts, groups, **settings)
    chosen = habits["word"].tolist()
    control = controlled_habit_words(texts, groups, words=chosen, **settings).set_index("word")
    listed = slop_list_words()
    human, human_floor = _human_word_rates()
    # each word's rate in slop-score's tokens, with a bootstrap over the prompts
    group_ids = _group_ids(groups, len(texts))
    tokens = [slop_score_tokens(text) for text in texts]
    lengths = np.array([len(t) for t in tokens], dtype=float)
    matrix = np.array([[t.count(word) for word in chosen] for t in tokens], dtype=float).reshape(len(texts), -1)
    rate = matrix.sum(0) / max(lengths.sum(), 1.0) * 1000
    number_of_groups = int(group_ids.max()) + 1
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(number_of_groups, np.full(number_of_groups, 1 / number_of_groups),
                            size=max(bootstrap, 1))[:, group_ids].astype(float)
    resampled = (drawn @ matrix) / np.maximum(drawn @ lengths, 1.0)[:, None] * 1000
    alpha = (1 - confidence) / 2
    low, high = np.quantile(resampled, [alpha, 1 - alpha], axis=0) if chosen else (np.zeros(0), np.zeros(0))
    rows = []
    for i, word in enumerate(chosen):
        on_list = word in listed
        human_rate = human.get(word, np.nan)
        human_max = human_rate if word in human else (human_floor if on_list else np.nan)
        if not on_list:
            verdict = "no human figure"
        elif word in human:
            verdict = "above" if low[i] > human_rate else ("below" if high[i] < human_rate else "within")
        else:
            verdict = "above" if low[i] > human_floor else "unknown"
        rows.append({"word": word, "overuse_ratio": habits.at[i, "overuse_ratio"], "ci_low": habits.at[i, "ci_low"],
                     "survives": bool(control.at[word, "survives"]), "on_slop_list": on_list,
                     "text_per_1k": rate[i], "text_low": low[i], "text_high": high[i], "human_per_1k": human_rate,
                     "human_max_per_1k": human_max, "vs_human": verdict})
    return pd.DataFrame(rows, columns=["word", "overuse_ratio", "ci_low", "survives", "on_slop_list", "text_per_1k",
                                       "text_low", "text_high", "human_per_1k", "human_max_per_1k", "vs_human"])


def slop_list_enrichment(texts, groups, *, min_count: int = 5, max_english_frequency: float = 1e-5,
                         min_group_share: float = 0.1, min_ratio: float = 10.0, bootstrap: int = 1000,
                         seed: int = 0) -> pd.DataFrame:
    """How much more often the habit words of `texts` are on slop-score's list than words of `texts` in general.

    Rows: "habit words" (`formulaic_words`), "split-half survivors" (those of them that pass
    `controlled_habit_words`), and two bases: "candidate words" (every word counted at least `min_count` times,
    the words `word_overuse` ranks) and "rare candidate words" (those of them with an English frequency below
    `max_english_frequency`, as every habit word is: the list is mostly of rare words, so this base is the fairer
    one). Columns: words, on_slop_list, share (on_slop_list / words), enrichment (share / the base's share) and
    p_value (hypergeometric, one-sided: the chance that as many words drawn at random from the base would be on
    the list) against each base: enrichment_vs_candidates, p_vs_candidates, enrichment_vs_rare, p_vs_rare.
    """
    from scipy.stats import hypergeom

    texts = check_texts(texts)
    min_count = check_int(min_count, "min_count")
    settings = {"max_english_frequency": max_english_frequency, "min_group_share": min_group_share,
                "min_ratio": min_ratio, "bootstrap": bootstrap, "seed": seed}
    listed = slop_list_words()
    candidates = word_overuse(texts, groups=groups, min_count=min_count)
    habits = formulaic_words(texts, groups, **settings)["word"].tolist()
    control = controlled_habit_words(texts, groups, words=habits, **settings)
    sets = {"habit words": habits, "split-half survivors": control.loc[control["survives"], "word"].tolist(),
            "candidate words": candidates["word"].tolist(),
            "rare candidate words": candidates.loc[candidates["english_frequency"] < max_english_frequency,
                                                   "word"].tolist()}
    counts = {name: (len(chosen), sum(word in listed for word in chosen)) for name, chosen in sets.items()}
    rows = []
    for name, (n, k) in counts.items():
        row = {"set": name, "words": n, "on_slop_list": k, "share": k / n if n else np.nan}
        for base, suffix in (("candidate words", "candidates"), ("rare candidate words", "rare")):
            base_n, base_k = counts[base]
            base_share = base_k / base_n if base_n else np.nan
            row[f"enrichment_vs_{suffix}"] = row["share"] / base_share if base_share else np.nan
            row[f"p_vs_{suffix}"] = float(hypergeom.sf(k - 1, base_n, base_k, n)) if n and n <= base_n else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("set")
