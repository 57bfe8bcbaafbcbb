"""dftlab.metrics.model_stats: log-probabilities, predictive entropy, option probabilities and calibration."""

import math

import numpy as np
import pytest
import torch

from dftlab import metrics
from dftlab.data import make_batches
from dftlab.metrics import completion_log_probs, predictive_entropy

from conftest import UniformLM, WORDS, story


@pytest.fixture(scope="module")
def tiny_gpt2(make_tiny_gpt2):
    return make_tiny_gpt2(len(WORDS), n_positions=32).eval()


EXAMPLES = [story("cat ran"), story("dog slept home"), {"prompt": "a", "completion": "fox ran home ."}]


def test_completion_log_probs_equal_manual_sum(tokenizer, tiny_gpt2):
    example = EXAMPLES[1]
    prompt_ids = tokenizer(example["prompt"]).input_ids
    completion_ids = tokenizer(example["completion"]).input_ids + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        log_p = torch.log_softmax(tiny_gpt2(ids).logits[0].double(), dim=-1)
    # Token at position t is predicted by the logits at t - 1; sum over the completion tokens and EOS.
    manual = sum(float(log_p[t - 1, ids[0, t]]) for t in range(len(prompt_ids), ids.shape[1]))
    assert completion_log_probs(tiny_gpt2, tokenizer, [example])[0] == pytest.approx(manual, abs=1e-5)


def test_completion_log_probs_do_not_depend_on_batching(tokenizer, tiny_gpt2):
    together = completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=3)
    one_by_one = completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=1)
    assert together.dtype == np.float64 and together.shape == (3,)
    assert together == pytest.approx(one_by_one, abs=1e-5)
    assert (together < 0).all()


def test_completion_log_probs_of_uniform_model(tokenizer):
    # Every token has probability 1/V: "cat ran" + EOS is 3 tokens -> -3 log V; the others 4 and 5 tokens.
    v = len(WORDS)
    assert completion_log_probs(UniformLM(v), tokenizer, EXAMPLES) == pytest.approx(
        [-3 * math.log(v), -4 * math.log(v), -5 * math.log(v)])


def test_completion_log_probs_reject_bad_input(tokenizer, tiny_gpt2):
    with pytest.raises(ValueError, match="examples"):
        completion_log_probs(tiny_gpt2, tokenizer, [])
    with pytest.raises(ValueError, match=r"examples\[0\]\['prompt'\]"):
        completion_log_probs(tiny_gpt2, tokenizer, [story("cat ran", prompt="")])
    with pytest.raises(ValueError, match="context"):
        completion_log_probs(tiny_gpt2, tokenizer, [story("cat " * 40)])
    with pytest.raises(ValueError, match="batch_size"):
        completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=0)


def test_predictive_entropy_equals_manual_computation(tokenizer, tiny_gpt2):
    batches = make_batches(tokenizer, EXAMPLES, batch_size=2, shuffle=False)
    entropies = []
    with torch.no_grad():
        for batch in batches:
            logits = tiny_gpt2(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            for row in range(logits.shape[0]):
                for t in range(1, logits.shape[1]):
                    if batch["labels"][row, t] != -100:
                        p = torch.softmax(logits[row, t - 1].double(), dim=-1)
                        entropies.append(float(-(p * p.log()).sum()))
    # 3 + 4 + 5 supervised tokens (completion words and EOS), averaged token by token.
    assert len(entropies) == 12
    assert predictive_entropy(tiny_gpt2, batches) == pytest.approx(np.mean(entropies), abs=1e-5)
    # The uniform model's entropy is log V at every position.
    assert predictive_entropy(UniformLM(len(WORDS)), batches) == pytest.approx(math.log(len(WORDS)))


def test_predictive_entropy_restores_training_mode(tokenizer, tiny_gpt2):
    batches = make_batches(tokenizer, EXAMPLES, batch_size=3, shuffle=False)
    tiny_gpt2.train()
    try:
        predictive_entropy(tiny_gpt2, batches)
        assert tiny_gpt2.training
    finally:
        tiny_gpt2.eval()


def test_predictive_entropy_rejects_bad_input(tokenizer, tiny_gpt2):
    with pytest.raises(ValueError, match="batches is empty"):
        predictive_entropy(tiny_gpt2, [])
    with pytest.raises(ValueError, match=r"batches\[0\]"):
        predictive_entropy(tiny_gpt2, [{"input_ids": torch.zeros(1, 3, dtype=torch.long)}])
    batch = make_batches(tokenizer, EXAMPLES[:1], batch_size=1)[0]
    batch["labels"][:] = -100
    with pytest.raises(ValueError, match="supervised"):
        predictive_entropy(tiny_gpt2, [batch])


def test_option_probabilities_are_exact_products_of_token_probabilities(tokenizer):
    uniform = UniformLM(len(WORDS))
    table = metrics.option_probabilities(uniform, tokenizer, ["once there"], ["was a", "cat"],
                                         continuations=(" ran", " slept"))
    by_option = table.set_index("option")
    v = len(WORDS)
    assert by_option.loc["was a", "prob"] == pytest.approx(2 * v ** -3)  # two tokens, then one of two endings
    assert by_option.loc["cat", "prob"] == pytest.approx(2 * v ** -2)
    assert by_option["share"].sum() == pytest.approx(1.0)


def test_option_probabilities_sharpen_with_temperature(tokenizer, tiny_gpt2):
    options = ["cat", "dog", "fox"]
    warm = metrics.option_probabilities(tiny_gpt2, tokenizer, ["once there was a"], options, temperature=1.0)
    cold = metrics.option_probabilities(tiny_gpt2, tokenizer, ["once there was a"], options, temperature=0.5)
    # one token per option: the shares at T are softmax(z / T) renormalised, i.e. p ** (1 / T) renormalised
    expected = warm["prob"].to_numpy() ** 2
    assert cold["share"].to_numpy() == pytest.approx(expected / expected.sum(), rel=1e-6)


def test_target_probabilities_by_role_marks_the_copied_name(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16).eval()
    stories = [{"prompt": "Title: The fox and the forest.\nStory:", "completion": " Once upon a time, a fox sat."}]
    table = metrics.target_probabilities_by_role(model, tok, stories)
    completion_ids = tok(stories[0]["completion"], add_special_tokens=False).input_ids
    assert len(table) == len(completion_ids) + 1  # every completion token and the EOS
    marked = "".join(tok.decode([completion_ids[i]]) for i in table.index[table["role"] == "character"])
    assert marked.strip() == "fox"
    assert ((table["target_prob"] > 0) & (table["target_prob"] < 1)).all()


def test_target_probabilities_by_role_refuses_a_prompt_without_a_title(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16, seed=None).eval()
    with pytest.raises(ValueError, match="TinyTales title"):
        metrics.target_probabilities_by_role(model, tok, [{"prompt": "once upon", "completion": " a time"}])


def test_calibration_bins_by_hand():
    confidence = [0.05, 0.15, 0.15, 0.55, 0.95, 1.0]
    correct = [False, True, False, True, True, False]
    table = metrics.calibration_bins(confidence, correct, bins=10)
    assert list(table["count"]) == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]  # a confidence of exactly 1 is in the last bin
    assert table.loc[1, "confidence"] == pytest.approx(0.15) and table.loc[1, "accuracy"] == pytest.approx(0.5)
    assert table.loc[9, "confidence"] == pytest.approx(0.975) and table.loc[9, "accuracy"] == pytest.approx(0.5)
    assert table.loc[2, ["confidence", "accuracy"]].isna().all()
    assert np.allclose(table["bin_high"] - table["bin_low"], 0.1)
    # ECE: count-weighted |accuracy - confidence| over the filled bins; empty bins weigh nothing.
    expected = (1 * 0.05 + 2 * abs(0.5 - 0.15) + 1 * abs(1 - 0.55) + 2 * abs(0.5 - 0.975)) / 6
    assert metrics.expected_calibration_error(confidence, correct, bins=10) == pytest.approx(expected)


def test_a_calibrated_forecaster_has_ece_near_zero_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.2, 1.0, 200_000)
    calibrated = rng.uniform(size=confidence.size) < confidence
    assert metrics.expected_calibration_error(confidence, calibrated) < 0.01
    # Claiming certainty for the same predictions: accuracy is unchanged, the gap is 1 - accuracy.
    assert metrics.expected_calibration_error(np.ones_like(confidence), calibrated) == \
        pytest.approx(1 - calibrated.mean())


@pytest.mark.parametrize("confidence, correct, bins, match", [
    ([0.5, 1.2], [True, False], 10, "probabilities"),
    ([0.5], [True, False], 10, "one entry per prediction"),
    ([0.5], [True], 0, "bins"),
    ([], [], 10, "empty"),
])
def test_calibration_rejects_bad_input(confidence, correct, bins, match):
    with pytest.raises(ValueError, match=match):
        metrics.expected_calibration_error(confidence, correct, bins=bins)


def test_calibration_table_scores_the_top_prediction_at_every_completion_token(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16).eval()
    stories = [{"prompt": "Title: The fox and the forest.\nStory:", "completion": " Once upon a time, a fox sat."},
               {"prompt": "Title: The cat and the hill.\nStory:", "completion": " Long ago, a cat ran."}]
    predictions = metrics.top_predictions(model, tok, stories, batch_size=1)
    roles = metrics.target_probabilities_by_role(model, tok, stories)
    assert len(predictions) == len(roles)  # every completion token and each EOS
    assert np.allclose(predictions["target_prob"], roles["target_prob"], atol=1e-6)
    assert (predictions["confidence"] >= predictions["target_prob"] - 1e-9).all()
    right = predictions[predictions["correct"]]  # where the top prediction is the target, it has its probability
    assert np.allclose(right["confidence"], right["target_prob"])
    table = metrics.calibration_table(model, tok, stories, bins=5)
    assert table["count"].sum() == len(predictions) and len(table) == 5
    assert table.equals(metrics.calibration_bins(predictions["confidence"], predictions["correct"], 5))
