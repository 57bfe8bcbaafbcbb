"""SmolLM2 on slop-score's scale: its answers to slop-score's prompts, and the leaderboard table they join.

slop-score (Paech 2025, https://github.com/sam-paech/slop-score; vendored data in `dftlab.slop_score_data`) ranks models
by how many words and trigrams of its lists of LLM-overused language they write per 1,000 words. This module samples
SmolLM2-135M-Instruct (`load_model("smollm2-135m-instruct")`) on a subset of the same prompts, at the leaderboard's
decoding and at T = 1, and builds the committed sample set:

    python -m dftlab.study.slop_samples            # the full set (100 prompts x 1 response x 2 decodings, 256 new tokens)
    python -m dftlab.study.slop_samples --quick    # 4 prompts x 2 decodings of 48 new tokens, to try the command

The subset: every third prompt (prompt_index 0, 3, ..., 297), which is 50 of slop-score's 150 creative-writing
prompts and 50 of its 150 essay prompts, spread evenly over each list rather than taken from its start (the lists
are in no documented order, so an even spread guards against one run of similar prompts). 100 prompts keep the
build near an hour on two shared CPU cores; one response per prompt, as slop-score samples.

The decodings: slop-score's (temperature 0.7, min-p 0.1; top-k and top-p off), and plain sampling (T = 1). Each
response stops at the end of the assistant's turn or after `max_new_tokens` = 256 tokens (about 1,000 characters
of English, far above slop-score's 300-character filter, so only answers that end early on their own are dropped;
the leaderboard's models wrote up to 8,096 tokens, so SmolLM2's rate covers the opening of its answers). The prompt
is the user's turn of SmolLM2's chat template, verbatim (slop-score's records do not say which template it used).

As `dftlab.chat_samples` does: batch `b` of decoding `d` re-seeds torch with `seed*1000 + d*100 + b` before
sampling, so the set is deterministic on a given machine and software stack, and an interrupted build resumes from
its finished batches (kept in the user cache) with the same result as an uninterrupted one.

`leaderboard_table()` puts SmolLM2's two decodings next to the vendored models and the human baseline, each rate
with a bootstrap interval over prompts where the texts are available.
"""
from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dftlab.chat_samples import (CHAT_MODEL, REAL_MODEL_DECODING, SEED, batch_seed, read_sample_set, sample_set_command,
                                 sample_set_hash)
from dftlab.storage import read_json_with_hash, reading_results_dir, results_dir, write_json_with_hash
from dftlab.validation import check_int, check_number

# slop-score's prompts as vendored in dftlab.slop_score_data (see assets/slop_score/PROVENANCE.md).
PROMPTS_SOURCE = ("slop-score (https://github.com/sam-paech/slop-score) data/prompts.json, commit "
                  "289264ab2a0df1358ef81ced3c259610ea709514, git blob 27f59e295193; vendored as "
                  "dftlab/assets/slop_score/prompts.json.xz")
SUBSET_STEP = 3  # every third prompt: 50 creative (0-147) and 50 essay (150-297)
LEADERBOARD_DECODING = "T=0.7, min-p 0.1"
DECODINGS = {LEADERBOARD_DECODING: {"temperature": 0.7, "top_p": 1.0, "min_p": 0.1},
             "T=1": {"temperature": 1.0, "top_p": 1.0}}
MAX_NEW_TOKENS = 256
BOOTSTRAP = 2000  # resamples of the prompts for the leaderboard's intervals
SMOLLM2 = "SmolLM2-135M-Instruct"


def subset_prompt_indices(quick: bool = False) -> list[int]:
    """The slop-score prompts sampled: every third (0, 3, ..., 297); --quick: the first two creative and the first
    two essay prompts of that subset (0, 3, 150, 153)."""
    indices = list(range(0, 300, SUBSET_STEP))
    return [0, 3, 150, 153] if quick else indices


def _prompts_by_index() -> dict[int, dict]:
    from dftlab.slop_score_data import slop_score_prompts

    return {p["prompt_index"]: p for p in slop_score_prompts()}


def slop_set_config(quick: bool = False) -> dict:
    """Every setting that determines the sample set (its hash names the file and the resume cache). The prompts
    enter through their indices and the sha256 of their texts, so a changed prompt file changes the hash."""
    indices = subset_prompt_indices(quick)
    by_index = _prompts_by_index()
    texts = [by_index[i]["prompt"] for i in indices]
    return {"name": "quick" if quick else "full", "model": CHAT_MODEL, "seed": SEED,
            "prompts_source": PROMPTS_SOURCE,
            "subset": ("prompts 0, 3, 150, 153 (two creative, two essay)" if quick else
                       "every third prompt (prompt_index % 3 == 0): 50 creative + 50 essay"),
            "prompt_indices": indices,
            "prompts_sha256": hashlib.sha256(json.dumps(texts).encode()).hexdigest(),
            "responses_per_prompt": 1, "max_new_tokens": 48 if quick else MAX_NEW_TOKENS,
            "prompts_per_batch": 2 if quick else 25, "decodings": DECODINGS}


def default_slop_set_path(quick: bool = False) -> Path:
    config = slop_set_config(quick)
    prefix = "slop-samples-quick-" if quick else "slop-samples-"
    name = f"{prefix}{sample_set_hash(config)}.json"
    return reading_results_dir(name) / name  # where it is read; a build writes to results_dir()


def _command(quick: bool) -> str:
    return "python -m dftlab.study.slop_samples" + (" --quick" if quick else "")


def build_slop_samples(quick: bool = False, out: Path | None = None, log=print, generate=None) -> Path:
    """Sample every batch (resuming from finished ones in the user cache), then write the set atomically.

    `generate` (default `dftlab.chat_samples.generate_responses` on the loaded model) is
    `generate(prompts, seed=..., max_new_tokens=..., **decoding) -> rows`; tests pass a stand-in."""
    import torch
    import transformers

    from dftlab import __version__
    from dftlab.models import GGUF_MODELS, cache_dir

    config = slop_set_config(quick)
    digest = sample_set_hash(config)
    path = Path(out) if out is not None else results_dir() / default_slop_set_path(quick).name
    runs = cache_dir() / f"slop-samples-runs-{config['name']}-{digest}"
    if generate is None:
        from dftlab.chat_samples import generate_responses
        from dftlab.models import load_model

        model, tokenizer = load_model(config["model"])

        def generate(prompts, **kwargs):
            return generate_responses(model, tokenizer, prompts, config["responses_per_prompt"], **kwargs)
    by_index = _prompts_by_index()
    indices, per_batch = config["prompt_indices"], config["prompts_per_batch"]
    batches = [indices[start:start + per_batch] for start in range(0, len(indices), per_batch)]
    responses, started, sampled_seconds = [], time.time(), 0.0
    for decoding_index, (decoding, settings) in enumerate(config["decodings"].items()):
        for batch_index, batch_indices in enumerate(batches):
            run_file = runs / f"{decoding_index}-{batch_index}.json"
            if run_file.exists():
                run = read_json_with_hash(run_file)
                rows, seconds = run["rows"], run["seconds"]
            else:
                batch_started = time.time()
                rows = generate([by_index[i]["prompt"] for i in batch_indices],
                                max_new_tokens=config["max_new_tokens"],
                                seed=batch_seed(config["seed"], decoding_index, batch_index), **settings)
                seconds = time.time() - batch_started
                write_json_with_hash(run_file, {"rows": rows, "seconds": seconds})
                log(f"{decoding}: batch {batch_index + 1}/{len(batches)} in {seconds:.0f} s")
            sampled_seconds += seconds
            if len(rows) != len(batch_indices) * config["responses_per_prompt"]:
                raise RuntimeError(f"{run_file} holds {len(rows)} rows for {len(batch_indices)} prompts; delete it "
                                   f"and rerun `{_command(quick)}`.")
            for row_index, row in enumerate(rows):
                prompt_index = batch_indices[row_index // config["responses_per_prompt"]]
                responses.append({"decoding": decoding, "prompt_index": prompt_index,
                                  "category": by_index[prompt_index]["category"], **row})
    spec = GGUF_MODELS[config["model"]]
    provenance = {
        "command": _command(quick), "model": config["model"],
        "weights": f"{spec.requirement}, file {spec.file} (Q4_1), dequantised to float32",
        "model_sha256": spec.sha256, "prompts_source": PROMPTS_SOURCE, "dftlab": __version__,
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "sampler": "transformers generate, left padding, top_k=0, the decoding's temperature, top_p and min_p; "
                   "torch.manual_seed(seed*1000 + decoding*100 + batch) before each batch",
        "sampling_seconds": round(sampled_seconds, 1),
    }
    payload = {"config": config, "config_hash": digest, "provenance": provenance, "responses": responses}
    write_json_with_hash(path, payload)
    log(f"wrote {len(responses)} responses to {path} (sampling took {sampled_seconds:.0f} s over all batches, "
        f"{time.time() - started:.0f} s this run)")
    return path


def load_slop_samples(path: Path | None = None, quick: bool = False) -> dict:
    """The committed sample set: {"config", "config_hash", "provenance", "responses": [{"decoding", "prompt_index",
    "category", "prompt", "response", "finished"}, ...]}. A missing file, or one built with other settings, is
    refused with the command that rebuilds it."""
    path = default_slop_set_path(quick) if path is None else Path(path)
    return read_sample_set(path, slop_set_config(quick), "slop-score sample set of SmolLM2",
                           "other settings, prompts or another model", _command(quick))


def slop_responses_of(sample_set: dict, decoding: str = LEADERBOARD_DECODING) -> list[str]:
    """The response texts of one decoding, in prompt order."""
    if decoding not in sample_set["config"]["decodings"]:
        raise ValueError(f"decoding must be one of {list(sample_set['config']['decodings'])}, got {decoding!r}.")
    return [row["response"] for row in sample_set["responses"] if row["decoding"] == decoding]


# --- the leaderboard table -------------------------------------------------------------------------------------

def _per_text_counts(texts) -> np.ndarray:
    """(words, slop-word hits, slop-trigram hits) of each text as the leaderboard counts them (slop_list_rate's
    tokens and list entries, read as published); texts it drops (300 characters or fewer) count zero."""
    from dftlab.metrics.slop_score import MIN_CHARS_EXCLUSIVE, slop_list_entries, slop_score_tokens
    from dftlab.slop_score_data import slop_word_lists

    lists = slop_word_lists()
    listed = slop_list_entries(lists["words"], corrected=False)
    trigrams = {tuple(entry.split(" ")) for entry in slop_list_entries(lists["trigrams"], corrected=False)}
    counts = np.zeros((len(texts), 3))
    for i, text in enumerate(texts):
        if len(text.encode("utf-16-le", "surrogatepass")) // 2 <= MIN_CHARS_EXCLUSIVE:
            continue
        tokens = slop_score_tokens(text)
        counts[i] = (len(tokens), sum(token in listed for token in tokens),
                     sum(window in trigrams for window in zip(tokens, tokens[1:], tokens[2:])))
    return counts


def rate_intervals(texts, bootstrap: int = BOOTSTRAP, confidence: float = 0.95, seed: int = 0) -> dict:
    """slop_list_rate of `texts` (one per prompt), with percentile intervals over `bootstrap` resamples of the
    prompts: each resample draws as many texts as there are, with replacement, and recomputes the joined rates
    (hits over words; a trigram running from one text into the next, which the joined point estimate can count,
    is not counted in a resample, a difference of at most one hit per text boundary).

    Returns slop_list_rate's dict plus slop_words_low/high and slop_trigrams_low/high."""
    from dftlab.metrics.slop_score import slop_list_rate

    bootstrap = check_int(bootstrap, "bootstrap")
    confidence = check_number(confidence, "confidence", 0.0, 1.0, low_open=True, high_open=True)
    seed = check_int(seed, "seed", minimum=0)
    texts = list(texts)
    point = slop_list_rate(texts)
    counts = _per_text_counts(texts)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(len(texts), np.full(len(texts), 1 / len(texts)), size=bootstrap).astype(float)
    totals = weights @ counts
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = totals[:, 1:] / totals[:, :1] * 1000
    alpha = (1 - confidence) / 2
    low, high = np.nanquantile(rates, [alpha, 1 - alpha], axis=0)
    return {**point, "slop_words_low": float(low[0]), "slop_words_high": float(high[0]),
            "slop_trigrams_low": float(low[1]), "slop_trigrams_high": float(high[1])}


def leaderboard_table(sample_set: dict | None = None, *, bootstrap: int = BOOTSTRAP, confidence: float = 0.95,
                      seed: int = 0) -> pd.DataFrame:
    """slop-score's two list rates for every vendored model, SmolLM2 at each decoding, and the human baseline.

    Index: name ("SmolLM2-135M-Instruct, T=0.7, min-p 0.1", the vendored models' names, "human-baseline"). Columns:
    source ("dftlab sample", "slop-score outputs" or "published figures"), prompts (texts measured, before the
    300-character filter), texts_used (after it), words, slop_words_per_1k with slop_words_low and slop_words_high,
    slop_trigrams_per_1k with slop_trigrams_low and slop_trigrams_high (a `confidence` percentile interval over
    `bootstrap` resamples of the prompts, seeded by `seed`; see `rate_intervals`), and published_words_per_1k and
    published_trigrams_per_1k (slop-score's own figures; the vendored models' rates here equal them).

    The human baseline's texts (83 files of fiction and essays, 17.2M words) are not published, so its row holds
    the published figures with no interval. Rows are sorted by slop_words_per_1k, lowest first, as the leaderboard.
    `sample_set` defaults to `load_slop_samples()`.

    Read with care: SmolLM2 answered 100 of the 300 prompts with at most 256 new tokens, the other models all 300
    (some failed) at up to 8,096; its interval is wider for its fewer words. gemma-3-27b-it-antislop was trained to
    avoid these very lists, so its low rate is partly circular.
    """
    from dftlab.slop_score_data import (HUMAN_BASELINE, load_slop_score_outputs, published_slop_figures,
                                   slop_score_models)

    sample_set = load_slop_samples() if sample_set is None else sample_set
    published = published_slop_figures()
    rows = []
    for decoding in sample_set["config"]["decodings"]:
        texts = slop_responses_of(sample_set, decoding)
        rows.append({"name": f"{SMOLLM2}, {decoding}", "source": "dftlab sample", "prompts": len(texts),
                     **rate_intervals(texts, bootstrap, confidence, seed)})
    for model in slop_score_models():
        texts = [o["output"] for o in load_slop_score_outputs(model)]
        rows.append({"name": model, "source": "slop-score outputs", "prompts": len(texts),
                     **rate_intervals(texts, bootstrap, confidence, seed),
                     "published_words_per_1k": published.loc[model, "slop_words_per_1k"],
                     "published_trigrams_per_1k": published.loc[model, "slop_trigrams_per_1k"]})
    human = published.loc[HUMAN_BASELINE]
    rows.append({"name": HUMAN_BASELINE, "source": "published figures", "prompts": np.nan,
                 "texts_used": human["samples"], "words": human["words"],
                 "slop_words_per_1k": human["slop_words_per_1k"], "slop_trigrams_per_1k": human["slop_trigrams_per_1k"],
                 "published_words_per_1k": human["slop_words_per_1k"],
                 "published_trigrams_per_1k": human["slop_trigrams_per_1k"]})
    columns = ["source", "prompts", "texts_used", "words", "slop_words_per_1k", "slop_words_low", "slop_words_high",
               "slop_trigrams_per_1k", "slop_trigrams_low", "slop_trigrams_high", "published_words_per_1k",
               "published_trigrams_per_1k"]
    table = pd.DataFrame(rows).set_index("name").reindex(columns=columns)
    return table.sort_values("slop_words_per_1k", kind="stable")


# --- the course's habit words against slop-score's list -----------------------------------------------------

def _chat_texts_and_groups(sample_set: dict | None, decoding: str):
    from dftlab import chat_samples

    sample_set = chat_samples.load_sample_set() if sample_set is None else sample_set
    return chat_samples.responses_of(sample_set, decoding), chat_samples.prompt_groups_of(sample_set, decoding)


def chat_habit_word_table(sample_set: dict | None = None, decoding: str = REAL_MODEL_DECODING,
                          bootstrap: int = 1000) -> pd.DataFrame:
    """`dftlab.metrics.formulaic.habit_word_evidence` for SmolLM2's committed chat sample set
    (`chat_samples.load_sample_set()`, one decoding, grouped by prompt): each of its habit words
    (`chat_samples.formulaic_words_of`) with the split-half topic control, slop-score's list, and the human
    baseline's rate."""
    from dftlab.metrics.formulaic import habit_word_evidence

    texts, groups = _chat_texts_and_groups(sample_set, decoding)
    return habit_word_evidence(texts, groups, bootstrap=bootstrap)


def chat_slop_list_enrichment(sample_set: dict | None = None, decoding: str = REAL_MODEL_DECODING,
                              bootstrap: int = 1000) -> pd.DataFrame:
    """`dftlab.metrics.formulaic.slop_list_enrichment` for SmolLM2's committed chat sample set (one decoding)."""
    from dftlab.metrics.formulaic import slop_list_enrichment

    texts, groups = _chat_texts_and_groups(sample_set, decoding)
    return slop_list_enrichment(texts, groups, bootstrap=bootstrap)


def main(argv=None) -> int:
    return sample_set_command(argv, "python -m dftlab.study.slop_samples", __doc__.split("\n\n")[0],
                              build_slop_samples, "4 prompts x 2 decodings of 48 new tokens, to try it")


if __name__ == "__main__":
    sys.exit(main())
