"""dftlab's objectives against TRL's SFTTrainer: same batch, same loss, same gradients.

TRL 1.16 computes `loss_type="dft"` as sum over completion tokens of -log p * sg(p), divided by the
number of completion tokens (or by `num_items_in_batch` across gradient accumulation). dftlab's
`dft` through `causal_lm_loss` must agree with it to float32 rounding.
"""
import warnings

import pytest
import torch
import trl  # noqa: F401 -- pinned in pyproject.toml: a missing trl is a broken environment, not a skip

import datasets  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402
from trl import SFTConfig, SFTTrainer  # noqa: E402

from dftlab.objectives import causal_lm_loss, make_compute_loss_func  # noqa: E402

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
