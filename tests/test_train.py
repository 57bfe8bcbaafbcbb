"""Tests for dftlab.train: the loop learns, is reproducible, survives NaN and Ctrl-C, and resumes exactly."""
import json
import math
import os
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

import dftlab.train as train_module
from dftlab.objectives import OBJECTIVES, nll
from dftlab.train import (TrainingDivergedError, evaluate, learning_rate_at, load_checkpoint, progress_enabled,
                          train)

SENTENCES = ["the cat sat on the mat.", "the dog ate the bone.", "a bird sang in the tree.",
             "question: what colour is the sky? answer: blue.", "once upon a time there was a fox."]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny: a second thread buys nothing, and on a busy shared CPU it costs up to 10x.
    from dftlab.runtime import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def tokenizer(make_tiny_tokenizer):
    return make_tiny_tokenizer()


@pytest.fixture
def tiny_model(make_tiny_gpt2):
    """tiny_model(tokenizer, seed=0): the conftest tiny GPT-2 for `tokenizer`."""
    return lambda tokenizer, seed=0: make_tiny_gpt2(len(tokenizer), seed=seed, eos_token_id=tokenizer.eos_token_id)


TRAIN = [{"prompt": f"{s.split()[0]}", "completion": " " + " ".join(s.split()[1:])} for s in SENTENCES] * 4
VALID = [{"prompt": "the", "completion": " cat sat on the mat."}, {"prompt": "a", "completion": " bird sang in the tree."}]
FAST = dict(batch_size=4, lr=3e-3, warmup_steps=2, eval_every=3)


def weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_learning_rate_schedule_warms_up_then_decays():
    at = [learning_rate_at(s, lr=1.0, warmup_steps=4, steps=14) for s in range(14)]
    assert at[:4] == [0.25, 0.5, 0.75, 1.0]
    assert at[4] == 1.0 and all(a > b for a, b in zip(at[4:], at[5:]))
    assert learning_rate_at(14, lr=1.0, warmup_steps=4, steps=14) == pytest.approx(0.1)


def test_evaluate_on_uniform_logits_matches_hand_computation():
    class Uniform(torch.nn.Module):  # every prediction is uniform over 4 tokens
        def forward(self, input_ids, attention_mask=None):
            return SimpleNamespace(logits=torch.zeros(*input_ids.shape, 4))
    batch = {"input_ids": torch.tensor([[1, 0, 2, 3]]), "attention_mask": torch.ones(1, 4, dtype=torch.long),
             "labels": torch.tensor([[-100, 0, 2, -100]])}
    metrics = evaluate(Uniform(), [batch])
    assert metrics["tokens"] == 2
    assert metrics["nll"] == pytest.approx(math.log(4)) and metrics["entropy"] == pytest.approx(math.log(4))
    assert metrics["accuracy"] == 0.5  # argmax of a tie is token 0: right for label 0, wrong for label 2
    assert metrics["prob_p50"] == pytest.approx(0.25) and np.allclose(metrics["target_probs"], 0.25)


def test_nll_training_lowers_the_loss(tokenizer, tiny_model):
    result = train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, "nll", steps=60, batch_size=4, lr=3e-3,
                   warmup_steps=5, eval_every=20)
    history = result.history
    assert list(history["step"]) == [0, 20, 40, 60]
    assert history["valid_nll"].iloc[-1] < history["valid_nll"].iloc[0] - 1.0
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[1]
    assert history["valid_accuracy"].iloc[-1] > history["valid_accuracy"].iloc[0]
    assert len(result.target_probs) == history["valid_tokens"].iloc[-1]
    assert result.final_metrics["valid_nll"] == history["valid_nll"].iloc[-1]
    assert not result.model.training


def test_packing_and_the_history_columns(tokenizer, tiny_model):
    result = train(tiny_model(tokenizer), tokenizer, TRAIN, None, "nll", steps=4, packing=True, max_length=32,
                   **{**FAST, "eval_every": 2})
    assert list(result.history.columns) == ["step", "lr", "train_loss"]
    assert list(result.history["step"]) == [2, 4] and result.target_probs is None
    expected_lr = [learning_rate_at(s - 1, lr=FAST["lr"], warmup_steps=FAST["warmup_steps"], steps=4) for s in (2, 4)]
    assert list(result.history["lr"]) == expected_lr


def test_two_runs_with_the_same_seed_are_identical(tokenizer, tiny_model):
    runs = [train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, "dft", steps=6, seed=seed, **FAST)
            for seed in (1, 1, 2)]
    pd.testing.assert_frame_equal(runs[0].history, runs[1].history, check_exact=True)
    assert same_weights(weights(runs[0].model), weights(runs[1].model))
    assert not runs[0].history["train_loss"].equals(runs[2].history["train_loss"])


@pytest.mark.parametrize("objective", sorted(OBJECTIVES))
def test_every_objective_trains(tokenizer, objective, tiny_model):
    model = tiny_model(tokenizer)
    before = weights(model)
    result = train(model, tokenizer, TRAIN, VALID, objective, steps=3, **FAST)
    assert np.isfinite(result.history[["train_loss", "valid_nll", "valid_entropy"]].iloc[-1]).all()
    assert not same_weights(before, weights(model))


def test_nan_loss_raises_and_keeps_the_last_finite_weights(tokenizer, tiny_model):
    model = tiny_model(tokenizer)
    calls, snapshot = [], {}

    def nan_at_call_4(logits, labels):
        calls.append(1)
        if len(calls) == 4:
            snapshot.update(weights(model))  # the weights after step 3
            return nll(logits, labels) * math.nan
        return nll(logits, labels)

    initial = weights(model)
    with pytest.raises(TrainingDivergedError, match=r"step 4 .*nan_at_call_4.*loss was nan.*lower learning rate") as error:
        train(model, tokenizer, TRAIN, VALID, nan_at_call_4, steps=10, **FAST)
    assert same_weights(weights(model), snapshot)
    assert not same_weights(weights(model), initial)
    assert error.value.step == 4 and list(error.value.history["step"]) == [0, 3]


def test_nan_gradient_with_finite_loss_is_caught_too(tokenizer, tiny_model):
    model = tiny_model(tokenizer)
    initial = weights(model)

    def nan_gradient(logits, labels):  # sqrt'(0) is infinite, so the gradient is 0 * inf = nan
        return nll(logits, labels) + torch.sqrt(0.0 * logits.sum())

    with pytest.raises(TrainingDivergedError, match="gradient norm"):
        train(model, tokenizer, TRAIN, None, nan_gradient, steps=3, **FAST)
    assert same_weights(weights(model), initial)


def interrupt_at_call(monkeypatch, k):
    real, calls = train_module.causal_lm_loss, []

    def interrupting(*args, **kwargs):
        calls.append(1)
        if len(calls) == k:
            raise KeyboardInterrupt
        return real(*args, **kwargs)
    monkeypatch.setattr(train_module, "causal_lm_loss", interrupting)


def test_keyboard_interrupt_leaves_a_loadable_checkpoint(tokenizer, tmp_path, monkeypatch, tiny_model):
    model = tiny_model(tokenizer)
    interrupt_at_call(monkeypatch, 8)  # checkpoints at steps 3 and 6, then Ctrl-C during step 8
    with pytest.raises(KeyboardInterrupt) as interrupt:
        train(model, tokenizer, TRAIN, VALID, "nll", steps=12, checkpoint_dir=tmp_path, **FAST)
    assert "resume=True" in " ".join(getattr(interrupt.value, "__notes__", []))
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 6
    fresh = tiny_model(tokenizer, seed=99)
    record = load_checkpoint(tmp_path, fresh)
    assert record["step"] == 6 and [row["step"] for row in record["history"]] == [0, 3, 6]
    # the interrupted step 8 never reached optimizer.step(), and step 7 made no checkpoint
    assert not same_weights(weights(fresh), weights(model))


def test_interrupt_while_writing_a_checkpoint_keeps_the_previous_one(tokenizer, tmp_path, monkeypatch, tiny_model):
    import safetensors.torch
    real_save, saves = safetensors.torch.save_file, []

    def save_then_interrupt(tensors, filename, metadata=None):
        saves.append(1)
        if len(saves) == 3:  # the second checkpoint's weights (the first save was the asft anchor)
            with open(filename, "wb") as f:
                f.write(b"half a file")
            raise KeyboardInterrupt
        return real_save(tensors, filename, metadata=metadata)
    monkeypatch.setattr(safetensors.torch, "save_file", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(tokenizer), tokenizer, TRAIN, None, "asft", steps=9, checkpoint_dir=tmp_path, **FAST)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    monkeypatch.undo()
    assert load_checkpoint(tmp_path, tiny_model(tokenizer))["step"] == 3


def test_resume_continues_exactly_where_the_interrupted_run_stopped(tokenizer, tmp_path, monkeypatch, tiny_model):
    settings = dict(steps=12, objective="dft", **FAST)
    straight = train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, **settings)

    interrupt_at_call(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, checkpoint_dir=tmp_path, **settings)
    monkeypatch.undo()
    resumed = train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, checkpoint_dir=tmp_path, resume=True, **settings)
    pd.testing.assert_frame_equal(resumed.history, straight.history, check_exact=True)
    assert same_weights(weights(resumed.model), weights(straight.model))

    with pytest.raises(ValueError, match="different settings"):
        train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, checkpoint_dir=tmp_path, resume=True,
              **{**settings, "lr": 1e-3})


def test_bad_arguments_raise_clear_errors(tokenizer, tiny_model):
    model = tiny_model(tokenizer)
    with pytest.raises(ValueError, match="steps"):
        train(model, tokenizer, TRAIN, steps=0)
    with pytest.raises(ValueError, match="Unknown objective"):
        train(model, tokenizer, TRAIN, objective="mle")
    with pytest.raises(ValueError, match="lr"):
        train(model, tokenizer, TRAIN, lr=-1.0)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        train("gpt2", tokenizer, TRAIN)


def test_progress_bar_follows_the_argument_then_the_setting(monkeypatch):
    monkeypatch.delenv("DFTLAB_PROGRESS", raising=False)
    assert progress_enabled(True) is True
    assert progress_enabled(False) is False
    monkeypatch.setenv("DFTLAB_PROGRESS", "1")
    assert progress_enabled(False) is False  # the argument wins
    monkeypatch.setenv("DFTLAB_PROGRESS", "1")
    assert progress_enabled(None) is True
    monkeypatch.setenv("DFTLAB_PROGRESS", "0")
    assert progress_enabled(None) is False


def test_progress_bar_is_on_in_a_notebook_kernel_and_off_in_a_pipe(monkeypatch):
    import sys
    import types

    monkeypatch.delenv("DFTLAB_PROGRESS", raising=False)
    monkeypatch.setattr(sys, "stdout", open(os.devnull, "w"))  # not a terminal
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert progress_enabled(None) is False
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert progress_enabled(None) is True


# Ctrl-C at steps drawn at random (from a fixed seed, so a failure can be replayed): whatever the step, no
# half-written file is left, and resuming gives exactly the history of a run that was never interrupted.
RANDOM_INTERRUPT_CALLS = sorted(__import__("random").Random(2026).sample(range(1, 13), 4))


@pytest.mark.parametrize("interrupt_call", RANDOM_INTERRUPT_CALLS)
def test_an_interrupt_at_a_random_step_never_loses_the_run(tokenizer, tmp_path, monkeypatch, interrupt_call, tiny_model):
    settings = dict(steps=12, objective="nll", **FAST)
    straight = train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, **settings)
    interrupt_at_call(monkeypatch, interrupt_call)
    with pytest.raises(KeyboardInterrupt):
        train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, checkpoint_dir=tmp_path, **settings)
    monkeypatch.undo()
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
    resumed = train(tiny_model(tokenizer), tokenizer, TRAIN, VALID, checkpoint_dir=tmp_path,
                    resume=(tmp_path / "checkpoint.json").exists(), **settings)
    pd.testing.assert_frame_equal(resumed.history, straight.history, check_exact=True)



def test_train_step_is_short_enough_to_read_whole_and_chapter_3_prints_it_whole():
    """Chapter 3 prints `train_step` with inspect.getsource and reads it line by line: it must stay a short function,
    and the chapter's stored output must be today's source."""
    import inspect
    from pathlib import Path

    import nbformat

    source = inspect.getsource(train_module.train_step)
    code = [line for line in source.split('"""')[-1].splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(code) <= 16, f"train_step has {len(code)} lines of code; chapter 3 reads it whole, keep it short"
    chapter = nbformat.read(Path(__file__).resolve().parents[1] / "chapters" / "03_sft.ipynb", as_version=4)
    cells = [cell for cell in chapter.cells if cell.cell_type == "code" and "getsource(train.train_step)" in cell.source]
    assert cells, "chapter 3 no longer prints train.train_step"
    printed = "".join(output.get("text", "") for output in cells[0].outputs)
    assert printed.strip() == source.strip(), "chapter 3's printed train_step is out of date: re-execute the chapter"


def test_train_leaves_torch_global_generator_as_it_found_it(tokenizer, tiny_model):
    model = tiny_model(tokenizer)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train(model, tokenizer, TRAIN, None, "nll", steps=2, progress=False, **FAST)
    assert torch.equal(torch.rand(3), expected)


def test_a_non_finite_loss_stops_train_step_before_the_weights_change(tokenizer, tiny_model):
    from dftlab import data

    model = tiny_model(tokenizer)
    before = weights(model)
    optimizer = train_module.make_optimizer(model, 1e-3, 0.0)
    batch = next(data.iterate_batches(data.encode_examples(tokenizer, TRAIN, 64), 4, data.pad_id_of(tokenizer)))

    def broken(logits, labels):
        return (logits * float("nan")).sum()

    with pytest.raises(FloatingPointError, match="loss was nan"):
        train_module.train_step(model, optimizer, batch, broken, lr=1e-3)
    assert same_weights(before, weights(model))
