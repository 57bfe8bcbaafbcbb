"""Decoding as a lever against a model's habits, with a guard for the quality of the text.

The same weights of SmolLM2-135M-Instruct answer slop-score's prompts (the 100 of `dftlab.study.slop_samples`) at four
decodings:

- "T=0.7, min-p 0.1", slop-score's leaderboard decoding, and "T=1", plain sampling: the committed sample set of
  `dftlab.study.slop_samples`, reused as it is;
- "T=1, min-p 0.1": min-p alone, without the lower temperature;
- "T=0.7, min-p 0.1, habit bias": the leaderboard decoding with a logit bias of `HABIT_BIAS` against SmolLM2's habit
  words, in the spirit of the Antislop sampler (Paech et al. 2025), which suppresses listed phrases while it samples.

The habit list is learned on *other* prompts: chapter 0's habit words of SmolLM2 (`chat_samples.formulaic_words_of`
on the committed chat sample set: 60 open writing prompts, none of them a slop-score prompt), so every slop-score
prompt is held out from the list. The bias is transformers' `sequence_bias`: for each habit word, its token
sequences with a leading space, in lower case and capitalised, get `HABIT_BIAS` added to the log-odds of their last
token whenever the tokens before it have just been written. A word of one token is then all but banned; a word of
several tokens is stopped before its last token, which can leave a fragment (the Antislop sampler backtracks to avoid
that; a plain logit bias cannot).

Measured for each decoding, each against the leaderboard decoding with a paired bootstrap interval over prompts:
the habit words per 1,000 words (what the bias targets), slop-score's list words that are not habit words per 1,000
(where a banned habit could move), distinct-2 of each answer, and two guards for the text's quality: the mean
log-probability per token of the answer under the unmodified model (how much the text departs from what the model
itself finds fluent), and non-words per 1,000 words (words wordfreq does not know: fragments, misspellings, invented
names). `EXPECTED_OUTCOME` was committed before the first answer was sampled. One change came after the first look
at the results: the non-word guard, as first committed, asked `metrics.formulaic.english_frequency` for a frequency
of 0, which its floor never returns, so it counted nothing; it now asks wordfreq directly (`is_non_word`).

    python -m dftlab.study.decoding_levers           # sample the two new decodings and score all four (about 20 minutes)
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dftlab.storage import (build_result_command, config_digest, read_json_with_hash, read_result_for_config,
                            reading_results_dir, results_dir, write_json_with_hash)
from dftlab.validation import check_int

BASELINE = "T=0.7, min-p 0.1"  # slop_samples.LEADERBOARD_DECODING
NEW_DECODINGS = {"T=1, min-p 0.1": {"temperature": 1.0, "top_p": 1.0, "min_p": 0.1},
                 "T=0.7, min-p 0.1, habit bias": {"temperature": 0.7, "top_p": 1.0, "min_p": 0.1}}
BIASED = "T=0.7, min-p 0.1, habit bias"
HABIT_BIAS = -10.0  # added to the log-odds: e^-10, a 22,000-fold cut in the token's odds
FIRST_NEW_DECODING_INDEX = 2  # slop_samples uses 0 and 1; batch seeds stay distinct
BOOTSTRAP = 2000

EXPECTED_OUTCOME = (
    "Written before the first answer was sampled. A temperature reshapes the whole distribution: raising it from 0.7 "
    "to 1 gives probability back to every alternative in proportion, so habit words and list words should fall "
    "together (the chapter already saw list words fall 2.4-fold), distinct-2 rise, and the text's mean "
    "log-probability under the model fall, since it now samples less likely tokens. Min-p alone at T = 1 cuts the "
    "tail, so it should land between the two: fewer habits than T = 0.7 with min-p, more than plain T = 1, with "
    "little loss of fluency. The habit bias acts on a list of tokens: the listed habit words should all but vanish, "
    "but their probability goes to the next alternatives, so slop-score's other list words should hold or rise (the "
    "habit moves, as it did under anti-slop tuning), distinct-2 barely change, and the guards should catch damage "
    "where a word of several tokens is cut before its last one (more non-words, a lower log-probability).")


def biased_habit_words() -> list[str]:
    """SmolLM2's habit words, in order of overuse (chapter 8 uses them).

    They are the words chapter 0 finds: `chat_samples.formulaic_words_of` on the committed chat sample set (60 open
    prompts, none of them slop-score's)."""
    from dftlab.chat_samples import formulaic_words_of, load_sample_set

    return formulaic_words_of(load_sample_set())["word"].tolist()


def habit_sequence_bias(tokenizer, words, bias: float = HABIT_BIAS) -> dict[tuple[int, ...], float]:
    """transformers' `sequence_bias` against `words`: each word with a leading space, lower case and capitalised,
    as a tuple of token ids, mapped to `bias`."""
    sequences = {}
    for word in words:
        for form in {f" {word}", f" {word[:1].upper()}{word[1:]}"}:
            sequences[tuple(tokenizer.encode(form, add_special_tokens=False))] = float(bias)
    return sequences


def levers_config() -> dict:
    """Every setting that decides the answers and their scores; its hash names the results file."""
    from dftlab.study.slop_samples import default_slop_set_path, slop_set_config

    base = slop_set_config()
    return {"model": base["model"], "seed": base["seed"], "prompt_indices": base["prompt_indices"],
            "prompts_sha256": base["prompts_sha256"], "max_new_tokens": base["max_new_tokens"],
            "prompts_per_batch": base["prompts_per_batch"], "reused_sample_set": default_slop_set_path().name,
            "new_decodings": NEW_DECODINGS, "biased": BIASED, "habit_bias": HABIT_BIAS, "habit_words": biased_habit_words(),
            "first_new_decoding_index": FIRST_NEW_DECODING_INDEX, "expected_outcome": EXPECTED_OUTCOME}


def levers_path(config: dict | None = None, folder=None) -> Path:
    config = levers_config() if config is None else config
    name = f"decoding-levers-{config_digest(config)}.json"
    return (reading_results_dir(name) if folder is None else Path(folder)) / name


def mean_token_log_prob(model, tokenizer, prompt: str, response: str) -> float:
    """The mean log-probability (nats per token) of `response`'s tokens after the chat prompt for `prompt`, under
    `model` at T = 1 with nothing cut: how fluent the model itself finds the text."""
    import torch

    from dftlab.chat_samples import chat_prompt_text

    prompt_ids = tokenizer(chat_prompt_text(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"]
    if not response_ids:
        return float("nan")
    ids = torch.tensor([prompt_ids + response_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt_ids) - 1:-1].double()
    log_probs = logits.log_softmax(-1).gather(-1, torch.tensor(response_ids)[:, None])
    return float(log_probs.mean())


def build_levers(out=None, log=print) -> Path:
    """Sample the new decodings (resuming from finished batches in the user cache), score every answer of all four
    decodings, and write the results file atomically."""
    from dftlab.chat_samples import batch_seed, generate_responses
    from dftlab.models import cache_dir, load_model
    from dftlab.study.slop_samples import load_slop_samples

    config = levers_config()
    path = levers_path(config, results_dir() if out is None else out)  # written to the user folder
    model, tokenizer = load_model(config["model"])
    bias = habit_sequence_bias(tokenizer, config["habit_words"])
    reused = load_slop_samples()
    prompts = {row["prompt_index"]: row["prompt"] for row in reused["responses"]}
    indices, per_batch = config["prompt_indices"], config["prompts_per_batch"]
    batches = [indices[start:start + per_batch] for start in range(0, len(indices), per_batch)]
    runs = cache_dir() / f"decoding-levers-runs-{config_digest(config)}"
    answers = [{key: row[key] for key in ("decoding", "prompt_index", "category", "prompt", "response", "finished")}
               for row in reused["responses"]]
    started, sampling_seconds = time.time(), 0.0
    for offset, (decoding, settings) in enumerate(config["new_decodings"].items()):
        for batch_index, batch_indices in enumerate(batches):
            run_file = runs / f"{offset}-{batch_index}.json"
            if run_file.exists():
                run = read_json_with_hash(run_file)
            else:
                batch_started = time.time()
                extra = {"sequence_bias": bias} if decoding == config["biased"] else {}
                rows = generate_responses(model, tokenizer, [prompts[i] for i in batch_indices],
                                          max_new_tokens=config["max_new_tokens"],
                                          seed=batch_seed(config["seed"], config["first_new_decoding_index"] + offset,
                                                           batch_index), **settings, **extra)
                run = {"rows": rows, "seconds": time.time() - batch_started}
                write_json_with_hash(run_file, run)
                log(f"{decoding}: batch {batch_index + 1}/{len(batches)} in {run['seconds']:.0f} s")
            sampling_seconds += run["seconds"]
            for prompt_index, row in zip(batch_indices, run["rows"]):
                answers.append({"decoding": decoding, "prompt_index": prompt_index,
                                "category": "creative" if prompt_index < 150 else "essay", **row})
    scoring_started = time.time()
    for answer in answers:
        answer["mean_log_prob"] = mean_token_log_prob(model, tokenizer, answer["prompt"], answer["response"])
    payload = {"config": config, "answers": answers, "sampling_seconds": round(sampling_seconds, 1),
               "scoring_seconds": round(time.time() - scoring_started, 1),
               "bias_sequences": len(bias), "bias_single_token_words": sum(len(s) == 1 for s in bias)}
    write_json_with_hash(path, payload)
    log(f"wrote {len(answers)} answers to {path} ({time.time() - started:.0f} s)")
    return path


def load_levers(folder=None) -> dict:
    """The committed answers and scores for today's settings; another file is refused with the command."""
    config = levers_config()
    return read_result_for_config(levers_path(config, folder), config, "decoding-levers results",
                                  "`python -m dftlab.study.decoding_levers` (about 20 minutes on a CPU)")


def is_non_word(word: str) -> bool:
    """True if wordfreq's English list does not know `word` at all (frequency 0, before the floor that
    `metrics.formulaic.english_frequency` applies): a fragment such as "tapestr", a misspelling, a run of letters.
    Rare real words and most invented fantasy names ("elara") are known, so they are not non-words."""
    from wordfreq import word_frequency

    return word_frequency(word, "en") == 0


def _per_answer(answers: pd.DataFrame, habits: list[str]) -> pd.DataFrame:
    """Per answer: words, habit-word hits, other slop-list hits, non-words (all in `metrics.words.words`, possessives
    merged), distinct-2 and the mean log-probability."""
    from collections import Counter

    from dftlab.metrics.formulaic import slop_list_words
    from dftlab.metrics.text import distinct_n
    from dftlab.metrics.words import whitespace_tokens, words

    listed, habit_set = slop_list_words(), set(habits)
    rows = []
    for answer in answers.itertuples():
        counts = Counter(words(answer.response, merge_possessives=True))
        rows.append({"decoding": answer.decoding, "prompt_index": answer.prompt_index,
                     "words": sum(counts.values()),
                     "habit": sum(n for w, n in counts.items() if w in habit_set),
                     "other_listed": sum(n for w, n in counts.items() if w in listed and w not in habit_set),
                     "non_words": sum(n for w, n in counts.items() if is_non_word(w)),
                     # distinct-2 in the unit the expectation was registered with (metrics.words: whitespace_tokens)
                     "distinct_2": (distinct_n([answer.response], n=2, split_words=whitespace_tokens)
                                    if len(whitespace_tokens(answer.response)) > 1 else np.nan),
                     "mean_log_prob": answer.mean_log_prob})
    return pd.DataFrame(rows)


MEASURES = (("habit words per 1,000 words", "habit", "words", True),
            ("other slop-list words per 1,000 words", "other_listed", "words", True),
            ("non-words per 1,000 words (guard)", "non_words", "words", True),
            ("distinct-2 of each answer", "distinct_2", None, False),
            ("mean log-probability per token under the model (guard)", "mean_log_prob", None, False))


def levers_table(levers: dict | None = None, bootstrap: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """One row per decoding and measure: value, difference from the leaderboard decoding (same prompts), and a 95%
    paired bootstrap interval over prompts. Rates are hits over words x 1000 over the answers; distinct-2 and the
    log-probability are means over answers."""
    levers = load_levers() if levers is None else levers
    bootstrap = check_int(bootstrap, "bootstrap")
    per_answer = _per_answer(pd.DataFrame(levers["answers"]), levers["config"]["habit_words"])
    prompts = sorted(per_answer["prompt_index"].unique())
    weights = np.random.default_rng(seed).multinomial(len(prompts), np.full(len(prompts), 1 / len(prompts)),
                                                      size=bootstrap).astype(float)
    by_decoding = {d: frame.set_index("prompt_index").loc[prompts] for d, frame in per_answer.groupby("decoding")}

    def statistic(frame, column, denominator, rate, w):
        if rate:
            return float(w @ frame[column].to_numpy(float)) / float(w @ frame[denominator].to_numpy(float)) * 1000
        values = frame[column].to_numpy(float)
        keep = ~np.isnan(values)
        return float(w[..., keep] @ values[keep]) / float(w[..., keep].sum(-1)) if w.ndim == 1 else \
            (w[:, keep] @ values[keep]) / w[:, keep].sum(1)

    rows = []
    order = [BASELINE, "T=1", *NEW_DECODINGS]
    for decoding in order:
        frame = by_decoding[decoding]
        for name, column, denominator, rate in MEASURES:
            ones = np.ones(len(prompts))
            value = statistic(frame, column, denominator, rate, ones)
            base_value = statistic(by_decoding[BASELINE], column, denominator, rate, ones)
            if rate:
                differences = np.array([statistic(frame, column, denominator, True, w)
                                        - statistic(by_decoding[BASELINE], column, denominator, True, w)
                                        for w in weights])
            else:
                differences = (statistic(frame, column, denominator, False, weights)
                               - statistic(by_decoding[BASELINE], column, denominator, False, weights))
            low, high = np.quantile(differences, [0.025, 0.975]) if decoding != BASELINE else (0.0, 0.0)
            rows.append({"decoding": decoding, "measure": name, "value": value, "difference": value - base_value,
                         "ci_low": float(low), "ci_high": float(high), "prompts": len(prompts)})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    return build_result_command(argv, "python -m dftlab.study.decoding_levers", __doc__.split("\n\n")[0],
                                build_levers)


if __name__ == "__main__":
    sys.exit(main())
