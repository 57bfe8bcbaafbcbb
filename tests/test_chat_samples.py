"""dftlab.chat_samples: the chat template, the committed sample set of SmolLM2-135M-Instruct, and chat examples."""

import warnings

import pytest
import torch

from dftlab import chat_samples, models
from dftlab.chat_samples import chat_examples, story_from_response
from dftlab.study import scale


@pytest.mark.slow
def test_the_chat_template_is_what_the_model_is_given(converted):
    _, _, tokenizer = converted
    text = chat_samples.chat_prompt_text(tokenizer, "Write a poem.")
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWrite a poem.<|im_end|>" in text


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
                                           max_new_tokens=12, seed=chat_samples.batch_seed(config["seed"], 0, 0),
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


class TemplateTokenizer:
    """Just enough of a chat tokenizer: a template that wraps the user's turn."""
    chat_template = "stub"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return f"<user>{messages[0]['content']}</user><assistant>\n"


def test_chat_examples_put_the_title_in_the_users_turn_and_back():
    story = {"prompt": "Title: The cat and the park.\nStory:", "completion": " Once upon a time, a cat sat."}
    [chat] = chat_examples(TemplateTokenizer(), [story])
    assert chat == {"prompt": "<user>Title: The cat and the park.\nStory:</user><assistant>\n",
                    "completion": "Once upon a time, a cat sat."}
    assert story_from_response(story["prompt"], chat["completion"] + "\n") == story
    dataset = scale.examples_dataset([story], chat_tokenizer=TemplateTokenizer())
    assert dataset[0] == chat
