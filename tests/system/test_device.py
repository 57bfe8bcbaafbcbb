"""`load_model(device=...)` end to end: training, generation, the losses and the metrics all take the device from
the model, so a model on any device works with batches built on the CPU.

The CPU case runs everywhere; the CUDA case runs where a GPU is present, and must agree with the CPU numbers
(elsewhere it is reported as skipped, with the reason).
"""
import math

import pytest
import torch

import dftlab
from dftlab import generate, metrics, objectives
from dftlab.data import device_of, make_batches
from dftlab.tinytales import TinyTales
from dftlab.train import evaluate, train

pytestmark = pytest.mark.slow  # trains and samples end to end on each device: `make test` only, not the fast tier

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                          reason="no CUDA GPU here: the CUDA case needs one"))]
STORIES = TinyTales().sample(8, seed=3)


def _run_everything(device: str) -> dict:
    model, tokenizer = dftlab.load_model(device=device)
    assert device_of(model).type == device
    batches = make_batches(tokenizer, STORIES[:4], batch_size=4, shuffle=False)  # built on the CPU
    numbers = {"loss": float(objectives.causal_lm_loss(model, batches[0], "dft")),
               "entropy": metrics.predictive_entropy(model, batches),
               "log_probs": metrics.completion_log_probs(model, tokenizer, STORIES[:2]).tolist(),
               "valid_nll": evaluate(model, batches)["nll"]}
    options = metrics.option_probabilities(model, tokenizer, [STORIES[0]["prompt"]], ["Once upon a time,", "One day,"])
    numbers["options"] = options["prob"].tolist()
    anchored = train(model, tokenizer, STORIES, STORIES[:4], "asft", steps=2, batch_size=4, eval_every=2,
                     progress=False)
    assert device_of(anchored.model).type == device
    numbers["trained_nll"] = anchored.final_metrics["valid_nll"]
    numbers["samples"] = generate.sample_completions(model, tokenizer, [STORIES[0]["prompt"]], max_new_tokens=8, seed=1)
    numbers["next_token"] = generate.next_token_probs(model, tokenizer, "Title:").sum().item()
    return numbers


@pytest.mark.parametrize("device", DEVICES)
def test_every_step_runs_on_the_models_device(device):
    numbers = _run_everything(device)
    assert all(math.isfinite(value) for key, value in numbers.items() if isinstance(value, float))
    assert numbers["next_token"] == pytest.approx(1.0)
    if device != "cpu":
        on_cpu = _run_everything("cpu")
        for key in ("loss", "entropy", "valid_nll", "trained_nll"):
            assert numbers[key] == pytest.approx(on_cpu[key], rel=1e-3), key
        assert numbers["log_probs"] == pytest.approx(on_cpu["log_probs"], rel=1e-3)


def test_an_unknown_device_is_refused():
    with pytest.raises(ValueError, match="device"):
        dftlab.load_model(device="not-a-device")
