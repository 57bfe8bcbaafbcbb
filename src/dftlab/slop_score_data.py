"""The slop-score data shipped with dftlab: its word lists, prompts, model outputs and published leaderboard figures.

slop-score (Paech 2025, https://github.com/sam-paech/slop-score) ranks models by how often their writing uses
words and phrases from lists of words overused by language models. `assets/slop_score/` holds a vendored part of it
(see PROVENANCE.md there: source commit, MIT licence, what was kept and cut):

- `slop_score_models()`: the models whose outputs ship here; `load_slop_score_outputs(model)`: their 300 outputs
  each (150 creative-writing prompts, then 150 essay prompts), in the order the leaderboard joins them;
  `slop_score_run_info(model)`: how they were sampled;
- `published_slop_figures()`: the leaderboard rows of those models and of the human baseline, and
  `published_slop_hits(name)`: a row's most frequent list hits;
- `slop_score_prompts()`: the 300 prompts, to sample another model on the same prompts;
- `slop_word_lists()`: the raw word, bigram and trigram lists, as slop-score ships them.

This module only loads data; the measurement is `dftlab.metrics.slop_list_rate`. The two are apart because the
data is a dataset of its own (like `dftlab.corpus`), useful without the metric (reading the outputs, the published
table), while the metric module holds measurement rules only, as every module of `dftlab.metrics` does.

Every file is checked against `SHA256SUMS` before it is read: a missing or altered file raises
`dftlab.storage.CorruptFileError` naming the file and the command that restores it.
"""
from __future__ import annotations

import json
import lzma
from pathlib import Path

import pandas as pd

from dftlab.storage import CorruptFileError, sha256_of_file

SLOP_SCORE_DIR = Path(__file__).resolve().parent / "assets" / "slop_score"
# Prompts 0-149 are creative-writing prompts and 150-299 essay prompts (slop-score's README: "150 creative
# writing outputs and 150 essay outputs"; every prompt from 150 on asks for an essay from a summary of it, and no
# earlier prompt mentions an essay or a summary).
CREATIVE_PROMPTS = 150
HUMAN_BASELINE = "human-baseline"
LIST_FILES = {"words": "slop_list.json.xz", "bigrams": "slop_list_bigrams.json.xz",
              "trigrams": "slop_list_trigrams.json.xz"}
# leaderboard metric -> column of published_slop_figures(); the first two are what slop_list_rate returns.
PUBLISHED_COLUMNS = {"slop_list_matches_per_1k_words": "slop_words_per_1k",
                     "slop_trigram_matches_per_1k_words": "slop_trigrams_per_1k",
                     "ngram_repetition_score": "ngram_repetition_score",
                     "not_x_but_y_per_1k_chars": "not_x_but_y_per_1k_chars",
                     "vocab_level": "vocab_level", "avg_sentence_length": "avg_sentence_length",
                     "avg_paragraph_length": "avg_paragraph_length", "dialogue_frequency": "dialogue_frequency"}


def _restore_hint(folder: Path) -> str:
    return (f"Restore the folder {folder}: in a clone of dftlab run `git checkout -- src/dftlab/assets/slop_score`, "
            f"or reinstall dftlab, or rebuild it with `python tools/vendor_slop_score.py <slop-score checkout>` "
            f"(https://github.com/sam-paech/slop-score).")


def _checksums(folder: Path) -> dict[str, str]:
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise CorruptFileError(f"{sums} is missing, so the slop-score files cannot be verified. "
                               f"{_restore_hint(folder)}")
    recorded = {}
    for line in sums.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise CorruptFileError(f"{sums} has a malformed line {line!r}. {_restore_hint(folder)}")
        recorded[name] = digest
    return recorded


def vendored_checksums() -> dict[str, str]:
    """The sha256 of every vendored file, as SHA256SUMS records it: {file name: hex digest}. A result computed from
    the vendored data records these, so a changed file changes the result's key."""
    return _checksums(SLOP_SCORE_DIR)


def _read_json(name: str):
    """The JSON document in the vendored file `name` (an .xz file), after checking its sha256."""
    folder = SLOP_SCORE_DIR  # read at call time, so tests can point it at a copy
    expected = _checksums(folder).get(name)
    path = folder / name
    if expected is None:
        raise CorruptFileError(f"{name} is not listed in {folder / 'SHA256SUMS'}. {_restore_hint(folder)}")
    if not path.is_file():
        raise CorruptFileError(f"{path} is missing. {_restore_hint(folder)}")
    actual = sha256_of_file(path)
    if actual != expected:
        raise CorruptFileError(f"{path} has been altered or truncated (sha256 {actual[:12]}..., SHA256SUMS says "
                               f"{expected[:12]}...). {_restore_hint(folder)}")
    with lzma.open(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def slop_word_lists() -> dict[str, list[str]]:
    """slop-score's lists as it ships them: {"words", "bigrams", "trigrams"} -> the entries, in file order.

    Entries are raw strings; `dftlab.metrics.slop_list_rate` documents how slop-score reads them. The bigram list is
    not used by the slop score; it is here for completeness.
    """
    return {kind: [str(item[0]) for item in _read_json(name) if item]
            for kind, name in LIST_FILES.items()}


def slop_score_models() -> list[str]:
    """The names of the models whose outputs ship here (slop-score's results file names), sorted."""
    return sorted(name[len("outputs/"):-len(".json.xz")] for name in _checksums(SLOP_SCORE_DIR)
                  if name.startswith("outputs/") and name.endswith(".json.xz"))


def _check_model(model) -> str:
    models = slop_score_models()
    if model not in models:
        raise ValueError(f"model must be one of the vendored slop-score models {models}, got {model!r}. "
                         f"The leaderboard also lists {HUMAN_BASELINE!r}, whose texts are not published; its "
                         f"figures are in published_slop_figures().")
    return model


def _category(prompt_index: int) -> str:
    return "creative" if prompt_index < CREATIVE_PROMPTS else "essay"


def slop_score_prompts() -> list[dict]:
    """The 300 prompts of slop-score: dicts with prompt_index, category ("creative" or "essay") and prompt."""
    return [{"prompt_index": index, "category": _category(index), "prompt": prompt}
            for index, prompt in enumerate(_read_json("prompts.json.xz"))]


def load_slop_score_outputs(model: str) -> list[dict]:
    """One vendored model's 300 outputs, in slop-score's file order (the order its leaderboard joins them in).

    Each dict holds prompt_index, category ("creative" for prompts 0-149, "essay" for 150-299), prompt, output
    (the model's text; "" where generation failed) and failed (True where the request failed upstream).
    The leaderboard measured only outputs longer than 300 characters; `dftlab.metrics.slop_list_rate` drops the
    others the same way, so `slop_list_rate([o["output"] for o in load_slop_score_outputs(model)])` gives the
    published figures.
    """
    run = _read_json(f"outputs/{_check_model(model)}.json.xz")
    prompts = _read_json("prompts.json.xz")
    return [{"prompt_index": s["prompt_index"], "category": _category(s["prompt_index"]),
             "prompt": prompts[s["prompt_index"]], "output": s["output"], "failed": s["failed"]}
            for s in run["samples"]]


def slop_score_run_info(model: str) -> dict:
    """How one vendored model's outputs were made: model (slop-score's model id), test_model, params (sampling
    parameters such as temperature and min_p), started_at and completed_at."""
    run = _read_json(f"outputs/{_check_model(model)}.json.xz")
    return {key: value for key, value in run.items() if key != "samples"}


def published_slop_figures() -> pd.DataFrame:
    """slop-score's published leaderboard rows for the vendored models and the human baseline.

    Index: name (the model's name in `slop_score_models()`, or "human-baseline"). Columns: model (slop-score's
    model id), samples (outputs measured; for the human baseline, text files), total_chars, words (tokens counted),
    slop_words_per_1k and slop_trigrams_per_1k (the leaderboard's slop_list_matches_per_1k_words and slop_trigram_matches_per_1k_words,
    which `dftlab.metrics.slop_list_rate` reproduces), then the leaderboard's other metrics under their own names
    (ngram_repetition_score, not_x_but_y_per_1k_chars, mattr_500, vocab_level, avg_sentence_length,
    avg_paragraph_length, dialogue_frequency). Rows are sorted by slop_words_per_1k, lowest first, as the leaderboard.
    """
    rows = []
    for row in _read_json("leaderboard.json.xz")["rows"]:
        metrics = row["metrics"]
        diversity = metrics.get("lexical_diversity", {})
        rows.append({"name": row["name"], "model": row["model"], "samples": row["sample_count"],
                     "total_chars": row["total_chars"], "words": diversity.get("total_words"),
                     **{column: metrics.get(key) for key, column in PUBLISHED_COLUMNS.items()},
                     "mattr_500": diversity.get("mattr_500")})
    return pd.DataFrame(rows).set_index("name").sort_values("slop_words_per_1k")


def published_slop_hits(name: str) -> dict[str, list[tuple[str, int]]]:
    """The leaderboard's most frequent list hits of one row: {"words": [(word, count), ...], "trigrams": [...]}
    (at most 50 each, as slop-score publishes them). `name` is a vendored model or "human-baseline"."""
    rows = {row["name"]: row for row in _read_json("leaderboard.json.xz")["rows"]}
    if name not in rows:
        raise ValueError(f"name must be one of {sorted(rows)}, got {name!r}.")
    return {"words": [(str(w), int(c)) for w, c in rows[name].get("slop_word_hits", [])],
            "trigrams": [(str(t), int(c)) for t, c in rows[name].get("slop_trigram_hits", [])]}
