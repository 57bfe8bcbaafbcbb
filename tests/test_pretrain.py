"""The pretraining recipe, run at toy size: deterministic, complete, and never half-written."""
import json

import pytest
import torch
from safetensors.torch import load_file

from dftlab import pretrain
from dftlab.storage import verify_checksums

TOY = dict(vocab_size=400, n_layer=1, n_embd=32, n_head=2, n_positions=32, steps=12, batch_size=4,
           warmup_steps=2, tinytales_stories=100, max_documents=300)


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
    assert report["valid_loss"] < torch.log(torch.tensor(float(len(tokenizer)))).item()


def test_model_folder_is_complete_and_verified(toy_run, tmp_path):
    config, (model, tokenizer, report) = toy_run
    target = pretrain.write_model_folder(model, tokenizer, config, report, tmp_path / "toy-gpt2")
    names = {p.name for p in target.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "SHA256SUMS", "MODEL_CARD.md"} <= names
    verify_checksums(target, "")
    weights = load_file(target / "model.safetensors")
    assert set(weights) <= set(model.state_dict())
    card = (target / "MODEL_CARD.md").read_text()
    assert f"{report['parameters']:,}" in card and "perplexity" in card
    assert json.loads((target / "pretrain_report.json").read_text())["config"]["seed"] == config.seed
    assert not (tmp_path / "toy-gpt2.staging").exists()


def test_a_crash_while_writing_keeps_the_old_model(toy_run, tmp_path, monkeypatch):
    config, (model, tokenizer, report) = toy_run
    target = pretrain.write_model_folder(model, tokenizer, config, report, tmp_path / "toy-gpt2")
    before = (target / "model.safetensors").read_bytes()

    def crash(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pretrain, "model_card", crash)
    with pytest.raises(KeyboardInterrupt):
        pretrain.write_model_folder(model, tokenizer, config, report, target)
    assert (target / "model.safetensors").read_bytes() == before
    verify_checksums(target, "")
