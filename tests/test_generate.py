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


@torch.no_grad()
def _step_by_step(model, tokenizer, prompt, num_samples, seed, max_new_tokens, **settings):
    """The loop written out: no cache, temperature / top-k / top-p with the filters of dftlab.distributions."""
    from dftlab.distributions import top_k_filter, top_p_filter

    generator = torch.Generator().manual_seed(seed)
    rows = [tokenizer(prompt).input_ids for _ in range(num_samples)]
    start, eos = len(rows[0]), tokenizer.eos_token_id
    for _ in range(max_new_tokens):
        logits = model(input_ids=torch.tensor(rows)).logits[:, -1].double() / settings.get("temperature", 1.0)
        if settings.get("top_k"):
            logits = top_k_filter(logits, settings["top_k"])
        if settings.get("top_p"):
            logits = top_p_filter(logits, settings["top_p"])
        draws = torch.multinomial(torch.softmax(logits, -1), 1, generator=generator)[:, 0].tolist()
        rows = [row + [eos if eos in row[start:] else draw] for row, draw in zip(rows, draws)]
    return [tokenizer.decode(row[start:row.index(eos, start)] if eos in row[start:] else row[start:]) for row in rows]


@pytest.mark.parametrize("settings", [{"temperature": 1.0}, {"temperature": 0.7, "top_p": 0.9},
                                      {"temperature": 1.3, "top_k": 20, "top_p": 0.95}])
def test_sample_completions_draws_what_the_step_by_step_loop_draws(model_and_tokenizer, settings):
    model, tokenizer = model_and_tokenizer
    samples = generate.sample_completions(model, tokenizer, ["And it came to pass"], 3, max_new_tokens=20, seed=4,
                                          **settings)
    assert [s["completion"] for s in samples] == _step_by_step(model, tokenizer, "And it came to pass", 3,
                                                                4 * 1_000_003, 20, **settings)


def test_sample_ids_without_stopping_rules_out_the_end_and_applies_the_penalty(model_and_tokenizer):
    from dftlab.distributions import repetition_penalty
    from dftlab.sampling import SamplerSettings

    model, tokenizer = model_and_tokenizer
    ids, eos = tokenizer("The fox").input_ids, tokenizer.eos_token_id
    [new] = generate.sample_ids(model, ids, 1, SamplerSettings(greedy=True, repetition_penalty=1.5),
                                torch.Generator().manual_seed(0), 15, eos, stop_at_eos=False)
    assert len(new) == 15 and eos not in new
    text = list(ids)
    with torch.no_grad():
        for _ in range(15):  # greedy with the penalty, written out
            logits = model(input_ids=torch.tensor([text])).logits[0, -1].double()
            logits[eos] = float("-inf")
            text.append(int(repetition_penalty(logits, text, 1.5).argmax()))
    assert new == text[len(ids):]
