"""dftlab.objectives: each loss against its formula, hand-computed values and autograd, and against TRL's SFTTrainer.

TRL 1.16 computes `loss_type="dft"` as sum over completion tokens of -log p * sg(p), divided by the
number of completion tokens (or by `num_items_in_batch` across gradient accumulation). dftlab's
`dft` through `causal_lm_loss` must agree with it to float32 rounding."""

import itertools
import math
import warnings

import datasets
import pytest
import torch
import torch.nn.functional as F
import trl  # noqa: F401 -- pinned in pyproject.toml: a missing trl is a broken environment, not a skip
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast
from trl import SFTConfig, SFTTrainer

from dftlab.objectives import (IGNORE_INDEX, OBJECTIVES, asft, causal_lm_loss, dft, dft_floored, get_objective,
                               make_compute_loss_func, mix, nll, power, distribution_matching)


def random_batch(seed=0, batch=3, length=5, vocab=7, dtype=torch.float64):
    """Logits [B, T, V] and labels [B, T] with some positions ignored, as padding and prompts would be."""
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=generator, dtype=dtype)
    labels = torch.randint(0, vocab, (batch, length), generator=generator)
    labels[0, :2] = IGNORE_INDEX
    labels[2, 3:] = IGNORE_INDEX
    return logits, labels


def gradient_of(loss_fn, logits, labels, **kwargs):
    logits = logits.clone().requires_grad_(True)
    (gradient,) = torch.autograd.grad(loss_fn(logits, labels, **kwargs), logits)
    return gradient


def logits_for(probabilities):
    """Logits whose softmax is exactly `probabilities` (rows sum to 1)."""
    return torch.tensor(probabilities, dtype=torch.float64).log()


def test_nll_of_uniform_logits_is_log_vocab():
    logits = torch.zeros(4, 8)
    labels = torch.tensor([0, 3, 7, 5])
    assert nll(logits, labels).item() == pytest.approx(math.log(8), rel=1e-6)


def test_hand_computed_values():
    # Targets get probabilities 0.5 and 0.25.
    logits = logits_for([[0.5, 0.25, 0.25], [0.25, 0.25, 0.5]])
    labels = torch.tensor([0, 1])
    log2 = math.log(2)
    assert nll(logits, labels).item() == pytest.approx((log2 + 2 * log2) / 2)
    assert dft(logits, labels).item() == pytest.approx((0.5 * log2 + 0.25 * 2 * log2) / 2)
    assert power(logits, labels, alpha=0.5).item() == pytest.approx(((1 - 0.5 ** 0.5) / 0.5 + (1 - 0.5) / 0.5) / 2)
    assert power(logits, labels, alpha=1.0).item() == pytest.approx(((1 - 0.5) + (1 - 0.25)) / 2)
    assert dft_floored(logits, labels, floor=0.4).item() == pytest.approx((0.5 * log2 + 0.4 * 2 * log2) / 2)
    assert mix(logits, labels, lam=0.3).item() == pytest.approx(
        0.3 * nll(logits, labels).item() + 0.7 * dft(logits, labels).item())


def test_asft_adds_lam_times_kl_from_base_to_model():
    logits = logits_for([[0.8, 0.2]])
    base_logits = torch.zeros(1, 2)  # uniform base
    labels = torch.tensor([0])
    kl = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    expected = -0.8 * math.log(0.8) + 0.1 * kl
    assert asft(logits, labels, base_logits.double(), lam=0.1).item() == pytest.approx(expected)


def test_token_mean_is_sum_over_supervised_tokens_divided_by_their_count():
    # Sequence 0 has one supervised token, sequence 1 has three: a token mean weighs them 1:3,
    # a mean of per-sequence means would weigh them 1:1.
    logits = logits_for([[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]],
                         [[0.9, 0.1], [0.9, 0.1], [0.9, 0.1]]])
    labels = torch.tensor([[0, IGNORE_INDEX, IGNORE_INDEX], [0, 0, 0]])
    per_token = [math.log(2), -math.log(0.9), -math.log(0.9), -math.log(0.9)]
    assert nll(logits, labels).item() == pytest.approx(sum(per_token) / 4)
    assert nll(logits, labels, reduction="sum").item() == pytest.approx(sum(per_token))


def test_nll_matches_torch_cross_entropy_with_ignore_index():
    logits, labels = random_batch()
    expected = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX)
    assert torch.allclose(nll(logits, labels), expected)
    # Also on already-flattened [N, V] input.
    assert torch.allclose(nll(logits.reshape(-1, 7), labels.reshape(-1)), expected)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_reduction_none_has_label_shape_and_zero_where_ignored(name):
    logits, labels = random_batch()
    extra = {"base_logits": torch.zeros_like(logits)} if name == "asft" else {}
    per_token = OBJECTIVES[name](logits, labels, reduction="none", **extra)
    assert per_token.shape == labels.shape
    assert (per_token[labels == IGNORE_INDEX] == 0).all()
    count = (labels != IGNORE_INDEX).sum()
    assert torch.allclose(per_token.sum() / count, OBJECTIVES[name](logits, labels, **extra))
    assert torch.allclose(per_token.sum(), OBJECTIVES[name](logits, labels, reduction="sum", **extra))


def test_dft_gradient_is_gradient_of_minus_mean_target_probability():
    logits, labels = random_batch()

    def minus_mean_probability(logits, labels):
        mask = labels != IGNORE_INDEX
        probs = logits.softmax(-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        return -(probs * mask).sum() / mask.sum()

    assert torch.allclose(gradient_of(dft, logits, labels), gradient_of(minus_mean_probability, logits, labels))


def test_power_tends_to_nll_as_alpha_goes_to_zero():
    logits, labels = random_batch()
    assert power(logits, labels, alpha=1e-6).item() == pytest.approx(nll(logits, labels).item(), abs=1e-5)
    assert torch.allclose(gradient_of(power, logits, labels, alpha=1e-6), gradient_of(nll, logits, labels), atol=1e-5)
    assert torch.equal(power(logits, labels, alpha=0), nll(logits, labels))


def test_power_at_alpha_one_has_the_gradient_of_dft():
    logits, labels = random_batch()
    assert torch.allclose(gradient_of(power, logits, labels, alpha=1.0), gradient_of(dft, logits, labels))


def test_mix_endpoints_are_nll_and_dft():
    logits, labels = random_batch()
    assert torch.allclose(mix(logits, labels, lam=1.0), nll(logits, labels))
    assert torch.allclose(mix(logits, labels, lam=0.0), dft(logits, labels))
    assert torch.allclose(gradient_of(mix, logits, labels, lam=1.0), gradient_of(nll, logits, labels))
    assert torch.allclose(gradient_of(mix, logits, labels, lam=0.0), gradient_of(dft, logits, labels))


def test_dft_floored_endpoints_and_floor_weight():
    logits, labels = random_batch()
    assert torch.allclose(gradient_of(dft_floored, logits, labels, floor=0.0), gradient_of(dft, logits, labels))
    assert torch.allclose(gradient_of(dft_floored, logits, labels, floor=1.0), gradient_of(nll, logits, labels))
    # A target with p = 0.05 < floor is weighted by the floor: 0.1 times the nll gradient.
    rare = logits_for([[0.05, 0.95]])
    label = torch.tensor([0])
    assert torch.allclose(gradient_of(dft_floored, rare, label, floor=0.1), 0.1 * gradient_of(nll, rare, label))


def test_asft_with_base_equal_to_model_is_dft():
    logits, labels = random_batch()
    base_logits = logits.clone()
    assert torch.allclose(asft(logits, labels, base_logits), dft(logits, labels))
    assert torch.allclose(gradient_of(asft, logits, labels, base_logits=base_logits), gradient_of(dft, logits, labels))


def test_half_precision_logits_are_accepted():
    logits, labels = random_batch(dtype=torch.float32)
    assert torch.allclose(dft(logits.bfloat16(), labels), dft(logits.bfloat16().float(), labels))


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_batch_without_supervised_tokens_gives_zero_with_a_gradient(name):
    logits = torch.randn(2, 3, 5, requires_grad=True)
    labels = torch.full((2, 3), IGNORE_INDEX)
    extra = {"base_logits": torch.randn(2, 3, 5)} if name == "asft" else {}
    loss = OBJECTIVES[name](logits, labels, **extra)
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and (logits.grad == 0).all()


@pytest.mark.parametrize("call, message", [
    (lambda: nll(torch.randn(3, 5), torch.tensor([0, 1])), "shape"),
    (lambda: nll(torch.randint(0, 3, (3, 5)), torch.tensor([0, 1, 2])), "floats"),
    (lambda: nll(torch.randn(3, 5), torch.tensor([0.0, 1.0, 2.0])), "integer"),
    (lambda: nll(torch.randn(3, 5), torch.tensor([0, 5, 1])), "outside"),
    (lambda: nll(torch.randn(3, 5), torch.tensor([0, -3, 1])), "outside"),
    (lambda: nll(torch.tensor([[0.0, float("nan")]]), torch.tensor([0])), "NaN"),
    (lambda: nll(torch.tensor([[0.0, float("inf")]]), torch.tensor([0])), "NaN"),
    (lambda: nll(torch.randn(5), torch.tensor(0)), "shape"),
    (lambda: nll(torch.randn(3, 5), torch.tensor([0, 1, 2]), reduction="avg"), "reduction"),
    (lambda: power(torch.randn(3, 5), torch.tensor([0, 1, 2]), alpha=-0.5), "alpha"),
    (lambda: power(torch.randn(3, 5), torch.tensor([0, 1, 2]), alpha=float("nan")), "alpha"),
    (lambda: mix(torch.randn(3, 5), torch.tensor([0, 1, 2]), lam=1.5), "lam"),
    (lambda: dft_floored(torch.randn(3, 5), torch.tensor([0, 1, 2]), floor=-0.1), "floor"),
    (lambda: asft(torch.randn(3, 5), torch.tensor([0, 1, 2]), torch.randn(3, 4)), "base_logits"),
    (lambda: asft(torch.randn(3, 5), torch.tensor([0, 1, 2]), torch.randn(3, 5), lam=-1), "lam"),
    (lambda: get_objective("dtf"), "Valid names"),
    (lambda: make_compute_loss_func("asft"), "base model"),
])
def test_bad_input_raises_value_error_naming_the_problem(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.fixture(scope="module")
def tiny_gpt2(make_tiny_gpt2):
    return make_tiny_gpt2(101, n_positions=32, dropout=False).eval()


@pytest.fixture(scope="module")
def lm_batch():
    generator = torch.Generator().manual_seed(1)
    input_ids = torch.randint(0, 101, (3, 9), generator=generator)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 6:] = 0  # right padding
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    labels[:, :3] = IGNORE_INDEX  # a prompt
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def test_causal_lm_loss_nll_equals_the_models_own_loss(tiny_gpt2, lm_batch):
    expected = tiny_gpt2(**lm_batch).loss
    assert torch.allclose(causal_lm_loss(tiny_gpt2, lm_batch, "nll"), expected, atol=1e-6)


def test_causal_lm_loss_accepts_a_callable_and_defaults_labels_to_real_tokens(tiny_gpt2, lm_batch):
    batch = {key: lm_batch[key] for key in ("input_ids", "attention_mask")}
    padded_labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)
    expected = tiny_gpt2(**batch, labels=padded_labels).loss
    assert torch.allclose(causal_lm_loss(tiny_gpt2, batch, nll), expected, atol=1e-6)


def test_causal_lm_loss_asft_needs_a_base_model_and_equals_dft_against_itself(tiny_gpt2, lm_batch):
    with pytest.raises(ValueError, match="base_model"):
        causal_lm_loss(tiny_gpt2, lm_batch, "asft")
    anchored = causal_lm_loss(tiny_gpt2, lm_batch, "asft", base_model=tiny_gpt2, lam=0.5)
    assert torch.allclose(anchored, causal_lm_loss(tiny_gpt2, lm_batch, "dft"), atol=1e-6)


def test_compute_loss_func_shifts_and_divides_by_num_items_in_batch(tiny_gpt2, lm_batch):
    outputs = tiny_gpt2(input_ids=lm_batch["input_ids"], attention_mask=lm_batch["attention_mask"])
    shifted_logits, shifted_labels = outputs.logits[:, :-1], lm_batch["labels"][:, 1:]
    compute_loss_func = make_compute_loss_func("power", alpha=0.5)
    expected_mean = power(shifted_logits, shifted_labels, alpha=0.5)
    assert torch.allclose(compute_loss_func(outputs, lm_batch["labels"]), expected_mean)
    # Across gradient accumulation the Trainer counts the tokens of all micro-batches, e.g. 40.
    expected_sum = power(shifted_logits, shifted_labels, alpha=0.5, reduction="sum")
    assert torch.allclose(compute_loss_func(outputs, lm_batch["labels"], num_items_in_batch=torch.tensor(40)),
                          expected_sum / 40)
    assert torch.allclose(causal_lm_loss(tiny_gpt2, lm_batch, "power", alpha=0.5, num_items_in_batch=40),
                          expected_sum / 40)


def test_distribution_matching_by_hand():
    # Two positions, vocabulary 2. Targets 0 and 1, so f = (1/2, 1/2).
    probs = torch.tensor([[0.8, 0.2], [0.4, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    mean = probs.mean(0)  # p_bar = (0.6, 0.4)
    penalty = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)
    expected = (-math.log(0.8) - math.log(0.6)) / 2 + 2.0 * penalty
    assert mean.tolist() == pytest.approx([0.6, 0.4])
    assert distribution_matching(probs.log(), labels, lam=2.0).item() == pytest.approx(expected)
    assert distribution_matching(probs.log(), labels, lam=0.0).item() == pytest.approx(nll(probs.log(), labels).item())


def test_distribution_matching_penalty_vanishes_when_the_average_prediction_matches_the_batch():
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64)  # p_bar = (0.5, 0.5) = f
    labels = torch.tensor([[0, 1]])
    assert distribution_matching(probs.log()[None], labels, lam=5.0).item() == pytest.approx(
        nll(probs.log()[None], labels).item())


def test_distribution_matching_ignores_unsupervised_positions():
    logits = torch.randn(1, 3, 4, dtype=torch.float64)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    changed = logits.clone()
    changed[0, 0] = torch.tensor([9.0, -3.0, 0.0, 1.0])  # only the ignored position differs
    assert distribution_matching(logits, labels).item() == pytest.approx(distribution_matching(changed, labels).item())


def test_distribution_matching_keeps_the_maximum_likelihood_fixed_point():
    # Two contexts with their own true next-token distributions. At p = q the expected gradient (over
    # the targets drawn from q) of nll + lam * penalty is zero: the penalty does not move MLE's optimum.
    q = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    logits = q.log().clone().requires_grad_(True)
    expected_loss = 0.0
    for y1, y2 in itertools.product(range(3), repeat=2):
        weight = q[0, y1] * q[1, y2]
        expected_loss = expected_loss + weight * distribution_matching(logits, torch.tensor([y1, y2]), lam=3.0)
    (gradient,) = torch.autograd.grad(expected_loss, logits)
    assert gradient.abs().max().item() < 1e-12
    # ... while a p away from q has a non-zero expected gradient.
    other = torch.tensor([[0.3, 0.3, 0.4], [0.5, 0.3, 0.2]], dtype=torch.float64).log().requires_grad_(True)
    total = sum(q[0, a] * q[1, b] * distribution_matching(other, torch.tensor([a, b]), lam=3.0)
                for a, b in itertools.product(range(3), repeat=2))
    assert torch.autograd.grad(total, other)[0].abs().max().item() > 1e-3


def test_distribution_matching_rejects_a_negative_lam():
    with pytest.raises(ValueError, match="lam"):
        distribution_matching(torch.randn(2, 3), torch.tensor([0, 1]), lam=-1.0)


PROMPTS = ["the cat", "a dog", "the sun", "birds", "my aunt", "the river"]
COMPLETIONS = [" sat on the mat", " ran in the park", " is warm today", " sing in the morning",
               " bakes bread on sunday", " runs to the sea"]


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE trained here on the test sentences, so nothing is downloaded."""
    datasets.disable_progress_bars()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator([p + c for p, c in zip(PROMPTS, COMPLETIONS)], trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    return PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


@pytest.fixture(scope="module")
def make_trainer(make_tiny_gpt2):
    def make(tokenizer, tmp_path, loss_type="nll", compute_loss_func=None, **overrides):
        dataset = datasets.Dataset.from_dict({"prompt": PROMPTS, "completion": COMPLETIONS})
        settings = dict(output_dir=str(tmp_path), loss_type=loss_type, bf16=False, gradient_checkpointing=False,
                        report_to=[], disable_tqdm=True, completion_only_loss=True, max_steps=1,
                        per_device_train_batch_size=3, use_cpu=True, save_strategy="no", logging_strategy="no", seed=0)
        settings.update(overrides)
        model = make_tiny_gpt2(len(tokenizer), dropout=False, eos_token_id=tokenizer.eos_token_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            return SFTTrainer(model=model, args=SFTConfig(**settings), train_dataset=dataset,
                              processing_class=tokenizer, compute_loss_func=compute_loss_func)
    return make


def loss_and_gradients(model, compute):
    model.zero_grad()
    loss = compute()
    loss.backward()
    return loss.detach(), {name: p.grad.clone() for name, p in model.named_parameters()}


def first_batch(trainer):
    """A batch from the trainer's own data pipeline and collator: completion-only labels, prompt at -100."""
    batch = next(iter(trainer.get_train_dataloader()))
    assert (batch["labels"] == -100).any() and (batch["labels"] != -100).any()
    return batch


@pytest.mark.parametrize("loss_type", ["dft", "nll"])
@pytest.mark.parametrize("num_items_in_batch", [None, 50])
def test_loss_and_gradients_match_trl(tokenizer, tmp_path, make_trainer, loss_type, num_items_in_batch):
    trainer = make_trainer(tokenizer, tmp_path, loss_type=loss_type)
    model, batch = trainer.model, first_batch(trainer)
    trl_loss, trl_gradients = loss_and_gradients(
        model, lambda: trainer.compute_loss(model, dict(batch), num_items_in_batch=num_items_in_batch))
    our_loss, our_gradients = loss_and_gradients(
        model, lambda: causal_lm_loss(model, batch, loss_type, num_items_in_batch=num_items_in_batch))
    assert torch.allclose(our_loss, trl_loss, atol=1e-5, rtol=1e-5)
    for name, gradient in trl_gradients.items():
        assert torch.allclose(our_gradients[name], gradient, atol=1e-5, rtol=1e-4), name


def test_dft_and_nll_differ_on_this_batch(tokenizer, tmp_path, make_trainer):
    """Guards the parity test against comparing a loss with itself."""
    trainer = make_trainer(tokenizer, tmp_path)
    batch = first_batch(trainer)
    with torch.no_grad():
        assert causal_lm_loss(trainer.model, batch, "dft") < 0.5 * causal_lm_loss(trainer.model, batch, "nll")


def test_compute_loss_func_gives_trls_dft_loss(tokenizer, tmp_path, make_trainer):
    reference = make_trainer(tokenizer, tmp_path, loss_type="dft")
    ours = make_trainer(tokenizer, tmp_path, compute_loss_func=make_compute_loss_func("dft"))
    batch = first_batch(reference)
    assert torch.equal(batch["input_ids"], first_batch(ours)["input_ids"])
    for num_items_in_batch in (None, torch.tensor(50)):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            expected = reference.compute_loss(reference.model, dict(batch), num_items_in_batch=num_items_in_batch)
            got = ours.compute_loss(ours.model, dict(batch), num_items_in_batch=num_items_in_batch)
        assert torch.allclose(got, expected, atol=1e-6)


def test_one_training_step_with_accumulation_matches_trl(tokenizer, tmp_path, make_trainer):
    """A full Trainer step (SGD, two accumulated micro-batches) moves the weights the same way."""
    overrides = dict(optim="sgd", learning_rate=0.5, gradient_accumulation_steps=2, per_device_train_batch_size=2,
                     lr_scheduler_type="constant")
    reference = make_trainer(tokenizer, tmp_path, loss_type="dft", **overrides)
    ours = make_trainer(tokenizer, tmp_path, compute_loss_func=make_compute_loss_func("dft"), **overrides)
    start = {name: p.detach().clone() for name, p in reference.model.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reference.train()
        ours.train()
    ours_parameters = dict(ours.model.named_parameters())
    moved = 0.0
    for name, parameter in reference.model.named_parameters():
        step = parameter.detach() - start[name]
        moved = max(moved, step.abs().max().item())
        assert torch.allclose(ours_parameters[name].detach() - start[name], step, atol=1e-6), name
    assert moved > 1e-4  # the step did something
