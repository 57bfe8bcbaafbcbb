"""The negative control of every rule: second samples of the truth in place of the models under test.

For each seed of a study's headline runs, two more independent samples of true stories for the same prompts (arms
"b" and "c", on streams the study never uses) are measured exactly as a model's samples are, against the same
matched reference. In the control table arm b stands where nll stood and arm c where dft stood, beside the study's
own truth row (arm "a"), and every rule is run on it unchanged (`dftlab.study.claims.judge`). Two truths do not
differ and the truth is not formulaic, so each rule must return a null verdict (`rules.NULL_VERDICTS`); a rule that
does not is broken.

The measures a model gets from its weights come, for the truth, from the generator's exact probabilities on a fresh
set of `test_size` true stories per arm (drawn on another stream again):
- cross_entropy = mean of -log q(completion | prompt), true_entropy = H(q), kl = cross_entropy - H(q) (an unbiased
  estimate of KL(q || q) = 0 with the same sampling noise as a model's);
- predictive_entropy = the sum of -log q over the stories divided by their number of tokens (the GPT-2 tokenizer of
  tiny-gpt2, plus one end-of-text token each): by the chain rule its expectation is the truth's mean per-token
  entropy, the quantity a model's predictive entropy measures.
Measures that need weights (p(target), accuracy, the loss scale) have no truth counterpart and stay NaN. The habit
rule of claim 1's real-model evidence is run on arm b's stories too (`habit_words`).

Cached in `<results>/control-<name>-<config hash>.json` (sha256-wrapped, like every results file), with a
fingerprint of the study's truth rows so that it is used only with the study it was computed for.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd

from dftlab.storage import (CorruptFileError, read_json_with_hash, reading_results_dir, results_dir,
                            write_json_with_hash)
from dftlab.study.cache import study_config_hash, fingerprints
from dftlab.study.config import STRONG_PRIOR, RunSpec, StudyConfig
from dftlab.study.measurement import ID_COLUMNS, METRIC_COLUMNS, json_safe

CONTROL_VERSION = 1
# arm -> (the objective it stands in for, the stream of its samples, the stream offset of its exact-probability set)
ARMS = {"b": ("nll", "control_b", 3_000), "c": ("dft", "control_c", 4_000)}
CONTROL_OBJECTIVE_NAME = "truth_control"


def control_path(out, config: StudyConfig, model_fingerprints: dict | None = None) -> Path:
    model_fingerprints = fingerprints(config) if model_fingerprints is None else model_fingerprints
    return Path(out) / f"control-{config.name}-{study_config_hash(config, model_fingerprints)}.json"


def truth_fingerprint(results: pd.DataFrame) -> str:
    """sha256 of the study's truth rows (seed and every metric), to match a control to its study."""
    truth = results[results["objective"] == "truth"].sort_values("seed")
    values = [[int(row["seed"])] + [repr(float(row[m])) for m in METRIC_COLUMNS if m in row]
              for _, row in truth.iterrows()]
    return hashlib.sha256(json.dumps(values).encode()).hexdigest()


def _token_counter():
    from transformers import AutoTokenizer

    from dftlab.models import EMBEDDED_MODELS, quiet_transformers

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(EMBEDDED_MODELS[STRONG_PRIOR])
    return lambda text: len(tokenizer(text)["input_ids"]) + 1  # + the end-of-text token


def exact_truth_metrics(tales, stories: list[dict], count_tokens) -> dict:
    """The truth's counterparts of a model's fit measures on `stories` drawn from q (the module docstring)."""
    log_q = np.array([tales.log_prob(s["prompt"], s["completion"]) for s in stories], dtype=np.float64)
    cross_entropy, true_entropy = float(-log_q.mean()), float(tales.entropy())
    tokens = sum(count_tokens(s["completion"]) for s in stories)
    return {"cross_entropy": cross_entropy, "true_entropy": true_entropy, "kl": cross_entropy - true_entropy,
            "kl_standard_error": float(log_q.std(ddof=1) / math.sqrt(len(log_q))) if len(log_q) > 1 else math.nan,
            "predictive_entropy": float(-log_q.sum() / tokens)}


def _habit_words(texts: list[str], groups: list[str]) -> dict:
    """The habit rule of claim 1's real-model evidence on true stories: raw and with the split-half topic control."""
    from dftlab.metrics.formulaic import controlled_habit_words, formulaic_words

    try:
        raw = formulaic_words(texts, groups)["word"].tolist()
        controlled = controlled_habit_words(texts, groups)
        survivors = controlled.loc[controlled["survives"], "word"].tolist()
    except ValueError as error:  # too few prompts for the split-half control
        return {"raw": None, "controlled": None, "error": str(error)}
    return {"raw": raw, "controlled": survivors}


def compute_control(config: StudyConfig, log=None) -> dict:
    """Measure the two truth arms of every headline seed of `config` (about 20 s per arm and seed on one core)."""
    from dftlab.study.measurement import run_inputs, text_metrics, true_completions

    started = time.time()
    count_tokens = _token_counter()
    rows, habit = [], []
    for seed in sorted(set(config.headline_seeds)):
        tales, _, prompts, reference = run_inputs(config, RunSpec("truth", seed))
        for arm, (stands_for, stream, offset) in ARMS.items():
            samples = true_completions(tales, prompts, config.samples_per_prompt, seed=seed, stream=stream)
            text_row, _ = text_metrics(samples, reference, tales, config)
            exact = exact_truth_metrics(tales, tales.sample(config.test_size, seed=10_000 * seed + offset),
                                        count_tokens)
            rows.append({"seed": seed, "arm": arm, "stands_for": stands_for, "stream": stream, **text_row, **exact})
            if arm == "b":
                habit.append({"seed": seed, "texts": len(samples), "prompts": len(set(prompts)),
                              **_habit_words([s["completion"] for s in samples], [s["prompt"] for s in samples])})
            if log:
                log(f"control: seed {seed}, arm {arm} ({time.time() - started:.0f} s)")
    return {"version": CONTROL_VERSION, "config": config.to_dict(), "arms": {a: list(v) for a, v in ARMS.items()},
            "rows": json_safe(rows), "habit_words": habit, "seconds": round(time.time() - started, 1)}


def ensure_control(config: StudyConfig, out=None, results: pd.DataFrame | None = None, log=None) -> dict:
    """The cached control of `config` under `out`, computed and written first if it is missing or damaged."""
    out = results_dir() if out is None else Path(out)
    path = control_path(out, config)
    payload = read_control(path)
    if payload is None:
        payload = read_control(reading_results_dir(path.name) / path.name)  # e.g. the shipped one
        if payload is None:
            payload = compute_control(config, log)
            if results is not None:
                payload["truth_sha256"] = truth_fingerprint(results)
        write_json_with_hash(path, payload)
    return payload


def read_control(path: Path) -> dict | None:
    """The control payload at `path`, or None if it is missing, damaged or of another version."""
    if not Path(path).exists():
        return None
    try:
        payload = read_json_with_hash(path)
    except CorruptFileError:
        return None
    return payload if payload.get("version") == CONTROL_VERSION else None


def load_control(quick: bool = False, config: StudyConfig | None = None, out=None) -> dict | None:
    """The cached control of the study (`quick`, or `config`), or None where it was not computed."""
    from dftlab.study.config import default_config

    config = default_config(quick) if config is None else config
    if out is None:
        out = reading_results_dir(control_path(".", config).name)
    return read_control(control_path(out, config))


def find_control(results: pd.DataFrame, out=None) -> dict | None:
    """The cached control (of any study in `out`) computed for the study whose truth rows `results` holds."""
    out = reading_results_dir("control-*.json") if out is None else Path(out)
    if "objective" not in results or not (results["objective"] == "truth").any():
        return None
    fingerprint = None
    for path in sorted(out.glob("control-*.json")):
        payload = read_control(path)
        if payload is None or "truth_sha256" not in payload:
            continue
        fingerprint = truth_fingerprint(results) if fingerprint is None else fingerprint
        if payload["truth_sha256"] == fingerprint:
            return payload
    return None


def control_table(results: pd.DataFrame, control: dict) -> pd.DataFrame:
    """The study's truth rows with the control's truth arms in the places of nll (arm b) and dft (arm c).

    Each arm row is copied to every decoding of the study (a true sample has no decoding), as a fine-tuning of the
    headline base model at the headline budget, so that every rule reads it as it reads the models."""
    from dftlab.study.stats import headline

    base_model, steps = headline(results)
    decodings = [d for d in dict.fromkeys(results["decoding"]) if d != "data"]
    truth = results[results["objective"] == "truth"]
    true_prob = float(truth["top_opener_true_prob"].iloc[0])
    seeds = set(truth["seed"])
    samples = int(results["samples"].dropna().iloc[0]) if "samples" in results else None
    rows = []
    for row in control["rows"]:
        if row["seed"] not in seeds:
            continue
        for decoding in decodings:
            rows.append({"run_id": f"control-{row['arm']}-seed{row['seed']}", "kind": "finetuned",
                         "base_model": base_model, "prior": "strong", "steps": steps,
                         "zipf_exponent": float(truth["zipf_exponent"].iloc[0]), "objective": row["stands_for"],
                         "objective_name": CONTROL_OBJECTIVE_NAME, "objective_kwargs": "{}", "seed": row["seed"],
                         "decoding": decoding, "temperature": math.nan, "top_p": math.nan,
                         **{m: math.nan if row.get(m) is None else row[m] for m in METRIC_COLUMNS},
                         "top_opener_true_prob": true_prob, **({"samples": samples} if samples else {})})
    arms = pd.DataFrame(rows, columns=list(results.columns))
    for column in METRIC_COLUMNS:
        arms[column] = pd.to_numeric(arms[column], errors="coerce").astype(float)
    return pd.concat([truth, arms], ignore_index=True)[list(ID_COLUMNS) + [c for c in results.columns
                                                                           if c not in ID_COLUMNS]]


__all__ = ["ARMS", "CONTROL_VERSION", "compute_control", "control_path", "control_table", "ensure_control",
           "exact_truth_metrics", "find_control", "load_control", "read_control", "truth_fingerprint"]
