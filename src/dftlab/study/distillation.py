"""Distillation: a small model fine-tuned on a big model's answers, with the course's objectives.

Everyone fine-tunes small models on a big model's outputs. What happens to the small model's writing, and does the
objective, or a less formulaic teacher, change it? This study answers that offline with slop-score's vendored
outputs (`dftlab.slop_score_data`): two teachers, google/gemma-3-27b-it and its anti-slop fine-tune
(sam-paech/gemma-3-27b-it-antislop, `dftlab.antislop`), answering the same prompts, and one student,
SmolLM2-135M-Instruct, fine-tuned through `dftlab.study.scale` (TRL's SFTTrainer, LoRA on q and v):

- data: each teacher's answers to the *training half* of the prompts (`antislop.paired_answers`, half 0), each cut
  at a sentence boundary to at most `COMPLETION_TOKENS` of SmolLM2's tokens (`cut_at_sentence`): the teachers write
  about 1,500 tokens an answer, far more than a CPU run can train on (a step of 8 examples of about 140 tokens
  took 16 s on 2 cores), so the student learns the first sentences of each answer;
- arms: teacher (original, anti-slop) x objective (`nll`, `dft`) x seed (`SEEDS`); `dft_floored` was left out to
  fit the budget of 90 minutes on 2 cores;
- sampling: each student, and the base SmolLM2, answer the *held-out* prompts (`HELD_OUT_PROMPTS` of half 1) at
  slop-score's leaderboard decoding (T = 0.7, min-p 0.1, the decoding of the teachers' own answers), cut the same
  way; the teachers' held-out answers, cut the same way, are the data each student is trained to match.

The measures (`distillation_table`), each with a 95% bootstrap interval over the held-out prompts: slop-score's list
words per 1,000 words; each teacher's habit words (`antislop.habit_words`, found on that teacher's whole answers to the
training-half prompts, `HABITS_CHANGED_AFTER_FIRST_LOOK` says why) per 1,000 words; distinct-2 of each answer; the share of answers that open with the model's commonest first
three words; the share with a broken contraction ("wasn’ a", the anti-slop teacher's own flaw, `antislop`); and MMD
between a model's answers and a teacher's (MiniLM embeddings, the within-prompt permutation test of
`metrics.paired_mmd`). `EXPECTED_OUTCOME` was committed before the first run.

The study is cached run by run in the user cache (`models.cache_dir()`), in a folder named by the config's hash (the
config holds the vendored data's checksums and the student's fingerprint), so an interrupted build resumes from its
last complete run, and a run of other settings is never read. The same command runs on a GPU when one is present.

    python -m dftlab.study.distillation          # train 8 students, sample 9 models, write results (about an hour on 2 cores)
"""
from __future__ import annotations

import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from dftlab.models import REAL_CHAT_MODEL
from dftlab.storage import (build_result_command, config_digest, read_json_with_hash, read_result_for_config,
                            reading_results_dir, results_dir, write_json_with_hash)
from dftlab.study.slop_samples import DECODINGS as SLOP_SCORE_DECODINGS, LEADERBOARD_DECODING
from dftlab.validation import check_int

STUDENT = REAL_CHAT_MODEL
TEACHERS = {"original": "gemma-3-27b-it", "antislop": "gemma-3-27b-it-antislop"}
OBJECTIVES = ("nll", "dft")
SEEDS = (0, 1)
COMPLETION_TOKENS = 64  # each answer, the teachers' and the students', is cut at a sentence boundary within this
HELD_OUT_PROMPTS = 75  # every other prompt of the held-out half, so both kinds of prompt (creative, essay) appear
TRAINING = {"steps": 24, "batch_size": 8, "lr": 2e-3, "warmup_steps": 2, "max_length": 256, "lora_rank": 16,
            "lora_alpha": 32.0}
DECODING = SLOP_SCORE_DECODINGS[LEADERBOARD_DECODING]  # slop-score's leaderboard decoding
PROMPTS_PER_BATCH = 25
BOOTSTRAP = 2000
COMMAND = "python -m dftlab.study.distillation"

EXPECTED_OUTCOME = (
    "Written before the first run. Fine-tuning by maximum likelihood fits the student to its data (chapter 2), so "
    "the nll students should move from the base SmolLM2 towards their teacher: the teacher's habit words rise from "
    "the base's rate towards the teacher's, the MMD to the teacher falls below the base's, and a student of the "
    "anti-slop teacher uses fewer slop-list words than a student of the original, as its teacher does, while it picks "
    "up that teacher's own new habits (its habit words, perhaps its broken contractions). Dynamic Fine-Tuning "
    "weights each token's loss by its probability, which sharpens the model towards its most probable continuations "
    "(chapters 4 and 5), so the dft students should concentrate the most frequent patterns: a larger share of answers "
    "with the commonest opening, lower distinct-2, the teacher's commonest habit words at least as often as the nll "
    "students, and a larger MMD to the teacher than nll, which matches the data better. A less formulaic teacher "
    "gives a less formulaic student only on the measures where the teacher itself is less formulaic: fewer list "
    "words, not more varied structure (the anti-slop teacher's openings were more repetitive, not less). The budget "
    "is small (24 LoRA steps of 8 examples, 149 answers cut to 64 tokens, a 135M student): if the students barely "
    "move from the base (MMD to the teacher no smaller than the base's), the study cannot test the rest, and we will "
    "say so.")


SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]*_]*(?=\s|$)|\n")


def cut_at_sentence(text: str, tokenizer, max_tokens: int = COMPLETION_TOKENS, finished: bool = True) -> str:
    """`text` cut to at most `max_tokens` of `tokenizer`'s tokens, then back to the end of its last whole sentence
    (a ., ! or ? with any closing quote or bracket, or a line break). Text with no sentence end in that span is kept
    as cut. A text that fits is kept whole when `finished`; an unfinished one (a sample stopped at its token limit)
    is cut back to its last sentence too. The teachers' training answers and every measured answer are cut this way,
    so no model is measured on longer text than another, nor on a sentence stopped in the middle."""
    max_tokens = check_int(max_tokens, "max_tokens")
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens and finished:
        return text.strip()
    head = tokenizer.decode(ids[:max_tokens])
    ends = [m.end() for m in SENTENCE_END.finditer(head)]
    return (head[:ends[-1]] if ends else head).strip()


def distillation_config() -> dict:
    """Every setting that decides the study; its hash names the run folder and the results file."""
    from dftlab.slop_score_data import vendored_checksums
    from dftlab.study.cache import model_fingerprint

    checksums = vendored_checksums()
    return {"student": STUDENT, "student_sha256": model_fingerprint(STUDENT), "teachers": TEACHERS,
            "objectives": list(OBJECTIVES), "seeds": list(SEEDS), "completion_tokens": COMPLETION_TOKENS,
            "held_out_prompts": HELD_OUT_PROMPTS, "training": TRAINING, "decoding": DECODING,
            "prompts_per_batch": PROMPTS_PER_BATCH,
            "data": {name: checksums[name] for name in [f"outputs/{m}.json.xz" for m in TEACHERS.values()]
                     + ["prompts.json.xz"]},
            "expected_outcome": EXPECTED_OUTCOME}


def distillation_path(config: dict | None = None, folder=None) -> Path:
    config = distillation_config() if config is None else config
    name = f"distillation-{config_digest(config)}.json"
    return (reading_results_dir(name) if folder is None else Path(folder)) / name


def study_prompts(tokenizer, config: dict) -> dict:
    """The training examples of each teacher and the held-out prompts with each teacher's cut answers:
    {"train": {teacher: [{"prompt", "completion"}, ...]}, "held_out": [{"prompt_index", "category", "prompt",
    "original", "antislop"}, ...]}."""
    from dftlab.antislop import paired_answers
    from dftlab.slop_score_data import slop_score_prompts

    pairs = paired_answers()
    text = {p["prompt_index"]: p["prompt"] for p in slop_score_prompts()}
    train = pairs[pairs["half"] == 0]
    held = pairs[pairs["half"] == 1].iloc[::2].head(config["held_out_prompts"])
    cut = config["completion_tokens"]
    return {"train": {teacher: [{"prompt": text[i], "completion": cut_at_sentence(answer, tokenizer, cut)}
                                for i, answer in zip(train["prompt_index"], train[teacher])]
                      for teacher in config["teachers"]},
            "held_out": [{"prompt_index": int(row.prompt_index), "category": row.category,
                          "prompt": text[row.prompt_index],
                          **{teacher: cut_at_sentence(getattr(row, teacher), tokenizer, cut)
                             for teacher in config["teachers"]}}
                         for row in held.itertuples()]}


def run_names(config: dict) -> list[str]:
    """"base", then "<teacher>-<objective>-seed<k>" for every arm, in the order they are built: every arm's first
    seed before any second seed, so a study stopped early still holds each arm once."""
    return ["base"] + [f"{teacher}-{objective}-seed{seed}" for seed in config["seeds"]
                       for teacher in config["teachers"] for objective in config["objectives"]]


def _parse_run(name: str) -> tuple[str | None, str | None, int | None]:
    if name == "base":
        return None, None, None
    teacher, objective, seed = name.split("-")
    return teacher, objective, int(seed.removeprefix("seed"))


def sample_answers(model, tokenizer, held_out: list[dict], config: dict, seed: int) -> list[str]:
    """The model's answers to the held-out prompts at the study's decoding, in batches, each cut at a sentence."""
    from dftlab.chat_samples import generate_responses

    per_batch, answers = config["prompts_per_batch"], []
    for start in range(0, len(held_out), per_batch):
        prompts = [row["prompt"] for row in held_out[start:start + per_batch]]
        rows = generate_responses(model, tokenizer, prompts, max_new_tokens=config["completion_tokens"],
                                  seed=seed * 1000 + start // per_batch, **config["decoding"])
        answers += [cut_at_sentence(row["response"], tokenizer, config["completion_tokens"], row["finished"])
                    for row in rows]
    return answers


def train_and_sample_student(name: str, config: dict, data: dict) -> dict:
    """Train one student (or none, for "base") and sample it on the held-out prompts; the payload one run caches."""
    import tempfile

    import torch

    from dftlab.models import load_model
    from dftlab.runtime import torch_global_seed
    from dftlab.study import scale

    teacher, objective, seed = _parse_run(name)
    started = time.time()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_model(config["student"], device=device)
    losses = []
    if teacher is not None:
        training = config["training"]
        dataset = scale.examples_dataset(data["train"][teacher], chat_tokenizer=tokenizer)
        with torch_global_seed(seed), tempfile.TemporaryDirectory() as output_dir:  # the LoRA initialisation
            trainer = scale.build_trainer(model, tokenizer, dataset, objective, steps=training["steps"],
                                          batch_size=training["batch_size"], lr=training["lr"],
                                          output_dir=output_dir, seed=seed, max_length=training["max_length"],
                                          lora_rank=training["lora_rank"], lora_alpha=training["lora_alpha"],
                                          warmup_steps=training["warmup_steps"], use_cpu=device == "cpu")
            losses = scale.run_trainer(trainer).to_dict("records")
        model = trainer.model.merge_and_unload().eval()
    trained = time.time()
    answers = sample_answers(model, tokenizer, data["held_out"], config, seed=0 if seed is None else seed + 1)
    return {"name": name, "config_hash": config_digest(config), "answers": answers, "losses": losses,
            "train_seconds": round(trained - started, 1), "sample_seconds": round(time.time() - trained, 1),
            "device": device, "threads": torch.get_num_threads()}


HABITS_CHANGED_AFTER_FIRST_LOOK = (
    "Changed after the first look at the results, before they were interpreted: the teachers' habit words were first "
    "found on their training answers as cut for training (64 tokens), where the habit rule found one or two words "
    "('chipped', 'warmed'): answers of about 45 words are too short for a word to recur across a tenth of the prompts. "
    "They are now found on the teachers' whole answers to the same training-half prompts, as the anti-slop comparison "
    "finds them (`antislop.habit_words`), and still counted only on the held-out answers.")


def _teacher_habits(config: dict) -> dict[str, list[str]]:
    """Each teacher's habit words (`antislop.habit_words`), found on its whole answers to the training-half prompts
    (see `HABITS_CHANGED_AFTER_FIRST_LOOK`)."""
    from dftlab.antislop import habit_words, paired_answers

    pairs = paired_answers()
    train = pairs[pairs["half"] == 0]
    return {teacher: habit_words(train[teacher], train["prompt_index"]) for teacher in config["teachers"]}


def _mmd_rows(answers: dict[str, list[str]], config: dict) -> list[dict]:
    """MMD between each model's held-out answers and each teacher's (paired by prompt; MiniLM embeddings)."""
    from dftlab.metrics.two_sample import paired_mmd, sentence_embeddings

    embeddings = {name: sentence_embeddings(texts, method="minilm") for name, texts in answers.items()}
    rows = []
    for name in answers:
        for teacher in config["teachers"]:
            if name != teacher:
                result = paired_mmd(embeddings[name], embeddings[teacher], seed=0)
                rows.append({"model": name, "teacher": teacher, "mmd2": result["mmd2"], "p_value": result["p_value"]})
    return rows


def build_distillation(out=None, log=print, compute=train_and_sample_student) -> Path:
    """Build every run not yet in the run folder (resuming), then measure MMD and write the results atomically.
    `compute(name, config, data)` makes one run's payload (the default trains and samples; tests pass a stand-in)."""
    from dftlab.models import cache_dir, load_model

    config = distillation_config()
    _, tokenizer = load_model(config["student"])
    data = study_prompts(tokenizer, config)
    runs = cache_dir() / f"distillation-runs-{config_digest(config)}"
    payloads = {}
    for name in run_names(config):
        run_file = runs / f"{name}.json"
        if run_file.exists():
            payload = read_json_with_hash(run_file)
            if payload.get("config_hash") != config_digest(config) or len(payload["answers"]) != len(data["held_out"]):
                raise ValueError(f"{run_file} holds a run of other settings; delete it and run `{COMMAND}` again.")
            log(f"{name}: reused from {run_file}")
        else:
            payload = compute(name, config, data)
            write_json_with_hash(run_file, payload)
            log(f"{name}: trained in {payload['train_seconds']:.0f} s, sampled in {payload['sample_seconds']:.0f} s")
        payloads[name] = payload
    answers = {teacher: [row[teacher] for row in data["held_out"]] for teacher in config["teachers"]}
    answers.update({name: payload["answers"] for name, payload in payloads.items()})
    started = time.time()
    result = {"config": config, "held_out": data["held_out"], "habit_words": _teacher_habits(config),
              "habits_changed_after_first_look": HABITS_CHANGED_AFTER_FIRST_LOOK,
              "runs": {name: {key: value for key, value in payload.items() if key != "config_hash"}
                       for name, payload in payloads.items()},
              "mmd": _mmd_rows(answers, config), "mmd_seconds": round(time.time() - started, 1)}
    path = distillation_path(config, results_dir() if out is None else out)  # written to the user folder
    write_json_with_hash(path, result)
    log(f"wrote {path}")
    return path


def load_distillation(folder=None) -> dict:
    """The committed distillation study for today's settings, data and student; another file is refused with the
    command that recomputes it."""
    config = distillation_config()
    return read_result_for_config(distillation_path(config, folder), config, "distillation results",
                                  f"`{COMMAND}` (about an hour on 2 CPU cores; it resumes if interrupted)")


def model_answers(study: dict) -> dict[str, list[str]]:
    """Every measured model's held-out answers, by name: the two teachers, "base", and each student run."""
    answers = {teacher: [row[teacher] for row in study["held_out"]] for teacher in study["config"]["teachers"]}
    answers.update({name: run["answers"] for name, run in study["runs"].items()})
    return answers


def per_answer_counts(texts: list[str], habit_words: dict[str, list[str]]) -> pd.DataFrame:
    """Per answer: slop-score's words and list-word hits, words (`metrics.words.words`, possessives merged) and
    each teacher's habit-word hits in them, distinct-2 (of whitespace tokens, the unit the study's expectation was
    registered with), whether it holds a broken contraction, its first three
    words."""
    from dftlab.antislop import broken_contractions, opening
    from dftlab.metrics.slop_score import slop_list_word_hits
    from dftlab.metrics.text import distinct_n
    from dftlab.metrics.words import whitespace_tokens, words

    hits = slop_list_word_hits(texts)
    rows = []
    for text, (listed, slop_words) in zip(texts, hits):
        counts = Counter(words(text, merge_possessives=True))
        row = {"slop_words": slop_words, "listed": listed, "words": sum(counts.values()),
               # distinct-2 in the unit the expectation was registered with (metrics.words: whitespace_tokens)
               "distinct_2": (distinct_n([text], n=2, split_words=whitespace_tokens)
                              if len(whitespace_tokens(text)) > 1 else np.nan),
               "broken_contraction": float(broken_contractions(text) > 0), "opening": opening(text)}
        for teacher, chosen in habit_words.items():
            row[f"habits_{teacher}"] = sum(counts[w] for w in chosen)
        rows.append(row)
    return pd.DataFrame(rows)


MEASURES = (("slop-score's list words per 1,000 words", "listed", "slop_words"),
            ("the original teacher's habit words per 1,000 words", "habits_original", "words"),
            ("the anti-slop teacher's habit words per 1,000 words", "habits_antislop", "words"),
            ("distinct-2 of each answer", "distinct_2", None),
            ("answers that open with the model's commonest first three words", "commonest_opening", None),
            ("answers with a broken contraction ('wasn’ a')", "broken_contraction", None))


def _statistic(frame: pd.DataFrame, column: str, denominator: str | None, weights: np.ndarray) -> np.ndarray:
    """The measure under bootstrap weights over prompts ([draws, prompts]): a ratio of sums x 1000, or a mean."""
    values = frame[column].to_numpy(float)
    if denominator is not None:
        return (weights @ values) / np.maximum(weights @ frame[denominator].to_numpy(float), 1.0) * 1000
    keep = ~np.isnan(values)
    return (weights[:, keep] @ values[keep]) / weights[:, keep].sum(1)


def _model_label(name: str) -> dict:
    if name in ("original", "antislop"):
        return {"model": name, "kind": "teacher", "teacher": name, "objective": "", "seed": np.nan}
    teacher, objective, seed = _parse_run(name)
    return {"model": name, "kind": "base" if teacher is None else "student", "teacher": teacher or "",
            "objective": objective or "", "seed": np.nan if seed is None else seed}


def distillation_table(study: dict | None = None, bootstrap: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """One row per model (the teachers, the base SmolLM2, each student run) and measure: its value on the held-out
    prompts and a 95% bootstrap interval over prompts (the same draws for every model)."""
    study = load_distillation() if study is None else study
    bootstrap = check_int(bootstrap, "bootstrap")
    answers = model_answers(study)
    prompts = len(study["held_out"])
    weights = np.random.default_rng(seed).multinomial(prompts, np.full(prompts, 1 / prompts),
                                                      size=bootstrap).astype(float)
    ones = np.ones((1, prompts))
    rows = []
    for name, texts in answers.items():
        frame = per_answer_counts(texts, study["habit_words"])
        commonest = Counter(frame["opening"]).most_common(1)[0][0]
        frame["commonest_opening"] = (frame["opening"] == commonest).astype(float)
        for measure, column, denominator in MEASURES:
            draws = _statistic(frame, column, denominator, weights)
            low, high = np.quantile(draws, [0.025, 0.975])
            rows.append({**_model_label(name), "measure": measure,
                         "value": float(_statistic(frame, column, denominator, ones)[0]),
                         "ci_low": float(low), "ci_high": float(high),
                         "note": f"'{commonest}'" if column == "commonest_opening" else ""})
    return pd.DataFrame(rows)


def objective_differences(study: dict | None = None, bootstrap: int = BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """For each teacher and measure: dft minus nll, the seeds' answers pooled per prompt, with a 95% paired bootstrap
    interval over prompts (the same prompts answered by both)."""
    study = load_distillation() if study is None else study
    bootstrap = check_int(bootstrap, "bootstrap")
    config = study["config"]
    prompts = len(study["held_out"])
    weights = np.random.default_rng(seed).multinomial(prompts, np.full(prompts, 1 / prompts),
                                                      size=bootstrap).astype(float)
    ones = np.ones((1, prompts))
    rows = []
    for teacher in config["teachers"]:
        frames = {}
        for objective in config["objectives"]:
            per_seed = []
            for s in config["seeds"]:
                frame = per_answer_counts(study["runs"][f"{teacher}-{objective}-seed{s}"]["answers"],
                                          study["habit_words"])
                commonest = Counter(frame["opening"]).most_common(1)[0][0]
                frame["commonest_opening"] = (frame["opening"] == commonest).astype(float)
                per_seed.append(frame.drop(columns="opening"))
            frames[objective] = sum(per_seed) / len(per_seed)  # per prompt: the mean over seeds
        for measure, column, denominator in MEASURES:
            def value(objective, w):
                return _statistic(frames[objective], column, denominator, w)
            draws = value("dft", weights) - value("nll", weights)
            low, high = np.quantile(draws, [0.025, 0.975])
            rows.append({"teacher": teacher, "measure": measure, "nll": float(value("nll", ones)[0]),
                         "dft": float(value("dft", ones)[0]),
                         "dft_minus_nll": float(value("dft", ones)[0] - value("nll", ones)[0]),
                         "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows)


def mmd_table(study: dict | None = None) -> pd.DataFrame:
    """MMD^2 and its within-prompt permutation p-value between each model's answers and each teacher's."""
    study = load_distillation() if study is None else study
    return pd.DataFrame([{**_model_label(row["model"]), "to_teacher": row["teacher"], "mmd2": row["mmd2"],
                          "p_value": row["p_value"]} for row in study["mmd"]])


def main(argv=None) -> int:
    return build_result_command(argv, COMMAND, __doc__.split("\n\n")[0], build_distillation)


if __name__ == "__main__":
    sys.exit(main())
