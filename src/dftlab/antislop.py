"""Did anti-slop tuning fix the writing, or ban the words?

slop-score's vendored outputs (`dftlab.slop_score_data`) hold a real before/after pair: google/gemma-3-27b-it, and
sam-paech/gemma-3-27b-it-antislop, the same model after FTPO, a preference tuning against over-used words and
phrases (Paech et al. 2025, the Antislop paper, arXiv 2510.15061), each answering the same 300 prompts at the same
decoding. The tuning aimed at slop-score's own lists, so a lower slop-list rate shows that it worked on the words it
was told about, not that the writing became less formulaic. This module measures the pair on what the tuning did
*not* target:

- habit words the course discovers itself (`metrics.formulaic.formulaic_words`) on one half of the prompts and
  counts on the other half: the original model's habits off slop-score's list, its habits on the list, and the
  anti-slop model's own new habits (words it over-uses that the original did not);
- the variety of word pairs (distinct-2 of each answer's first 1,000 words, averaged over answers);
- openings: the share of answers that start with the commonest first three words, and the share in which three
  sentences in a row start with the same word (`same_opener_run_rate`);
- MMD between the two models' answers (MiniLM embeddings), tested by swapping the two answers to the same prompt.
- a guard against broken text: the share of answers with a negative contraction cut after its apostrophe ("It
  wasn’ a vision"), added after reading the answers (`ADDED_AFTER_READING` says so and why).

Every difference (anti-slop minus original) gets a 95% interval from a paired bootstrap over prompts. The expected
outcome (`EXPECTED_OUTCOME`) was written down and committed before the comparison was first computed.

    python -m dftlab.antislop     # compute and write results/antislop-comparison-<hash>.json (a few minutes)
"""
from __future__ import annotations

import re
import sys
import time
from collections import Counter

import numpy as np
import pandas as pd

from dftlab.storage import (build_result_command, config_digest, read_result_for_config, reading_results_dir,
                            results_dir, write_json_with_hash)
from dftlab.validation import check_int

ORIGINAL = "gemma-3-27b-it"
ANTISLOP = "gemma-3-27b-it-antislop"
MIN_CHARS_EXCLUSIVE = 300  # the leaderboard measures only answers longer than this
DISTINCT_WORDS = 1000  # distinct-2 over each answer's first 1,000 words, so length cannot decide it
OPENING_WORDS = 3
# A negative contraction cut after its apostrophe ("It wasn’ a vision", "He hadn’ a wanted this"): the stem of a
# negative contraction, n, an apostrophe, and no t. Added after reading the answers (see ADDED_AFTER_READING).
BROKEN_CONTRACTION = re.compile(r"\b(?:is|was|were|are|ai|do|does|did|has|have|had|ca|wo|could|would|should|might|must"
                                r"|need)n[’'](?!t)", re.IGNORECASE)
ADDED_AFTER_READING = (
    "The share of answers with a broken contraction was not in the expected outcome: it was added after the first "
    "computation, when the tuned model's new habit words included 'wasn' (wordfreq keeps 'wasn't' whole, so 'wasn' "
    "is a contraction cut after its apostrophe) and reading its answers showed 'It wasn’ a vision'.")
MEASURE_COLUMNS = ("measure", "original", "antislop", "difference", "ci_low", "ci_high", "targeted", "prompts", "note")
WORD_COLUMNS = ("word", "habit_of", "on_slop_list", "original_per_1k", "antislop_per_1k")
HABIT_RULE = {"max_english_frequency": 1e-5, "min_group_share": 0.1, "min_ratio": 10.0}

EXPECTED_OUTCOME = (
    "Written before the comparison was first computed. FTPO lowers the probability of the listed words and trigrams "
    "where the model was about to write one, and holds the rest of the distribution close to the original. So we "
    "expect: (1) the slop-list rates fall far (the targeted measure; the leaderboard already shows it); (2) the "
    "original model's habit words that are not on the list change little, since the training did not push on them; "
    "(3) new rare words rise in the banned words' place, because the probability taken from a banned word goes to "
    "its nearest alternatives, so the anti-slop model has habit words of its own that the original did not; (4) the "
    "measures of structure (distinct-2, the commonest opening's share, runs of sentences that open with the same "
    "word) change little; (5) MMD finds the two models' answers different, with a small MMD^2. If (2) and (4) hold, "
    "the tuning banned the words rather than fixed the writing; if the off-list habits fell too and the structure "
    "grew more varied, it did more than ban.")


def paired_answers() -> pd.DataFrame:
    """The prompts both models answered (not failed, longer than 300 characters, as the leaderboard measures them),
    one row each: prompt_index, category, original, antislop (the two answers), half (0 for the 1st, 3rd, 5th, ...
    prompt in order: the discovery half; 1 for the others: the held-out half)."""
    from dftlab.slop_score_data import load_slop_score_outputs

    answers = {}
    for name in (ORIGINAL, ANTISLOP):
        answers[name] = {o["prompt_index"]: o for o in load_slop_score_outputs(name)
                         if not o["failed"] and len(o["output"]) > MIN_CHARS_EXCLUSIVE}
    shared = sorted(set(answers[ORIGINAL]) & set(answers[ANTISLOP]))
    rows = [{"prompt_index": i, "category": answers[ORIGINAL][i]["category"],
             "original": answers[ORIGINAL][i]["output"], "antislop": answers[ANTISLOP][i]["output"],
             "half": position % 2} for position, i in enumerate(shared)]
    return pd.DataFrame(rows)


def opening(text: str, n_words: int = OPENING_WORDS) -> str:
    """The first `n_words` words of a text, lower case (`metrics.words.words`), joined by spaces."""
    from dftlab.metrics.words import words

    return " ".join(words(text)[:n_words])


def distinct_2_of_opening_words(text: str, n_words: int = DISTINCT_WORDS) -> float:
    """distinct-2 (distinct word pairs / word pairs) of the text's first `n_words` whitespace tokens.

    Counted in whitespace tokens, case and punctuation kept (`metrics.words.whitespace_tokens`), not the course's
    words: the committed comparison (results/antislop-comparison-<hash>.json) was measured so, and its file name
    does not change with the unit, so the unit stays what it was to keep that number what this code computes."""
    from dftlab.metrics.text import distinct_n
    from dftlab.metrics.words import whitespace_tokens

    return distinct_n([" ".join(whitespace_tokens(text)[:n_words])], n=2, split_words=whitespace_tokens)


def broken_contractions(text: str) -> int:
    """How many negative contractions in `text` stop after the apostrophe ("wasn’ a", "hadn’ a"; `BROKEN_CONTRACTION`).
    A fluent writer writes none; each one is broken text."""
    return len(BROKEN_CONTRACTION.findall(text))


def habit_words(texts, groups) -> list[str]:
    """The course's habit words of `texts` (`formulaic_words` with `HABIT_RULE`, no bootstrap seed but 0)."""
    from dftlab.metrics.formulaic import formulaic_words

    return formulaic_words(list(texts), list(groups), **HABIT_RULE)["word"].tolist()


def _word_counts(texts, chosen: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """[texts, words] counts of `chosen`, and each text's word count, in the words the habit rule found them in
    (`metrics.words.words` with possessives merged, as `word_overuse` counts them), so a word is
    counted on the held-out half exactly as it was found on the discovery half."""
    from dftlab.metrics.words import words

    tokens = [Counter(words(text, merge_possessives=True)) for text in texts]
    counts = np.array([[t[word] for word in chosen] for t in tokens], dtype=float).reshape(len(texts), -1)
    return counts, np.array([sum(t.values()) for t in tokens], dtype=float)


def _ratio_per_text(numerator: np.ndarray, denominator: np.ndarray):
    """A rate per 1,000 words, as a function of bootstrap weights over texts."""
    return lambda weights: float(weights @ numerator) / max(float(weights @ denominator), 1.0) * 1000


def _mean_per_text(values: np.ndarray):
    return lambda weights: float(weights @ values) / float(weights.sum())


def _paired_row(name, targeted, original_stat, antislop_stat, weights, note) -> dict:
    observed_original, observed_antislop = original_stat(np.ones(weights.shape[1])), antislop_stat(np.ones(weights.shape[1]))
    differences = np.array([antislop_stat(w) - original_stat(w) for w in weights])
    low, high = np.quantile(differences, [0.025, 0.975])
    return {"measure": name, "targeted": targeted, "original": observed_original, "antislop": observed_antislop,
            "difference": observed_antislop - observed_original, "ci_low": float(low), "ci_high": float(high),
            "prompts": int(weights.shape[1]), "note": note}


def comparison_config(bootstrap: int = 2000, seed: int = 0, embedding: str = "minilm") -> dict:
    """Every setting that decides the comparison; its hash names the results file."""
    from dftlab.slop_score_data import vendored_checksums

    checksums = vendored_checksums()
    return {"original": ORIGINAL, "antislop": ANTISLOP, "bootstrap": check_int(bootstrap, "bootstrap"),
            "seed": check_int(seed, "seed", minimum=0), "embedding": embedding, "habit_rule": HABIT_RULE,
            "distinct_words": DISTINCT_WORDS, "opening_words": OPENING_WORDS,
            "data": {name: checksums[name] for name in (f"outputs/{ORIGINAL}.json.xz",
                                                         f"outputs/{ANTISLOP}.json.xz", "slop_list.json.xz",
                                                         "slop_list_trigrams.json.xz", "prompts.json.xz")},
            "expected_outcome": EXPECTED_OUTCOME, "added_after_reading": ADDED_AFTER_READING}


def comparison_path(config: dict | None = None, folder=None):
    config = comparison_config() if config is None else config
    name = f"antislop-comparison-{config_digest(config)}.json"
    return (reading_results_dir(name) if folder is None else folder) / name


def compute_comparison(config: dict | None = None) -> dict:
    """Measure the pair (see the module's docstring). Returns a JSON-ready dict: config, measures (one row per
    measure: measure, targeted, original, antislop, difference, ci_low, ci_high, prompts, note), words (the habit
    words of either model with their held-out rates and whether slop-score lists them), mmd, seconds."""
    from dftlab.metrics.formulaic import same_opener_run_rate, slop_list_words
    from dftlab.metrics.two_sample import paired_mmd, sentence_embeddings

    config = comparison_config() if config is None else config
    start = time.time()
    pairs = paired_answers()
    rng = np.random.default_rng(config["seed"])
    prompts = len(pairs)
    all_weights = rng.multinomial(prompts, np.full(prompts, 1 / prompts), size=config["bootstrap"]).astype(float)
    held = pairs[pairs["half"] == 1].reset_index(drop=True)
    found = pairs[pairs["half"] == 0]
    held_weights = rng.multinomial(len(held), np.full(len(held), 1 / len(held)),
                                   size=config["bootstrap"]).astype(float)
    listed = slop_list_words()

    rows = []
    # 1. what the tuning targeted: slop-score's word list, counted on every prompt
    from dftlab.metrics.slop_score import slop_list_word_hits

    stats = {}
    for model in ("original", "antislop"):
        hits, lengths = np.array(slop_list_word_hits(pairs[model].tolist()), dtype=float).T
        stats[model] = _ratio_per_text(hits, lengths)
    rows.append(_paired_row("slop-score's list words per 1,000 words", True, stats["original"], stats["antislop"],
                            all_weights, "what the tuning was trained against; every prompt"))

    # 2. habit words the course discovers on the discovery half, counted on the held-out half
    discovered = {model: habit_words(found[model], found["prompt_index"]) for model in ("original", "antislop")}
    original_off = [w for w in discovered["original"] if w not in listed]
    original_on = [w for w in discovered["original"] if w in listed]
    new_habits = [w for w in discovered["antislop"] if w not in discovered["original"]]
    for name, chosen, targeted, note in [
            ("the original's habit words on the list, per 1,000 words", original_on, True,
             f"{len(original_on)} words found on the discovery half; counted on the held-out half"),
            ("the original's habit words off the list, per 1,000 words", original_off, False,
             f"{len(original_off)} words found on the discovery half; counted on the held-out half"),
            ("the anti-slop model's new habit words, per 1,000 words", new_habits, False,
             f"{len(new_habits)} words it over-uses on the discovery half that the original does not; "
             f"counted on the held-out half")]:
        per_model = {}
        for model in ("original", "antislop"):
            counts, lengths = _word_counts(held[model], chosen)
            per_model[model] = _ratio_per_text(counts.sum(axis=1), lengths)
        rows.append(_paired_row(name, targeted, per_model["original"], per_model["antislop"], held_weights, note))

    # 3. structure: variety of word pairs, openings, runs of sentence openers
    for name, measure, note in [
            ("distinct-2 of each answer's first 1,000 words", distinct_2_of_opening_words,
             "mean over answers; higher is more varied"),
            ("three sentences in a row open with the same word", lambda text: same_opener_run_rate([text]),
             "share of answers")]:
        per_model = {model: _mean_per_text(np.array([measure(text) for text in pairs[model]], dtype=float))
                     for model in ("original", "antislop")}
        rows.append(_paired_row(name, False, per_model["original"], per_model["antislop"], all_weights, note))
    per_model, commonest = {}, {}
    for model in ("original", "antislop"):
        openings = [opening(text) for text in pairs[model]]
        commonest[model] = Counter(openings).most_common(1)[0][0]
        per_model[model] = _mean_per_text(np.array([o == commonest[model] for o in openings], dtype=float))
    rows.append(_paired_row("share of answers that open with the model's commonest first three words (often a title)",
                            False,
                            per_model["original"], per_model["antislop"], all_weights,
                            f"original: '{commonest['original']}'; anti-slop: '{commonest['antislop']}'"))

    # a guard against broken text, added after reading the answers (ADDED_AFTER_READING)
    per_model = {model: _mean_per_text(np.array([broken_contractions(text) > 0 for text in pairs[model]], dtype=float))
                 for model in ("original", "antislop")}
    rows.append(_paired_row("answers with a broken contraction ('wasn’ a')", False, per_model["original"],
                            per_model["antislop"], all_weights,
                            "share of answers; a guard against broken text, added after reading the answers"))

    # 4. MMD between the two models' answers to the same prompts
    embeddings = {model: sentence_embeddings(pairs[model].tolist(), method=config["embedding"])
                  for model in ("original", "antislop")}
    mmd = paired_mmd(embeddings["original"], embeddings["antislop"], seed=config["seed"])

    # the words themselves, with their held-out rates in each model
    words = []
    every = list(dict.fromkeys(discovered["original"] + discovered["antislop"]))
    counts = {model: _word_counts(held[model], every) for model in ("original", "antislop")}
    for i, word in enumerate(every):
        words.append({"word": word, "on_slop_list": word in listed,
                      "habit_of": " and ".join(label for label, model in (("original", "original"),
                                                                           ("anti-slop", "antislop"))
                                               if word in discovered[model]),
                      "original_per_1k": float(counts["original"][0][:, i].sum() / counts["original"][1].sum() * 1000),
                      "antislop_per_1k": float(counts["antislop"][0][:, i].sum() / counts["antislop"][1].sum() * 1000)})
    return {"config": config, "measures": rows, "words": words, "mmd": mmd,
            "halves": {"discovery": int(len(found)), "held_out": int(len(held))},
            "seconds": round(time.time() - start, 1)}


def write_comparison(folder=None) -> str:
    config = comparison_config()
    payload = compute_comparison(config)
    path = comparison_path(config, results_dir() if folder is None else folder)  # written to the user folder
    write_json_with_hash(path, payload)
    return str(path)


def load_comparison(folder=None) -> dict:
    """The committed comparison for today's settings and data, as tables: measures and words (DataFrames), mmd,
    halves, config, seconds. A file for other settings or data is never read: it would be another comparison."""
    config = comparison_config()
    payload = read_result_for_config(comparison_path(config, folder), config, "anti-slop comparison results",
                                     "`python -m dftlab.antislop` (a few minutes on a CPU)")
    measures = pd.DataFrame(payload["measures"])[list(MEASURE_COLUMNS)]
    words = pd.DataFrame(payload["words"])[list(WORD_COLUMNS)]
    return {**payload, "measures": measures, "words": words}


def main(argv=None) -> int:
    return build_result_command(argv, "python -m dftlab.antislop", __doc__.split("\n\n")[0], write_comparison)


if __name__ == "__main__":
    sys.exit(main())
