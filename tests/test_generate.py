import pytest
import torch

import dftlab
from dftlab import generate


@pytest.fixture(scope="module")
def model_and_tokenizer():
    return dftlab.load_model()


def test_sampling_is_seeded_and_independent_of_batching(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    both = generate.sample_completions(model, tokenizer, ["And", "The"], num_samples=3, max_new_tokens=12, seed=5)
    again = generate.sample_completions(model, tokenizer, ["And", "The"], num_samples=3, max_new_tokens=12, seed=5)
    other_seed = generate.sample_completions(model, tokenizer, ["And", "The"], num_samples=3, max_new_tokens=12, seed=6)
    assert both == again and both != other_seed
    assert [s["prompt"] for s in both] == ["And"] * 3 + ["The"] * 3


def test_greedy_matches_argmax_of_next_token(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    probs = generate.next_token_probs(model, tokenizer, "And God said")
    first = generate.sample_completions(model, tokenizer, ["And God said"], greedy=True, max_new_tokens=1)[0]
    assert first["completion"] == tokenizer.decode([int(probs.argmax())])


def test_top_k_one_is_greedy(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    greedy = generate.sample_completions(model, tokenizer, ["In the beginning"], greedy=True, max_new_tokens=8)
    top1 = generate.sample_completions(model, tokenizer, ["In the beginning"], top_k=1, max_new_tokens=8, seed=3)
    assert greedy == top1


def test_next_token_probs_is_a_distribution(model_and_tokenizer):
    probs = generate.next_token_probs(*model_and_tokenizer, "The")
    assert probs.sum().item() == pytest.approx(1.0) and (probs >= 0).all()
    table = generate.top_tokens(probs, model_and_tokenizer[1], k=5)
    assert list(table["probability"]) == sorted(table["probability"], reverse=True)


@pytest.mark.parametrize("kwargs, match", [
    ({"prompts": "And"}, "list"), ({"prompts": []}, "list"), ({"prompts": [""]}, "non-empty"),
    ({"prompts": ["And"], "num_samples": 0}, "num_samples"), ({"prompts": ["And"], "temperature": 0}, "temperature"),
    ({"prompts": ["And"], "max_new_tokens": 0}, "max_new_tokens"),
    ({"prompts": ["word " * 400]}, "context"),
])
def test_bad_input(model_and_tokenizer, kwargs, match):
    with pytest.raises(ValueError, match=match):
        generate.sample_completions(*model_and_tokenizer, **kwargs)
