"""Bad input across the public API: every probe must be refused by dftlab itself, with a message that
names the argument and says how to fix it.

The probes form one table, `PROBES`. Each row is `Probe(name, call, expected, words)`:

* `call(env)` makes one wrong call (a wrong shape, dtype, empty input, NaN or inf, an out-of-range token
  id, an unknown name, a wrong type). `env` holds the embedded model, its tokenizer and a few good inputs.
* `expected` is the exception class dftlab should raise (ValueError where the value is wrong, TypeError
  where the kind of object is wrong, dftlab's own error classes where they exist).
* `words` must all appear in the message (case-insensitive): the argument's name and a word of the fix.

A probe also fails when the call succeeds (a silent wrong result), and when the innermost frame of the
traceback is outside src/dftlab (the error came from deep inside torch, numpy or transformers rather than
from dftlab's own check). The table of probes and what each one got is printed at the end of the pytest
run (see `pytest_terminal_summary` in conftest.py).
"""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
import pytest
import torch

import dftlab
from dftlab import (corpus, data, distributions, generate, metrics, models, objectives, scoring_rules, storage, study,
                    tinytales, toy, train)
from dftlab.course import checks
from dftlab.study import pretrain

PACKAGE_DIR = Path(dftlab.__file__).resolve().parent
NAN, INF = float("nan"), float("inf")


class Probe(NamedTuple):
    name: str                      # "module.function: what is wrong"
    call: Callable                 # call(env) makes the wrong call
    expected: type[BaseException]  # the exception dftlab should raise
    words: tuple[str, ...]         # words the message must contain: the argument and a hint of the fix


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The embedded model and a few good inputs, built once; each probe spoils one of them."""
    model, tokenizer = dftlab.load_model()
    folder = tmp_path_factory.mktemp("bad-input")
    (folder / "garbage.json").write_text("{not json")
    (folder / "no-sums").mkdir()
    example = {"prompt": "Title: The fox and the forest.\nStory:", "completion": " Once upon a time."}
    return SimpleNamespace(
        model=model, tokenizer=tokenizer, folder=folder, example=example,
        batch=data.make_batches(tokenizer, [example], batch_size=1)[0],
        logits=torch.randn(4, 5), labels=torch.tensor([0, 1, 2, 3]),
        probs=torch.tensor([0.5, 0.3, 0.2]),
        tales=tinytales.TinyTales(max_options=2),
        stories=tinytales.TinyTales().sample(3, seed=0),
        results=pd.DataFrame({"objective": ["nll"], "kind": ["finetuned"], "base_model": ["tiny-gpt2"],
                              "prior": ["strong"], "steps": [200], "decoding": ["T=1"], "seed": [0],
                              "validity": [1.0]}),
    )


def _with(batch: dict, **changes) -> dict:
    return {**batch, **changes}


PROBES = [
    # --- dftlab.distributions -------------------------------------------------------------------
    Probe("distributions.softmax_with_temperature: integer logits",
          lambda e: distributions.softmax_with_temperature(torch.tensor([1, 2, 3])), ValueError, ("logits", ".float()")),
    Probe("distributions.softmax_with_temperature: NaN logit",
          lambda e: distributions.softmax_with_temperature(torch.tensor([0.0, NAN])), ValueError, ("logits", "nan")),
    Probe("distributions.softmax_with_temperature: +inf logit",
          lambda e: distributions.softmax_with_temperature(torch.tensor([0.0, INF])), ValueError, ("logits", "inf")),
    Probe("distributions.softmax_with_temperature: a row of only -inf",
          lambda e: distributions.softmax_with_temperature(torch.full((2, 3), -INF)), ValueError,
          ("logits", "finite")),
    Probe("distributions.softmax_with_temperature: temperature 0",
          lambda e: distributions.softmax_with_temperature(e.logits, 0), ValueError, ("temperature", "greedy")),
    Probe("distributions.entropy: logits passed as probabilities",
          lambda e: distributions.entropy(torch.tensor([-1.0, 2.0])), ValueError, ("probs", "softmax")),
    Probe("distributions.entropy: probabilities that do not sum to 1",
          lambda e: distributions.entropy(torch.tensor([0.5, 0.6])), ValueError, ("probs", "normalise")),
    Probe("distributions.kl_divergence: p and q of different lengths",
          lambda e: distributions.kl_divergence(e.probs, torch.tensor([0.5, 0.5])), ValueError, ("p and q", "same shape")),
    Probe("distributions.top_k_filter: k = 0",
          lambda e: distributions.top_k_filter(e.logits, 0), ValueError, ("k", "positive integer")),
    Probe("distributions.top_p_filter: p = 1.5",
          lambda e: distributions.top_p_filter(e.logits, 1.5), ValueError, ("p", "(0, 1]")),
    Probe("distributions.decoding_distribution: top_k = 0",
          lambda e: distributions.decoding_distribution(e.logits, top_k=0), ValueError, ("top_k", "positive")),
    Probe("distributions.decoding_distribution: top_p = 0",
          lambda e: distributions.decoding_distribution(e.logits, top_p=0.0), ValueError, ("top_p", "(0, 1]")),

    # --- dftlab.models ----------------------------------------------------------------------------
    Probe("models.load_model: name is not a string",
          lambda e: models.load_model(123), ValueError, ("name", "tiny-gpt2")),
    Probe("models.load_model: empty name",
          lambda e: models.load_model("  "), ValueError, ("name", "tiny-gpt2")),
    Probe("models.load_model: unknown Hub name while offline",
          lambda e: models.load_model("no-such-model"), models.ModelNotAvailableError,
          ("no-such-model", "load_model('tiny-gpt2')")),
    Probe("models.load_model: unknown device",
          lambda e: models.load_model(device="gpu"), ValueError, ("device", "'cpu'")),

    # --- dftlab.generate --------------------------------------------------------------------------
    Probe("generate.next_token_probs: model given as a name",
          lambda e: generate.next_token_probs("gpt2", e.tokenizer, "Hi"), TypeError, ("model", "load_model")),
    Probe("generate.next_token_probs: empty text",
          lambda e: generate.next_token_probs(e.model, e.tokenizer, ""), ValueError, ("text", "non-empty")),
    Probe("generate.top_tokens: k = 0",
          lambda e: generate.top_tokens(e.probs, e.tokenizer, k=0), ValueError, ("k", "positive")),
    Probe("generate.top_tokens: probs as a string",
          lambda e: generate.top_tokens("0.5 0.5", e.tokenizer), TypeError, ("probs", "next_token_probs")),
    Probe("generate.top_tokens: a batch of distributions",
          lambda e: generate.top_tokens(torch.full((2, 3), 1 / 3), e.tokenizer), ValueError, ("probs", "one row")),
    Probe("generate.top_tokens: probs with NaN",
          lambda e: generate.top_tokens(torch.tensor([NAN, 0.5]), e.tokenizer), ValueError, ("probs", "nan")),
    Probe("generate.sample_completions: a single prompt string",
          lambda e: generate.sample_completions(e.model, e.tokenizer, "Hi"), ValueError, ("prompts", "[prompt]")),
    Probe("generate.sample_completions: top_p = 2",
          lambda e: generate.sample_completions(e.model, e.tokenizer, ["Hi"], top_p=2.0), ValueError,
          ("top_p", "(0, 1]")),
    Probe("generate.sample_completions: seed as a string",
          lambda e: generate.sample_completions(e.model, e.tokenizer, ["Hi"], seed="a"), ValueError,
          ("seed", "int")),
    Probe("generate.sample_completions: prompt longer than the context",
          lambda e: generate.sample_completions(e.model, e.tokenizer, ["word " * 400]), ValueError,
          ("prompt 0", "shorten")),

    # --- dftlab.tinytales -------------------------------------------------------------------------
    Probe("tinytales.TinyTales: seed as a string",
          lambda e: tinytales.TinyTales(seed="0"), ValueError, ("seed", "int")),
    Probe("tinytales.TinyTales: negative zipf_exponent",
          lambda e: tinytales.TinyTales(zipf_exponent=-1.0), ValueError, ("zipf_exponent", ">= 0")),
    Probe("tinytales.TinyTales.sample: n = 0",
          lambda e: e.tales.sample(0), ValueError, ("n", ">= 1")),
    Probe("tinytales.TinyTales.choice_distribution: unknown choice",
          lambda e: e.tales.choice_distribution("colour"), ValueError, ("colour", "one of")),
    Probe("tinytales.TinyTales.entropy: a prompt the grammar cannot make",
          lambda e: e.tales.entropy(prompt="Title: Nothing."), ValueError, ("prompt", "sample()")),
    Probe("tinytales.TinyTales.enumerate_completions: grammar too big",
          lambda e: tinytales.TinyTales().enumerate_completions(e.example["prompt"], limit=10), ValueError,
          ("limit", "max_options")),
    Probe("tinytales.pretraining_text: n_stories = 0",
          lambda e: tinytales.pretraining_text(0), ValueError, ("n_stories", ">= 1")),
    Probe("tinytales.zipf_probabilities: n_options = 0",
          lambda e: tinytales.zipf_probabilities(0, 1.1), ValueError, ("n_options", ">= 1")),

    # --- dftlab.corpus ----------------------------------------------------------------------------
    Probe("corpus.load_corpus: unknown corpus",
          lambda e: corpus.load_corpus("bible"), ValueError, ("bible", "kjv")),

    # --- dftlab.data ------------------------------------------------------------------------------
    Probe("data.mask_prompt: prompt_length longer than the sequence",
          lambda e: data.mask_prompt([1, 2, 3], 5), ValueError, ("prompt_length", "between 0")),
    Probe("data.encode_example: tokenizer is not callable",
          lambda e: data.encode_example(None, e.example), TypeError, ("tokenizer", "load_model")),
    Probe("data.encode_example: no completion key",
          lambda e: data.encode_example(e.tokenizer, {"prompt": "Hi"}), ValueError, ("completion", "give every")),
    Probe("data.encode_example: max_length = 0",
          lambda e: data.encode_example(e.tokenizer, e.example, max_length=0), ValueError, ("max_length", "positive")),
    Probe("data.collate: pad_token_id is None",
          lambda e: data.collate([{"input_ids": [1], "labels": [1]}], None), ValueError,
          ("pad_token_id", "eos_token_id")),
    Probe("data.collate: labels and input_ids of different lengths",
          lambda e: data.collate([{"input_ids": [1, 2], "labels": [1]}], 0), ValueError, ("labels", "encode_example")),
    Probe("data.collate: a feature without labels",
          lambda e: data.collate([{"input_ids": [1, 2]}], 0), ValueError, ("labels", "encode_example")),
    Probe("data.iterate_batches: no features",
          lambda e: next(data.iterate_batches([], 2, 0)), ValueError, ("iterate_batches", "at least one")),

    # --- dftlab.objectives ------------------------------------------------------------------------
    Probe("objectives.nll: logits as a list",
          lambda e: objectives.nll([[0.0, 1.0]], torch.tensor([0])), ValueError, ("logits", "torch.as_tensor")),
    Probe("objectives.nll: NaN in the logits",
          lambda e: objectives.nll(torch.tensor([[0.0, NAN]]), torch.tensor([0])), ValueError,
          ("logits", "learning rate")),
    Probe("objectives.nll: float labels",
          lambda e: objectives.nll(e.logits, e.labels.float()), ValueError, ("labels", ".long()")),
    Probe("objectives.nll: labels of the wrong shape",
          lambda e: objectives.nll(e.logits, e.labels[:3]), ValueError, ("labels", "shift")),
    Probe("objectives.nll: a token id beyond the vocabulary",
          lambda e: objectives.nll(e.logits, torch.tensor([0, 1, 2, 5])), ValueError, ("labels", "tokenizer")),
    Probe("objectives.asft: base_logits of another shape",
          lambda e: objectives.asft(e.logits, e.labels, torch.zeros(4, 6)), ValueError, ("base_logits", "same batch")),
    Probe("objectives.get_objective: unknown name",
          lambda e: objectives.get_objective("sft"), ValueError, ("sft", "valid names")),
    Probe("objectives.causal_lm_loss: a token id beyond the vocabulary",
          lambda e: objectives.causal_lm_loss(e.model, _with(e.batch, input_ids=e.batch["input_ids"] + 10**6)),
          ValueError, ("input_ids", "tokenizer")),
    Probe("objectives.causal_lm_loss: float input_ids",
          lambda e: objectives.causal_lm_loss(e.model, _with(e.batch, input_ids=e.batch["input_ids"].float())),
          ValueError, ("input_ids", "integer")),
    Probe("objectives.causal_lm_loss: asft without a base model",
          lambda e: objectives.causal_lm_loss(e.model, e.batch, "asft"), ValueError, ("base_model", "frozen")),
    Probe("objectives.make_compute_loss_func: a keyword the objective does not take",
          lambda e: objectives.make_compute_loss_func("nll", floor=0.1), ValueError, ("floor", "nll")),

    # --- dftlab.train -----------------------------------------------------------------------------
    Probe("train.train: model given as a name",
          lambda e: train.train("tiny-gpt2", e.tokenizer, [e.example]), TypeError, ("model", "load_model")),
    Probe("train.train: unknown objective",
          lambda e: train.train(e.model, e.tokenizer, [e.example], objective="sft"), ValueError,
          ("sft", "valid names")),
    Probe("train.train: steps = 0",
          lambda e: train.train(e.model, e.tokenizer, [e.example], steps=0), ValueError, ("steps", "positive")),
    Probe("train.train: negative lr",
          lambda e: train.train(e.model, e.tokenizer, [e.example], lr=-1e-3), ValueError, ("lr", "3e-4")),
    Probe("train.train: objective_kwargs as a list",
          lambda e: train.train(e.model, e.tokenizer, [e.example], objective_kwargs=[0.1]), ValueError,
          ("objective_kwargs", "dict")),
    Probe("train.train: a keyword the objective does not take",
          lambda e: train.train(e.model, e.tokenizer, [e.example], objective="dft_floored",
                                objective_kwargs={"flor": 0.1}), ValueError, ("flor", "floor")),
    Probe("train.evaluate: no batches",
          lambda e: train.evaluate(e.model, []), ValueError, ("batches", "non-empty")),
    Probe("train.load_checkpoint: a folder without a checkpoint",
          lambda e: train.load_checkpoint(e.folder, e.model), FileNotFoundError, ("checkpoint_dir", "resume=false")),

    # --- dftlab.metrics ---------------------------------------------------------------------------
    Probe("metrics.distinct_n: a single string",
          lambda e: metrics.distinct_n("the cat sat"), ValueError, ("texts", "[text]")),
    Probe("metrics.distinct_n: texts are samples dicts",
          lambda e: metrics.distinct_n([{"completion": "x"}]), ValueError, ("texts[0]", "completion")),
    Probe("metrics.distinct_n: texts shorter than n",
          lambda e: metrics.distinct_n(["a b"], n=3), ValueError, ("texts", "smaller n")),
    Probe("metrics.self_bleu: one text",
          lambda e: metrics.self_bleu(["only one"]), ValueError, ("texts", "at least 2")),
    Probe("metrics.predictive_entropy: batch without labels",
          lambda e: metrics.predictive_entropy(e.model, {"input_ids": e.batch["input_ids"]}), ValueError,
          ("batches[0]", "make_batches")),
    Probe("metrics.predictive_entropy: a token id beyond the vocabulary",
          lambda e: metrics.predictive_entropy(e.model, _with(e.batch, input_ids=e.batch["input_ids"] + 10**6)),
          ValueError, ("input_ids", "tokenizer")),
    Probe("metrics.completion_log_probs: example without a completion",
          lambda e: metrics.completion_log_probs(e.model, e.tokenizer, [{"prompt": "Hi"}]), ValueError,
          ("completion", "give every")),
    Probe("metrics.mmd: one embedding",
          lambda e: metrics.mmd(np.zeros((1, 4)), np.zeros((3, 4))), ValueError, ("x_emb", "at least 2 rows")),
    Probe("metrics.mmd: NaN embedding",
          lambda e: metrics.mmd(np.full((2, 4), NAN), np.zeros((3, 4))), ValueError, ("x_emb", "embedding step")),
    Probe("metrics.sentence_embeddings: unknown method",
          lambda e: metrics.sentence_embeddings(["a"], method="bert"), ValueError, ("method", "'ngram'")),
    Probe("metrics.choice_frequency_table: unknown choice",
          lambda e: metrics.choice_frequency_table(e.stories, tinytales.TinyTales(), "colour"), ValueError,
          ("colour", "one of")),
    Probe("metrics.sequence_cross_entropy: stories the generator cannot make",
          lambda e: metrics.sequence_cross_entropy(e.model, e.tokenizer, [{"prompt": "Hi", "completion": " x"}],
                                                   e.tales), ValueError, ("true_examples[0]", "sampled from tales")),

    # --- dftlab.toy -------------------------------------------------------------------------------
    Probe("toy.fit_categorical: target that does not sum to 1",
          lambda e: toy.fit_categorical([0.5, 0.6]), ValueError, ("target", "normalise")),
    Probe("toy.fit_categorical: a target over one token",
          lambda e: toy.fit_categorical([1.0]), ValueError, ("target", "v >= 2")),
    Probe("toy.fit_categorical: NaN in the target",
          lambda e: toy.fit_categorical([NAN, 1.0]), ValueError, ("target", "finite")),
    Probe("toy.fit_categorical: init_logits of the wrong length",
          lambda e: toy.fit_categorical([0.5, 0.5], init_logits=[0.0, 0.0, 0.0]), ValueError,
          ("init_logits", "shape of `target`")),
    Probe("toy.fit_categorical: a keyword the objective does not take",
          lambda e: toy.fit_categorical([0.5, 0.5], "mix", steps=1, alpha=0.5), ValueError, ("alpha", "lam")),
    Probe("toy.logit_gradient: probs and target of different lengths",
          lambda e: toy.logit_gradient([0.5, 0.5], [0.2, 0.3, 0.5]), ValueError, ("probs", "same length")),

    # --- dftlab.scoring_rules ---------------------------------------------------------------------
    Probe("scoring_rules.score: outcome out of range",
          lambda e: scoring_rules.score([0.5, 0.5], 2), ValueError, ("outcome", "[0, 2)")),
    Probe("scoring_rules.score: unknown rule",
          lambda e: scoring_rules.score([0.5, 0.5], 0, rule="quadratic"), ValueError, ("quadratic", "'brier'")),
    Probe("scoring_rules.score: forecast that does not sum to 1",
          lambda e: scoring_rules.score([0.6, 0.6], 0), ValueError, ("forecast", "normalise")),
    Probe("scoring_rules.binary_score_curves: q1 = 1",
          lambda e: scoring_rules.binary_score_curves(1.0), ValueError, ("q1", "strictly between")),

    # --- dftlab.study -----------------------------------------------------------------------------
    Probe("study.StudyConfig: no seeds",
          lambda e: study.StudyConfig(seeds=()), ValueError, ("seeds", "non-empty")),
    Probe("study.StudyConfig: negative lr",
          lambda e: study.StudyConfig(lr=-1.0), ValueError, ("lr", "positive")),
    Probe("study.StudyConfig: negative zipf_exponent",
          lambda e: study.StudyConfig(zipf_exponent=-1.0), ValueError, ("zipf_exponent", ">= 0")),
    Probe("study.StudyConfig: an unknown objective",
          lambda e: study.StudyConfig(objectives=(study.ObjectiveSpec("sft", "sft"),), headline_objectives=()),
          ValueError, ("sft", "valid names")),
    Probe("study.StudyConfig: a headline objective that is not an objective label",
          lambda e: study.StudyConfig(headline_objectives=("sft",)), ValueError,
          ("headline_objectives", "use some of")),
    Probe("study.StudyConfig: a budget sweep holding the headline budget",
          lambda e: study.StudyConfig(budget_sweep=(200,)), ValueError, ("budget_sweep", "other than steps")),
    Probe("study.StudyConfig: a decoding at temperature 0",
          lambda e: study.StudyConfig(decodings=(study.Decoding("greedy", 0.0),)), ValueError,
          ("temperature", "positive")),
    Probe("study.model_fingerprint: a folder without weights",
          lambda e: study.model_fingerprint(str(e.folder)), FileNotFoundError, ("model.safetensors", "tiny-gpt2")),
    Probe("study.t_interval: confidence = 95",
          lambda e: study.t_interval([1.0, 2.0, 3.0], confidence=95), ValueError, ("confidence", "0.95")),
    Probe("study.compare: a metric the results do not have",
          lambda e: study.compare(e.results, "fluency", "nll", 0.5), ValueError, ("fluency", "load_results")),

    # --- dftlab.course.checks ----------------------------------------------------------------------------
    Probe("checks.check: time_limit = 0",
          lambda e: checks.check("ch01.entropy", distributions.entropy, time_limit=0), ValueError,
          ("time_limit", "seconds")),

    # --- dftlab.storage ---------------------------------------------------------------------------
    Probe("storage.read_json_with_hash: a file that is not a cache file",
          lambda e: storage.read_json_with_hash(e.folder / "garbage.json"), storage.CorruptFileError,
          ("garbage.json", "delete it")),
    Probe("storage.verify_checksums: a folder without SHA256SUMS",
          lambda e: storage.verify_checksums(e.folder / "no-sums", "Restore it."), storage.CorruptFileError,
          ("sha256sums", "restore it")),
    Probe("storage.atomic_write_bytes: text instead of bytes",
          lambda e: storage.atomic_write_bytes(e.folder / "out.bin", "text"), TypeError, ("data", ".encode(")),
    Probe("storage.write_json_with_hash: a payload JSON cannot hold",
          lambda e: storage.write_json_with_hash(e.folder / "out.json", {"model": object()}), TypeError,
          ("payload", "json")),

    # --- dftlab.study.pretrain --------------------------------------------------------------------------
    Probe("pretrain.PretrainConfig: n_embd not divisible by n_head",
          lambda e: pretrain.PretrainConfig(n_embd=130, n_head=4), ValueError, ("n_embd", "n_head")),
    Probe("pretrain.PretrainConfig: valid_fraction = 1",
          lambda e: pretrain.PretrainConfig(valid_fraction=1.0), ValueError, ("valid_fraction", "between 0 and 1")),
    Probe("pretrain.PretrainConfig: vocab_size below the 256 bytes",
          lambda e: pretrain.PretrainConfig(vocab_size=100), ValueError, ("vocab_size", "257")),
]

MODULES_PROBED = {"distributions", "models", "generate", "tinytales", "corpus", "data", "objectives", "train",
                  "metrics", "toy", "scoring_rules", "study", "checks", "storage", "pretrain"}


def _innermost_path(error: BaseException) -> Path:
    return Path(pytest.ExceptionInfo.from_exception(error).traceback[-1].path).resolve()


def _short(error: BaseException | None) -> str:
    if error is None:
        return "no error (accepted)"
    message = " ".join(str(error).split())
    return f"{type(error).__name__}: {message[:90]}" + ("..." if len(message) > 90 else "")


@pytest.mark.parametrize("probe", PROBES, ids=[probe.name for probe in PROBES])
def test_bad_input_is_refused_by_dftlab_with_a_message_naming_the_argument_and_the_fix(probe, env, probe_table):
    error = None
    try:
        probe.call(env)
    except Exception as caught:  # noqa: BLE001 -- the probe records whatever came out
        error = caught
    row = {"probe": probe.name, "expected": probe.expected.__name__, "got": _short(error), "verdict": "ok"}
    probe_table.append(row)
    try:
        assert error is not None, f"{probe.name}: the call was accepted (a silent result), expected {probe.expected.__name__}"
        assert isinstance(error, probe.expected), f"{probe.name}: expected {probe.expected.__name__}, got {_short(error)}"
        message = str(error).lower()
        missing = [word for word in probe.words if word.lower() not in message]
        assert not missing, f"{probe.name}: the message lacks {missing}: {error}"
        where = _innermost_path(error)
        assert where.is_relative_to(PACKAGE_DIR), (
            f"{probe.name}: raised from {where}, not by dftlab's own check (the traceback ends outside src/dftlab)")
    except AssertionError:
        row["verdict"] = "FAIL"
        raise


def test_every_public_module_is_probed():
    probed = {probe.name.split(".")[0] for probe in PROBES}
    assert probed == MODULES_PROBED


def test_probe_names_are_unique():
    names = [probe.name for probe in PROBES]
    assert len(names) == len(set(names))


def test_the_probe_table_keeps_at_least_60_rows():
    # A floor, not a range: adding a probe must never fail this; losing many of them does.
    assert len(PROBES) >= 60, len(PROBES)
