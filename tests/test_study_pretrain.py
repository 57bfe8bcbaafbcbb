"""The pretraining recipe, run at toy size: deterministic, complete, and never half-written."""
import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from dftlab.study import pretrain
from dftlab.storage import verify_checksums

TOY = dict(vocab_size=400, n_layer=1, n_embd=32, n_head=2, n_positions=32, steps=12, batch_size=4,
           warmup_steps=2, tinytales_stories=100, max_documents=300, anneal_steps=4)


@pytest.fixture(scope="module")
def toy_run():
    config = pretrain.PretrainConfig(**TOY)
    return config, pretrain.pretrain(config, log=lambda *_: None)


def test_pretraining_is_deterministic(toy_run):
    config, (model, _, report) = toy_run
    model_again, _, report_again = pretrain.pretrain(config, log=lambda *_: None)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, model_again.state_dict()[name]), name
    assert report["valid_loss"] == report_again["valid_loss"]


def test_pretraining_lowers_the_loss(toy_run):
    config, (model, tokenizer, report) = toy_run
    uniform = torch.log(torch.tensor(float(len(tokenizer)))).item()
    assert report["valid_loss_stories"] < uniform and report["valid_loss"] < report["train_loss"] + 5


@pytest.mark.slow
def test_model_folder_is_complete_and_verified(toy_run, tmp_path):
    config, (model, tokenizer, report) = toy_run
    target = pretrain.write_model_folder(model, tokenizer, config, report, tmp_path / "toy-gpt2", "toy-gpt2")
    names = {p.name for p in target.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "SHA256SUMS", "MODEL_CARD.md"} <= names
    verify_checksums(target, "")
    weights = load_file(target / "model.safetensors")
    assert set(weights) <= set(model.state_dict())
    card = (target / "MODEL_CARD.md").read_text()
    assert f"{report['parameters']:,}" in card and "perplexity" in card and "valid stories" in card
    assert json.loads((target / "pretrain_report.json").read_text())["config"]["seed"] == config.seed
    assert not (tmp_path / "toy-gpt2.staging").exists()


@pytest.mark.slow
def test_a_crash_while_writing_keeps_the_old_model(toy_run, tmp_path, monkeypatch):
    config, (model, tokenizer, report) = toy_run
    target = pretrain.write_model_folder(model, tokenizer, config, report, tmp_path / "toy-gpt2", "toy-gpt2")
    before = (target / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "model_card", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrain.write_model_folder(model, tokenizer, config, report, target, "toy-gpt2")
    assert (target / "model.safetensors").read_bytes() == before
    verify_checksums(target, "")


def test_aligned_blocks_start_at_a_document_and_never_split_one(toy_run):
    config, (_, tokenizer, _) = toy_run
    documents = ["Title: The fox and the forest.\nStory: Once upon a time, a fox lived in the forest.",
                 "Title: The owl and the river.\nStory: One day, a kind owl lived near the river. The end.",
                 "Short one."]
    blocks = pretrain.make_aligned_blocks(tokenizer, documents, 48)
    eos = tokenizer.eos_token_id
    inputs, labels = pretrain.block_inputs_and_labels(blocks, eos)
    decoded = [tokenizer.decode([t for t in row.tolist() if t != pretrain.PAD_MARK]) for row in blocks]
    for document in documents:  # each document sits whole inside exactly one block, right after a block start or EOS
        assert sum(document in text for text in decoded) == 1
    for row in blocks:
        starts = [i for i, t in enumerate(row.tolist()) if t == pretrain.PAD_MARK]
        assert starts == list(range(starts[0], len(row))) if starts else True  # padding only at the end
    assert (labels[blocks == pretrain.PAD_MARK] == -100).all() and (inputs != pretrain.PAD_MARK).all()


def test_padding_costs_no_loss(toy_run):
    config, (model, tokenizer, _) = toy_run
    eos = tokenizer.eos_token_id
    short = pretrain.make_aligned_blocks(tokenizer, ["a b c"], 16)
    padded = pretrain.make_aligned_blocks(tokenizer, ["a b c"], 32)
    assert pretrain.block_loss(model, short, eos) == pytest.approx(pretrain.block_loss(model, padded, eos), rel=1e-5)


def test_the_weak_prior_trains_on_english_only():
    config = pretrain.PretrainConfig(**{**TOY, "corpus": "english", "story_fraction": 0.0, "anneal_steps": 0})
    english, stories = pretrain.build_documents(config)
    tokenizer = pretrain.train_tokenizer(english + stories, config.vocab_size)
    blocks = pretrain.training_blocks(config, tokenizer, english, stories)
    assert set(blocks) == {"train_english", "valid_english"}
    text = tokenizer.decode(blocks["train_english"][:50].flatten().tolist())
    assert "Title:" not in text and "Story:" not in text


def test_story_blocks_fill_their_share_of_every_batch():
    config = pretrain.PretrainConfig(**{**TOY, "story_fraction": 0.75})
    english, stories = pretrain.build_documents(config)
    tokenizer = pretrain.train_tokenizer(english + stories, config.vocab_size)
    blocks = pretrain.training_blocks(config, tokenizer, english, stories)
    assert pretrain._batch_rows(config, blocks) == {"english": 1, "stories": 3}
    first = tokenizer.decode([t for t in blocks["train_stories"][0].tolist() if t != pretrain.PAD_MARK])
    assert first.startswith("Title: The ")


@pytest.mark.parametrize("changes, words", [
    ({"corpus": "stories"}, ("corpus", "english")),
    ({"story_fraction": 1.0}, ("story_fraction", "[0, 1)")),
    ({"corpus": "english", "story_fraction": 0.5, "anneal_steps": 0}, ("story_fraction", "english")),
    ({"corpus": "english", "story_fraction": 0.0}, ("anneal_steps", "english")),
])
def test_bad_recipes_are_refused(changes, words):
    with pytest.raises(ValueError) as error:
        pretrain.PretrainConfig(**{**TOY, **changes})
    assert all(word in str(error.value) for word in words)


def test_both_priors_are_named_and_recipes_differ():
    assert {p["name"] for p in pretrain.PRIORS.values()} == {"tiny-gpt2", "tiny-gpt2-english"}
    assert pretrain.PRIORS["weak"]["recipe"]["corpus"] == "english"


def test_every_recipe_setting_says_what_it_means_in_the_help(capsys):
    with pytest.raises(SystemExit):
        pretrain.main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for recipe_field in dataclasses.fields(pretrain.PretrainConfig):
        meaning = " ".join(recipe_field.metadata["meaning"].split())
        assert f"{meaning} (strong prior: {recipe_field.default!r})" in help_text
        assert f"{meaning} (strong prior: {recipe_field.default!r}) (default" not in help_text  # not argparse's None
