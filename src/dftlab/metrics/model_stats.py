"""Model statistics (chapters 3 to 5, and the study): predictive entropy, completion log-probabilities,
exact option probabilities, target probabilities by role and calibration. Log-probabilities are in nats.
"""
from __future__ import annotations

import math
import re
import sys

import numpy as np
import pandas as pd
import torch

from dftlab.data import IGNORE_INDEX, check_token_ids, collate, device_of, encode_examples, pad_id_of, vocab_size_of
from dftlab.objectives import supervised_log_probs
from dftlab.validation import check_int, check_samples, check_texts


def _context_length(model) -> int | None:
    config = getattr(model, "config", None)
    for field in ("n_positions", "max_position_embeddings"):
        value = getattr(config, field, None)
        if isinstance(value, int):
            return value
    return None


def _check_batch(batch, index: int) -> None:
    if not isinstance(batch, dict) or not all(key in batch for key in ("input_ids", "attention_mask", "labels")):
        raise ValueError(f"batches[{index}] must be a dict with 'input_ids', 'attention_mask' and 'labels' tensors "
                         f"(as dftlab.data.make_batches builds them), got {batch!r:.80}.")
    shapes = {key: tuple(torch.as_tensor(batch[key]).shape) for key in ("input_ids", "attention_mask", "labels")}
    if len(set(shapes.values())) != 1 or len(shapes["input_ids"]) != 2:
        raise ValueError(f"batches[{index}] must hold [B, T] tensors of one shape, got shapes {shapes}.")


def _model_log_probs(model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run `model` on `batch` (on the model's device): `dftlab.objectives.supervised_log_probs` [K, V] in float64,
    the K target ids, and the batch row each of them belongs to."""
    device = device_of(model)
    logits = model(input_ids=torch.as_tensor(batch["input_ids"], device=device),
                   attention_mask=torch.as_tensor(batch["attention_mask"], device=device)).logits
    log_p, targets, supervised = supervised_log_probs(logits, torch.as_tensor(batch["labels"], device=device))
    return log_p, targets, supervised.nonzero()[:, 0]


class _EvalMode:
    """Switch a model to eval mode (no dropout) for a measurement, then restore its previous mode."""

    def __init__(self, model):
        self.model, self.was_training = model, getattr(model, "training", False)

    def __enter__(self):
        if hasattr(self.model, "eval"):
            self.model.eval()

    def __exit__(self, *exc_info):
        if self.was_training:
            self.model.train()


@torch.no_grad()
def predictive_entropy(model, batches) -> float:
    """Mean entropy, in nats, of the model's next-token distribution at the supervised positions.

    Averaged over every supervised token of every batch (a token mean, like the training loss).
    A model that has collapsed onto one formula has low predictive entropy; DFT drives it down.
    """
    if isinstance(batches, dict):
        batches = [batches]
    total_entropy, num_tokens, num_batches = 0.0, 0, 0
    with _EvalMode(model):
        for index, batch in enumerate(batches):
            _check_batch(batch, index)
            check_token_ids(torch.as_tensor(batch["input_ids"]), vocab_size_of(model), f"batches[{index}]['input_ids']")
            log_p, _targets, _rows = _model_log_probs(model, batch)
            total_entropy += float(-(log_p.exp() * log_p).sum(dim=-1).double().sum())
            num_tokens += log_p.shape[0]
            num_batches += 1
    if num_batches == 0:
        raise ValueError("batches is empty; pass a non-empty list of batches (dftlab.data.make_batches).")
    if num_tokens == 0:
        raise ValueError("batches has no supervised position (every label is -100 after the causal shift). "
                         "Check that the labels hold the completion token ids.")
    return total_entropy / num_tokens


@torch.no_grad()
def completion_log_probs(model, tokenizer, examples, batch_size: int = 16) -> np.ndarray:
    """log p(completion + EOS | prompt), in nats and summed over tokens, for each prompt/completion dict.

    The tokenisation is the trainer's (`dftlab.data.encode_example`): prompt and completion are
    tokenized separately and the completion ends with EOS. Nothing is truncated: an example longer
    than the model's context raises ValueError. Returns a float64 array, one entry per example.
    """
    batch_size = check_int(batch_size, "batch_size")
    # sys.maxsize: we want the full sequence; truncation would silently drop completion tokens.
    features = encode_examples(tokenizer, examples, max_length=sys.maxsize)
    context_length = _context_length(model)
    for index, (example, feature) in enumerate(zip(examples, features)):
        if feature["labels"][0] != IGNORE_INDEX:
            raise ValueError(f"examples[{index}]['prompt'] tokenizes to no tokens, so the first completion token "
                             f"has nothing to be predicted from. Give a non-empty prompt.")
        if context_length is not None and len(feature["input_ids"]) > context_length:
            raise ValueError(f"examples[{index}] is {len(feature['input_ids'])} tokens long, more than the model's "
                             f"context of {context_length}. Shorten it ({example['prompt'][:30]!r}...).")
    pad_token_id = pad_id_of(tokenizer)
    log_probs = []
    with _EvalMode(model):
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_token_id)
            log_p, targets, rows = _model_log_probs(model, batch)
            token_log_p = log_p.gather(-1, targets[:, None])[:, 0].double()
            per_example = torch.zeros(len(batch["input_ids"]), dtype=torch.float64, device=token_log_p.device)
            log_probs.extend(per_example.index_add_(0, rows, token_log_p).tolist())
    return np.array(log_probs, dtype=np.float64)



@torch.no_grad()
def option_probabilities(model, tokenizer, prompts, options, continuations=("",), temperature: float = 1.0,
                         batch_size: int = 64) -> pd.DataFrame:
    """Exact probability that the model continues each prompt with each option, sampling at `temperature`.

    p_T(option | prompt) is the product over the option's tokens of softmax(logits / T) at the token, summed
    over the `continuations` that may follow it (TinyTales openers are always followed by " a" or " an", which
    marks where the option ends). No sampling: the study stores each model's opener distribution, which chapter 5
    sets beside q^(1 / (1 - alpha)). Columns: prompt, option, prob, share (prob renormalised over the options, per prompt).
    """
    from dftlab.distributions import check_decoding_settings

    check_decoding_settings(temperature, None, None)
    prompts, options = check_texts(prompts, "prompts"), check_texts(options, "options")
    continuations = check_texts(continuations, "continuations") if continuations != ("",) else [""]
    pairs = [(prompt, option, " " + option + cont) for prompt in prompts for option in options for cont in continuations]
    features = []
    for prompt, _, text in pairs:
        prompt_ids = list(tokenizer(prompt).input_ids)
        text_ids = list(tokenizer(text, add_special_tokens=False).input_ids)
        ids = prompt_ids + text_ids
        features.append({"input_ids": ids, "labels": [IGNORE_INDEX] * len(prompt_ids) + text_ids})
    log_probs = []
    with _EvalMode(model):
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_id_of(tokenizer))
            device = device_of(model)
            logits = model(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device)).logits
            log_p, targets, supervised = supervised_log_probs(logits.double() / temperature, batch["labels"])
            token_log_p = torch.zeros(supervised.shape, dtype=log_p.dtype, device=log_p.device)
            token_log_p[supervised] = log_p.gather(-1, targets[:, None])[:, 0]
            log_probs.extend(token_log_p.sum(-1).tolist())
    table = pd.DataFrame([(prompt, option, math.exp(lp)) for (prompt, option, _), lp in zip(pairs, log_probs)],
                         columns=["prompt", "option", "prob"])
    table = table.groupby(["prompt", "option"], sort=False, as_index=False)["prob"].sum()
    table["share"] = table["prob"] / table.groupby("prompt")["prob"].transform("sum")
    return table


_TITLE_CHARACTER = re.compile(r"Title: The (\w+) and the")


@torch.no_grad()
def target_probabilities_by_role(model, tokenizer, stories, batch_size: int = 16) -> pd.DataFrame:
    """p(target token) at every completion token of TinyTales `stories`, labelled by its role (chapter 5).

    role "character": the token spells (part of) the title's character name where the story repeats it,
    which the model can only get right by copying it from the prompt; "other": every other completion
    token (template words, the story's own choices, EOS). Tokenisation as in training
    (`dftlab.data.encode_example`). Columns: story, position (0 = first completion token), role, target_prob.
    """
    batch_size = check_int(batch_size, "batch_size")
    pairs = check_samples(stories, "stories")
    roles = []
    for index, (prompt, completion) in enumerate(pairs):
        match = _TITLE_CHARACTER.search(prompt)  # search: a chat template puts the title inside the user's turn
        if match is None:
            raise ValueError(f"stories[{index}]['prompt'] is not a TinyTales title ({prompt[:40]!r}); pass stories "
                             f"from dftlab.tinytales.TinyTales().sample(...).")
        name = match.group(1)
        spans = [(m.start(), m.end()) for m in re.finditer(rf"\b{re.escape(name)}\b", completion)]
        offsets = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        story_roles = ["character" if any(a < end and start < b for a, b in spans) else "other"
                       for start, end in offsets]
        roles.append(story_roles + ["other"])  # the EOS that ends every completion
    rows = []
    for start, count, log_p, targets, batch_rows in _completion_log_probs_by_batch(model, tokenizer, pairs, batch_size):
        probs = log_p.gather(-1, targets[:, None])[:, 0].exp().cpu().numpy()
        batch_rows = batch_rows.cpu().numpy()
        for offset in range(count):
            story = start + offset
            story_probs = probs[batch_rows == offset]
            for position, (prob, role) in enumerate(zip(story_probs, roles[story])):
                rows.append({"story": story, "position": position, "role": role, "target_prob": float(prob)})
    return pd.DataFrame(rows, columns=["story", "position", "role", "target_prob"])


def _completion_log_probs_by_batch(model, tokenizer, pairs, batch_size: int):
    """For each batch of (prompt, completion) `pairs`, tokenised as in training, in eval mode: (index of its first
    story, stories in it, next-token log-probabilities, targets, the story row of each) at every completion token."""
    features = encode_examples(tokenizer, [{"prompt": p, "completion": c} for p, c in pairs], max_length=sys.maxsize)
    with _EvalMode(model):
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_id_of(tokenizer))
            log_p, targets, rows = _model_log_probs(model, batch)
            yield start, len(batch["input_ids"]), log_p, targets, rows



def calibration_bins(confidence, correct, bins: int = 10) -> pd.DataFrame:
    """Confidence against accuracy in `bins` equal-width bins of [0, 1] (a reliability diagram's table).

    `confidence[i]` is the probability a model gave its top prediction and `correct[i]` whether that prediction
    was right. A calibrated model is right as often as it is confident: in each bin, accuracy = confidence.
    A confidence of exactly 1 falls in the last bin. Columns: bin_low, bin_high, count, confidence (the bin's
    mean), accuracy (its share correct), one row per bin, empty bins included with NaN means.
    """
    bins = check_int(bins, "bins", minimum=1)
    confidence = np.asarray(confidence, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence and correct must have one entry per prediction, got {confidence.size} and "
                         f"{correct.size} entries.")
    if confidence.size and not ((confidence >= 0) & (confidence <= 1)).all():
        raise ValueError("confidence must hold probabilities in [0, 1] (the top prediction's probability).")
    index = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    edges = np.linspace(0.0, 1.0, bins + 1)
    return pd.DataFrame({"bin_low": edges[:-1], "bin_high": edges[1:], "count": count,
                         "confidence": mean_confidence, "accuracy": accuracy})


def expected_calibration_error(confidence, correct, bins: int = 10) -> float:
    """ECE (Guo et al. 2017): the count-weighted mean over bins of |accuracy - confidence|, in [0, 1].

    0 for a calibrated model. Empty bins weigh nothing. See `calibration_bins` for the binning.
    """
    table = calibration_bins(confidence, correct, bins)
    filled = table[table["count"] > 0]
    if filled.empty:
        raise ValueError("confidence is empty: pass at least one prediction.")
    gaps = (filled["accuracy"] - filled["confidence"]).abs()
    return float((filled["count"] * gaps).sum() / filled["count"].sum())


@torch.no_grad()
def top_predictions(model, tokenizer, stories, batch_size: int = 16) -> pd.DataFrame:
    """The model's top next-token prediction at every completion token of `stories` (chapter 4's calibration).

    Tokenisation as in training (`dftlab.data.encode_example`, with the EOS that ends each completion). Columns:
    story, confidence (the largest next-token probability), correct (whether that token is the target),
    target_prob (the target's probability).
    """
    batch_size = check_int(batch_size, "batch_size")
    pairs = check_samples(stories, "stories")
    frames = []
    for start, _, log_p, targets, rows in _completion_log_probs_by_batch(model, tokenizer, pairs, batch_size):
        top_log_p, top = log_p.max(dim=-1)
        frames.append(pd.DataFrame({"story": (rows + start).cpu().numpy(),
                                    "confidence": top_log_p.exp().double().cpu().numpy(),
                                    "correct": (top == targets).cpu().numpy(),
                                    "target_prob": log_p.gather(-1, targets[:, None])[:, 0].exp().double()
                                    .cpu().numpy()}))
    return pd.concat(frames, ignore_index=True)


def calibration_table(model, tokenizer, stories, bins: int = 10, batch_size: int = 16) -> pd.DataFrame:
    """Reliability table of `model` on TinyTales-style `stories`: confidence against accuracy per bin.

    At every completion token the model's top next-token prediction is scored right or wrong against the story's
    actual token (`top_predictions`); the predictions are grouped by confidence (`calibration_bins`). A model
    fitted by maximum likelihood is calibrated on data from its own distribution; Dynamic FT, which pushes every
    distribution to its mode, is over-confident: confidence near 1, accuracy lower. (Chapter 4 bins its
    predictions with `calibration_bins` directly.)
    """
    predictions = top_predictions(model, tokenizer, stories, batch_size=batch_size)
    return calibration_bins(predictions["confidence"], predictions["correct"], bins)
