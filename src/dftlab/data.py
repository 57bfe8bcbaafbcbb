"""From prompt/completion pairs to padded batches of token ids (chapter 3).

A fine-tuning example is a pair of strings: a `prompt` the model is shown and a `completion` it
should learn to write. We tokenize both, glue them together, and build a `labels` list that holds
the completion's token ids and -100 everywhere else. -100 is the `ignore_index` of the objectives,
so the loss is computed on completion tokens only: the model is never trained to predict the prompt.

    example  -> encode_example -> {input_ids, labels}          (one sequence)
    features -> collate        -> {input_ids, attention_mask, labels}  [B, T] tensors
    examples -> make_batches   -> a list of such batches, in a seeded order

Each completion ends with the tokenizer's end-of-sequence token, so the model also learns when to stop.
"""
from __future__ import annotations

from typing import Iterator

import torch

from dftlab.validation import check_int

IGNORE_INDEX = -100  # labels with this value add nothing to the loss (the objectives' ignore_index)


def _check_tokenizer(tokenizer) -> None:
    if not callable(tokenizer):
        raise TypeError(f"tokenizer must be a Hugging Face tokenizer (callable on a string), got {type(tokenizer).__name__}. "
                        f"Use the tokenizer returned by dftlab.load_model().")
    if getattr(tokenizer, "eos_token_id", None) is None:
        raise ValueError("tokenizer has no eos_token_id, so completions cannot be terminated. "
                         "Set one first, e.g. tokenizer.eos_token = '<|endoftext|>' (it must be in the vocabulary).")


def _check_example(example, index: int | None = None) -> None:
    where = "example" if index is None else f"examples[{index}]"
    if not isinstance(example, dict):
        raise ValueError(f"{where} must be a dict with 'prompt' and 'completion' strings, got {type(example).__name__}.")
    for key in ("prompt", "completion"):
        if key not in example:
            raise ValueError(f"{where} has no {key!r} key (keys: {sorted(example)}). "
                             f"Give every example both a 'prompt' and a 'completion' string; use '' for an empty prompt.")
        if not isinstance(example[key], str):
            raise ValueError(f"{where}[{key!r}] must be a str, got {type(example[key]).__name__}. Convert it with str().")
    if not example["completion"]:
        raise ValueError(f"{where}['completion'] is empty, so there is nothing to learn from it. Drop this example.")


def mask_prompt(input_ids, prompt_length: int):
    """Labels for `input_ids` with the first `prompt_length` positions set to -100 (chapter 3).

    Works on a list or a 1-D tensor and returns the same kind. The input is not modified.
    """
    length = len(input_ids)
    check_int(prompt_length, "prompt_length", 0, length, hint=f"(len(input_ids) is {length}.)")
    if isinstance(input_ids, torch.Tensor):
        if input_ids.dim() != 1:
            raise ValueError(f"input_ids must be 1-D, got shape {tuple(input_ids.shape)}. Mask one sequence at a time.")
        labels = input_ids.clone()
        labels[:prompt_length] = IGNORE_INDEX
        return labels
    return [IGNORE_INDEX] * prompt_length + list(input_ids[prompt_length:])


def encode_example(tokenizer, example: dict, max_length: int = 256) -> dict:
    """Tokenize one prompt/completion pair into `input_ids` and `labels` (chapter 3).

    The prompt and the completion are tokenized separately, so the boundary between them is
    exactly where the labels start. (Byte-level BPE merges a leading space into the next word, so
    a completion that continues a sentence should start with a space: " the end".)
    Sequences longer than `max_length` lose the end of their completion, including the EOS token.
    """
    _check_tokenizer(tokenizer)
    _check_example(example)
    check_int(max_length, "max_length")
    prompt_ids = list(tokenizer(example["prompt"]).input_ids)
    # no special tokens: a tokenizer that adds a BOS (not GPT-2's) would otherwise put one mid-sequence
    completion_ids = list(tokenizer(example["completion"], add_special_tokens=False).input_ids) + [tokenizer.eos_token_id]
    if len(prompt_ids) >= max_length:
        raise ValueError(f"The prompt alone is {len(prompt_ids)} tokens, which leaves no room for the completion "
                         f"within max_length={max_length}. Raise max_length or shorten the prompt "
                         f"({example['prompt'][:40]!r}...).")
    input_ids = (prompt_ids + completion_ids)[:max_length]
    return {"input_ids": input_ids, "labels": mask_prompt(input_ids, len(prompt_ids))}


def encode_examples(tokenizer, examples, max_length: int = 256) -> list[dict]:
    """`encode_example` on every example, after checking them all."""
    _check_tokenizer(tokenizer)
    if isinstance(examples, (dict, str)) or not hasattr(examples, "__len__") or len(examples) == 0:
        raise ValueError("examples must be a non-empty list of {'prompt': str, 'completion': str} dicts, "
                         f"got {examples!r:.60}. Wrap a single example in a list: [example].")
    for index, example in enumerate(examples):
        _check_example(example, index)
    return [encode_example(tokenizer, example, max_length) for example in examples]


def vocab_size_of(model) -> int | None:
    """How many token ids `model` can embed (None if it does not say)."""
    embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    if embeddings is not None and hasattr(embeddings, "num_embeddings"):
        return int(embeddings.num_embeddings)
    size = getattr(getattr(model, "config", None), "vocab_size", None)
    return size if isinstance(size, int) else None


def device_of(model) -> torch.device:
    """The device of the model's weights: every batch goes there before the forward pass (CPU if it has none)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def check_token_ids(input_ids, vocab_size: int | None, name: str = "input_ids") -> None:
    """Refuse token ids that the model's embedding layer would fail on deep inside torch:
    a non-integer tensor, or ids outside [0, vocab_size)."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        what = input_ids.dtype if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(f"{name} must be an integer tensor of token ids, got {what}. "
                         f"Build batches with dftlab.data.make_batches, or pass {name}.long().")
    if vocab_size is not None and input_ids.numel() and (int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab_size):
        raise ValueError(f"{name} has token ids outside [0, {vocab_size}), the model's vocabulary "
                         f"(smallest {int(input_ids.min())}, largest {int(input_ids.max())}). "
                         f"Check that the tokenizer matches the model.")


def collate(features: list[dict], pad_token_id: int) -> dict:
    """Stack sequences into right-padded LongTensors `input_ids`, `attention_mask`, `labels` of shape [B, T].

    T is the longest sequence in the batch. Padding gets attention_mask 0 and label -100, so it is
    neither attended to nor trained on; which id pads does not matter.
    """
    if len(features) == 0:
        raise ValueError("collate needs at least one feature; got an empty list.")
    check_int(pad_token_id, "pad_token_id", None,
              hint="Use tokenizer.pad_token_id, or tokenizer.eos_token_id if that is None.")
    for row, feature in enumerate(features):
        if not isinstance(feature, dict) or "input_ids" not in feature or "labels" not in feature:
            raise ValueError(f"features[{row}] must be a dict with 'input_ids' and 'labels' lists, got {feature!r:.60}; "
                             f"build features with encode_example.")
    width = max(len(f["input_ids"]) for f in features)
    input_ids = torch.full((len(features), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(features), width), dtype=torch.long)
    labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
    for row, feature in enumerate(features):
        length = len(feature["input_ids"])
        if len(feature["labels"]) != length:
            raise ValueError(f"features[{row}] has {length} input_ids but {len(feature['labels'])} labels; "
                             f"they must align one to one (build them with encode_example).")
        input_ids[row, :length] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
        attention_mask[row, :length] = 1
        labels[row, :length] = torch.as_tensor(feature["labels"], dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def pack(features: list[dict], block_size: int) -> list[dict]:
    """Concatenate the sequences and cut the stream into blocks of `block_size` tokens (chapter 3).

    Every token keeps its own label, and the EOS that ends each completion separates one example
    from the next, so no padding is needed. The price: a block's examples can attend to the one
    before them, and the first token of each block has no context (its label is never predicted
    under the causal shift). A truncated example has lost its EOS and runs straight into the next one.
    The last block may be shorter; no token is dropped.
    """
    check_int(block_size, "block_size")
    stream_ids = [token for feature in features for token in feature["input_ids"]]
    stream_labels = [label for feature in features for label in feature["labels"]]
    return [{"input_ids": stream_ids[start:start + block_size], "labels": stream_labels[start:start + block_size]}
            for start in range(0, len(stream_ids), block_size)]


def pad_id_of(tokenizer) -> int:
    """The id used for padding: the tokenizer's pad token, or its EOS (GPT-2 has no pad token)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def batch_order(num_features: int, batch_size: int, generator: torch.Generator | None) -> list[list[int]]:
    """One epoch of batches as lists of indices: shuffled with `generator`, or in order if it is None."""
    if generator is None:
        order = list(range(num_features))
    else:
        order = torch.randperm(num_features, generator=generator).tolist()
    return [order[start:start + batch_size] for start in range(0, num_features, batch_size)]


def iterate_batches(features: list[dict], batch_size: int, pad_token_id: int, *, seed: int = 0,
                    shuffle: bool = True, start: int = 0) -> Iterator[dict]:
    """Batches forever, epoch after epoch, each epoch reshuffled by one seeded generator.

    `start` skips that many batches cheaply (no collation), so a resumed run sees the batches it would
    have seen had it never stopped. The last batch of an epoch may be smaller than `batch_size`.
    """
    check_int(batch_size, "batch_size")
    if len(features) == 0:
        raise ValueError("iterate_batches needs at least one feature; got an empty list.")
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    skipped = 0
    while True:
        for indices in batch_order(len(features), batch_size, generator):
            if skipped < start:
                skipped += 1
                continue
            yield collate([features[i] for i in indices], pad_token_id)


def make_batches(tokenizer, examples, batch_size: int, max_length: int = 256, shuffle: bool = True,
                 seed: int = 0, packing: bool = False) -> list[dict]:
    """One epoch of collated batches from prompt/completion examples (chapter 3).

    The same arguments give the same batches: shuffling uses its own `torch.Generator(seed)`
    and leaves the global random state alone. With `packing=True` the encoded examples are packed
    into blocks of `max_length` tokens before batching.
    """
    check_int(batch_size, "batch_size")
    features = encode_examples(tokenizer, examples, max_length)
    if packing:
        features = pack(features, max_length)
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    pad_token_id = pad_id_of(tokenizer)
    return [collate([features[i] for i in indices], pad_token_id)
            for indices in batch_order(len(features), batch_size, generator)]
