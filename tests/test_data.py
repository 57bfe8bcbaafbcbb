"""Tests for dftlab.data: label masking, truncation, padding, packing, batching."""
import pytest
import torch

from dftlab.data import (IGNORE_INDEX, collate, encode_example, encode_examples, make_batches, mask_prompt, pack)

@pytest.fixture(scope="module")
def tokenizer(make_tiny_tokenizer):
    return make_tiny_tokenizer()


def examples(n):
    return [{"prompt": f"question {i}:", "completion": " the cat sat" + " on the mat" * (i % 3)} for i in range(n)]


def test_mask_prompt_list_and_tensor():
    assert mask_prompt([5, 6, 7, 8], 2) == [-100, -100, 7, 8]
    assert mask_prompt([5, 6], 0) == [5, 6]
    ids = torch.tensor([5, 6, 7, 8])
    labels = mask_prompt(ids, 3)
    assert labels.tolist() == [-100, -100, -100, 8]
    assert ids.tolist() == [5, 6, 7, 8], "the input must not be modified"
    with pytest.raises(ValueError, match="prompt_length"):
        mask_prompt([5, 6], 3)


def test_encode_example_masks_the_prompt_and_appends_eos(tokenizer):
    example = {"prompt": "question: what colour is the sky?", "completion": " answer: blue."}
    prompt_ids = tokenizer(example["prompt"]).input_ids
    completion_ids = tokenizer(example["completion"]).input_ids
    encoded = encode_example(tokenizer, example)
    assert encoded["input_ids"] == prompt_ids + completion_ids + [tokenizer.eos_token_id]
    assert encoded["labels"] == [-100] * len(prompt_ids) + completion_ids + [tokenizer.eos_token_id]


def test_truncation_keeps_the_prompt_and_cuts_the_completion(tokenizer):
    example = {"prompt": "the cat", "completion": " sat on the mat. the dog ate the bone."}
    prompt_length = len(tokenizer(example["prompt"]).input_ids)
    encoded = encode_example(tokenizer, example, max_length=prompt_length + 2)
    assert len(encoded["input_ids"]) == len(encoded["labels"]) == prompt_length + 2
    assert encoded["labels"][:prompt_length] == [-100] * prompt_length
    assert encoded["labels"][prompt_length:] == encoded["input_ids"][prompt_length:]
    assert tokenizer.eos_token_id not in encoded["input_ids"]
    with pytest.raises(ValueError, match="max_length"):
        encode_example(tokenizer, example, max_length=prompt_length)


def test_collate_pads_right_and_ignores_padding():
    features = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}]
    batch = collate(features, pad_token_id=9)
    assert batch["input_ids"].tolist() == [[1, 2, 3], [4, 9, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, 2, 3], [4, -100, -100]]
    assert all(t.dtype == torch.long for t in batch.values())
    with pytest.raises(ValueError, match="labels"):
        collate([{"input_ids": [1, 2], "labels": [1]}], pad_token_id=0)


def test_pack_preserves_every_token_and_label(tokenizer):
    features = encode_examples(tokenizer, examples(7))
    blocks = pack(features, block_size=8)
    assert [t for b in blocks for t in b["input_ids"]] == [t for f in features for t in f["input_ids"]]
    assert [t for b in blocks for t in b["labels"]] == [t for f in features for t in f["labels"]]
    assert all(len(b["input_ids"]) == 8 for b in blocks[:-1]) and 1 <= len(blocks[-1]["input_ids"]) <= 8
    # the EOS ending each completion separates the examples in the stream
    stream = [t for b in blocks for t in b["input_ids"]]
    assert stream.count(tokenizer.eos_token_id) == 7


def test_make_batches_is_deterministic_and_covers_every_example(tokenizer):
    data = examples(10)
    first = make_batches(tokenizer, data, batch_size=4, seed=3)
    second = make_batches(tokenizer, data, batch_size=4, seed=3)
    other = make_batches(tokenizer, data, batch_size=4, seed=4)
    assert [b["input_ids"].shape[0] for b in first] == [4, 4, 2]
    assert all(torch.equal(a[k], b[k]) for a, b in zip(first, second) for k in a)
    assert not all(torch.equal(a["input_ids"], b["input_ids"]) for a, b in zip(first, other))
    # every example appears exactly once: compare the unpadded sequences as a multiset
    def rows(batches):
        return sorted(tuple(r[m.bool()].tolist()) for b in batches for r, m in zip(b["input_ids"], b["attention_mask"]))
    expected = sorted(tuple(f["input_ids"]) for f in encode_examples(tokenizer, data))
    assert rows(first) == rows(other) == expected
    in_order = make_batches(tokenizer, data, batch_size=4, shuffle=False)
    assert in_order[0]["input_ids"][0, :3].tolist() == encode_examples(tokenizer, data)[0]["input_ids"][:3]


def test_make_batches_with_packing_fills_blocks(tokenizer):
    batches = make_batches(tokenizer, examples(10), batch_size=2, max_length=16, packing=True, shuffle=False)
    assert batches[0]["input_ids"].shape == (2, 16)
    assert batches[0]["attention_mask"].all()


@pytest.mark.parametrize("bad, message", [
    ([], "non-empty"),
    ([{"prompt": "a"}], "'completion'"),
    ([{"completion": "a"}], "'prompt'"),
    ([{"prompt": 3, "completion": "a"}], r"examples\[0\]\['prompt'\] must be a str"),
    ([{"prompt": "a", "completion": ""}], "empty"),
    (["just text"], "must be a dict"),
])
def test_bad_examples_raise_clear_errors(tokenizer, bad, message):
    with pytest.raises(ValueError, match=message):
        make_batches(tokenizer, bad, batch_size=2)


def test_bad_arguments_raise_clear_errors(tokenizer, make_tiny_tokenizer):
    with pytest.raises(ValueError, match="eos"):
        make_batches(make_tiny_tokenizer(eos=False), examples(2), batch_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        make_batches(tokenizer, examples(2), batch_size=0)
    with pytest.raises(ValueError, match="block_size"):
        pack([], block_size=0)
    assert IGNORE_INDEX == -100
