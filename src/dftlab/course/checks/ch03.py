"""Chapter 3, supervised fine-tuning: the exercises on formatting an example (prompt masking, EOS, truncation),
the causal shift and the token-mean loss, which tokens SFT supervises and learns, and what masking the prompt
changes in a short fine-tuning run, and what that run does to the share of the most common opener.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import torch

from dftlab import objectives
from dftlab.course.checks.engine import (IGNORE_INDEX, FunctionExercise, PredictionExercise, AnswerProblem, as_tensor,
                                  Case, Mistake, near, random_logits, random_targets, show)
from dftlab.data import mask_prompt


def _labels(value, where: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        try:
            value = torch.tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise AnswerProblem(f"your function returned a list that is not a list of ints (on {where}).") from None
    result = as_tensor(value, where)
    if result.is_floating_point():
        raise AnswerProblem(f"your labels are floats (on {where}); token ids and -100 are integers: keep the "
                             f"dtype of `input_ids`.")
    return result


def _mask_cases(g):
    ids = torch.tensor([11, 12, 13, 14, 15])
    return [
        Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 2", (ids, 2)),
        Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 0 (no prompt)", (ids, 0)),
        Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 5 (all prompt)", (ids, 5)),
        Case("12 random ids, prompt_length = 7", (torch.randint(0, 500, (12,), generator=g), 7)),
        Case("9 random ids, prompt_length = 1", (torch.randint(0, 500, (9,), generator=g), 1)),
    ]


def _masked(ids, start, stop, value=IGNORE_INDEX):
    labels = ids.clone()
    labels[max(start, 0):max(stop, 0)] = value
    return labels


CH03_MASK_PROMPT = FunctionExercise(
    "ch03.mask_prompt", "mask_prompt(input_ids, prompt_length)",
    "Labels for a 1-D tensor of input ids with the first prompt_length positions set to -100.",
    reference=mask_prompt, cases=_mask_cases, convert=_labels,
    mutating_hint="start from `labels = input_ids.clone()`",
    mistakes=(
        Mistake("masked one token too many (off by one): positions 0 .. prompt_length - 1 are the prompt, "
                 "so the first completion token must stay a label.",
                 lambda ids, n: _masked(ids, 0, n + 1)),
        Mistake("masked one token too few (off by one): all prompt_length prompt positions must become -100.",
                 lambda ids, n: _masked(ids, 0, n - 1)),
        Mistake("forgot to mask the prompt: set the first prompt_length labels to -100.",
                 lambda ids, n: ids.clone()),
        Mistake("you masked the completion instead of the prompt: the model must learn the completion.",
                 lambda ids, n: _masked(ids, n, len(ids))),
        Mistake("you masked with 0, which is a real token id: the ignore index is -100.",
                 lambda ids, n: _masked(ids, 0, n, 0)),
        Mistake("you masked with -1: the ignore index of the loss is -100.",
                 lambda ids, n: _masked(ids, 0, n, -1)),
    ),
)


def _shift_result(value, where: str):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise AnswerProblem(f"your function should return a pair `(logits, labels)`, got {show(value)} "
                             f"(on {where}).")
    return as_tensor(value[0], where), as_tensor(value[1], where)


def _shift_cases(g):
    return [
        Case("logits of shape (4, 3), labels = [5, 6, 7, 8]", (random_logits(g, 4, 3), torch.tensor([5, 6, 7, 8]))),
        Case("logits of shape (2, 5), labels = [1, 2]", (random_logits(g, 2, 5), torch.tensor([1, 2]))),
        Case("a batch: logits (3, 4, 5), labels (3, 4)",
              (random_logits(g, 3, 4, 5), torch.randint(0, 5, (3, 4), generator=g))),
    ]


CH03_SHIFT = FunctionExercise(
    "ch03.shift_for_causal_lm", "shift_for_causal_lm(logits, labels)",
    "Align a causal LM's logits [.., T, V] with labels [.., T]: return (logits, labels) with T - 1 positions.",
    reference=objectives.causal_shift, cases=_shift_cases, convert=_shift_result,
    mistakes=(
        Mistake("you did not shift: the logits at position t predict token t + 1, not token t.",
                 lambda z, y: (z, y)),
        Mistake("shifted the wrong way: drop the *last* logit and the *first* label "
                 "(`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[..., 1:, :], y[..., :-1])),
        Mistake("you dropped the last position of both: the labels must move one step left, `labels[..., 1:]`.",
                 lambda z, y: (z[..., :-1, :], y[..., :-1])),
        Mistake("you dropped the first position of both: the logits must lose their *last* position.",
                 lambda z, y: (z[..., 1:, :], y[..., 1:])),
        Mistake("you shifted along the batch axis: shift the time axis (`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[:-1], y[1:])),
    ),
)


# ---------------------------------------------------------------------------------------------
# 3.1 (b) One training example: prompt + completion + EOS, truncated, prompt masked.
# ---------------------------------------------------------------------------------------------

def _format_example(prompt_ids, completion_ids, eos_id, max_length):
    input_ids = (list(prompt_ids) + list(completion_ids) + [eos_id])[:max_length]
    return input_ids, mask_prompt(input_ids, len(prompt_ids))


def _format_result(value, where: str):
    if isinstance(value, dict) and {"input_ids", "labels"} <= set(value):
        value = (value["input_ids"], value["labels"])
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise AnswerProblem(f"your function should return a pair `(input_ids, labels)`, got {show(value)} "
                             f"(on {where}).")
    return _labels(value[0], where), _labels(value[1], where)


def _format_cases(g):
    return [
        Case("prompt_ids = [5, 6, 7], completion_ids = [8, 9], eos_id = 0, max_length = 10",
              ([5, 6, 7], [8, 9], 0, 10)),
        Case("prompt_ids = [5, 6, 7], completion_ids = [8, 9, 10, 11], eos_id = 0, max_length = 5 (too long: "
              "truncate)", ([5, 6, 7], [8, 9, 10, 11], 0, 5)),
        Case("prompt_ids = [3, 4], completion_ids = [21, 22, 23], eos_id = 50, max_length = 5 (exactly full "
              "with the EOS)", ([3, 4], [21, 22, 23], 50, 5)),
        Case("prompt_ids = [1], completion_ids = [2, 3, 4, 5, 6, 7], eos_id = 0, max_length = 4",
              ([1], [2, 3, 4, 5, 6, 7], 0, 4)),
        Case("8 random prompt ids, 12 random completion ids, eos_id = 99, max_length = 64",
              (torch.randint(100, 500, (8,), generator=g).tolist(),
               torch.randint(100, 500, (12,), generator=g).tolist(), 99, 64)),
    ]


def _format_keeping_eos(prompt_ids, completion_ids, eos_id, max_length):
    input_ids = (list(prompt_ids) + list(completion_ids))[:max_length - 1] + [eos_id]
    return input_ids, mask_prompt(input_ids, len(prompt_ids))


def _format_masking_eos(prompt_ids, completion_ids, eos_id, max_length):
    input_ids, labels = _format_example(prompt_ids, completion_ids, eos_id, max_length)
    if len(prompt_ids) + len(completion_ids) < max_length:  # the EOS survived the truncation
        labels[-1] = IGNORE_INDEX
    return input_ids, labels


def _format_truncating_left(prompt_ids, completion_ids, eos_id, max_length):
    full = list(prompt_ids) + list(completion_ids) + [eos_id]
    dropped = max(0, len(full) - max_length)
    return full[dropped:], mask_prompt(full[dropped:], max(0, len(prompt_ids) - dropped))


CH03_FORMAT_EXAMPLE = FunctionExercise(
    "ch03.format_example", "format_example(prompt_ids, completion_ids, eos_id, max_length)",
    "One training example from lists of token ids: input_ids = prompt + completion + [eos_id], cut to max_length "
    "from the end, and labels that copy input_ids with -100 over the prompt. Returns (input_ids, labels).",
    reference=_format_example, cases=_format_cases, convert=_format_result,
    mistakes=(
        Mistake("you forgot the end-of-sequence token: without it the model never learns to stop. Append eos_id "
                 "after the completion.",
                 lambda p, c, eos, n: (list(p + c)[:n], mask_prompt(list(p + c)[:n], len(p)))),
        Mistake("you masked the EOS token: it is part of the completion, and its label is how the model learns "
                 "when to stop.",
                 _format_masking_eos),
        Mistake("you kept the EOS when truncating: cut the whole sequence (prompt, completion, EOS) at max_length, "
                 "as dftlab.data.encode_example does; a story cut short must not be taught to end there.",
                 _format_keeping_eos),
        Mistake("you truncated from the left: keep the *first* max_length tokens, so the prompt stays whole and the "
                 "end of the completion is what is cut.",
                 _format_truncating_left),
        Mistake("you did not mask the prompt: its labels must be -100.",
                 lambda p, c, eos, n: ((p + c + [eos])[:n], (p + c + [eos])[:n])),
        Mistake("you masked the prompt with 0, a real token id: the ignore index is -100.",
                 lambda p, c, eos, n: ((p + c + [eos])[:n], ([0] * len(p) + (p + c + [eos])[len(p):])[:n])),
    ),
)


# ---------------------------------------------------------------------------------------------
# 3.2 (b) The loss of a causal LM on a padded, masked batch: shift, then the token mean over supervised labels.
# ---------------------------------------------------------------------------------------------

def _completion_nll(logits, labels):
    return objectives.nll(*objectives.causal_shift(logits, labels))


def _masked_batch_labels(g, batch, length, vocab, prompt_lengths, pad_lengths):
    labels = torch.randint(0, vocab, (batch, length), generator=g)
    for row, (prompt, pad) in enumerate(zip(prompt_lengths, pad_lengths)):
        labels[row, :prompt] = IGNORE_INDEX
        if pad:
            labels[row, length - pad:] = IGNORE_INDEX
    return labels


def _completion_nll_cases(g):
    return [
        Case("one sequence: logits (1, 4, 3), labels [[-100, 2, 0, 1]]",
              (random_logits(g, 1, 4, 3), torch.tensor([[IGNORE_INDEX, 2, 0, 1]]))),
        Case("a batch of 2: logits (2, 6, 5), row 0 has a 2-token prompt, row 1 a 1-token prompt and 3 padding "
              "positions", (random_logits(g, 2, 6, 5), _masked_batch_labels(g, 2, 6, 5, (2, 1), (0, 3)))),
        Case("a batch of 3: logits (3, 8, 11), prompts of 3, 1 and 5 tokens, padding 0, 4 and 1",
              (random_logits(g, 3, 8, 11), _masked_batch_labels(g, 3, 8, 11, (3, 1, 5), (0, 4, 1)))),
        Case("a batch of 4: logits (4, 5, 7), nothing masked", (random_logits(g, 4, 5, 7),
                                                                  random_targets(g, 20, 7).reshape(4, 5))),
    ]


def _sequence_mean(logits, labels):
    shifted_logits, shifted_labels = objectives.causal_shift(logits, labels)
    per_token = objectives.nll(shifted_logits, shifted_labels, reduction="none")
    mask = shifted_labels != IGNORE_INDEX
    return (per_token.sum(-1) / mask.sum(-1).clamp(min=1)).mean()


def _all_positions(logits, labels):
    shifted_logits, shifted_labels = objectives.causal_shift(logits, labels)
    return objectives.nll(shifted_logits, shifted_labels, reduction="sum") / shifted_labels.numel()


CH03_COMPLETION_NLL = FunctionExercise(
    "ch03.completion_nll", "completion_nll(logits, labels)",
    "The SFT loss of a batch: logits [B, T, V] and labels [B, T] (-100 = not supervised) -> the mean of -log p(next "
    "token) over the supervised positions, after the causal shift.",
    reference=_completion_nll, cases=_completion_nll_cases, check_gradient=True,
    mistakes=(
        Mistake("you did not shift: the logits at position t predict the token at t + 1, so compare "
                 "logits[:, :-1] with labels[:, 1:].",
                 lambda z, y: objectives.nll(z, y)),
        Mistake("you shifted the wrong way: drop the *last* logit and the *first* label.",
                 lambda z, y: objectives.nll(z[:, 1:], y[:, :-1])),
        Mistake("you averaged each sequence, then averaged the sequences: the SFT loss is a token mean over the "
                 "whole batch (sum over supervised tokens / their number), so a long completion weighs more than a "
                 "short one.",
                 _sequence_mean),
        Mistake("you divided by every position, masked ones included: divide the sum by the number of supervised "
                 "labels (those that are not -100).",
                 _all_positions),
        Mistake("you summed instead of averaging: divide by the number of supervised labels.",
                 lambda z, y: objectives.nll(*objectives.causal_shift(z, y), reduction="sum")),
    ),
)


FUNCTIONS = (CH03_MASK_PROMPT, CH03_FORMAT_EXAMPLE, CH03_SHIFT, CH03_COMPLETION_NLL)

PREDICTIONS = (
    PredictionExercise(
        "ch03.supervised_token_count",
        "Predict how many labels in a padded batch of three prompt/completion examples are supervised (not -100).",
        kind="number", tolerance=0.0,
        misconceptions=((near(18, 0), "You counted every real token: prompt tokens are masked to -100 too."),
                        (near(21, 0), "You counted every position of the padded batch (3 x 7): padding and prompt "
                                       "positions carry -100.")),
        lesson="Only completion tokens are supervised (EOS included); prompt tokens and padding are -100, so the "
               "token-mean loss divides by the number of completion tokens."),
    PredictionExercise(
        "ch03.sft_matches_frequency",
        "Predict p('sunny') after SFT on 10 demonstrations (6 'sunny', 3 'rainy', 1 'grey') for the same prompt.",
        kind="number", tolerance=0.05,
        misconceptions=((near(1.0, 0.05), "SFT does not pick the most common completion: minimising the NLL "
                                           "matches the frequencies (chapter 4 shows which loss *does* pick the mode)."),),
        lesson="SFT is maximum likelihood on the demonstrations, and the MLE of a categorical is the empirical "
               "frequency: p('sunny') goes to 6/10."),
    PredictionExercise(
        "ch03.masking_train_loss",
        "Two 30-step SFT runs of tiny-gpt2 on TinyTales, one with the prompt masked and one trained on the prompt "
        "too. Predict which run reports the higher training loss: 'masked' or 'unmasked'.",
        kind="choice", choices=("masked", "unmasked"),
        misconceptions=((lambda v: v == "masked", "More supervised tokens do not make a loss smaller: the unmasked "
                                                  "run also averages over the prompt, and the title's animal and "
                                                  "place are hard to guess (one of 15 animals, then one of its "
                                                  "places), harder than most story tokens."),),
        lesson="A training loss is an average over whatever tokens are supervised. The unmasked run adds the prompt "
               "tokens, among them the unpredictable animal and place of the title, so its number is higher even "
               "though it learns the stories just as well: compare runs on the same held-out measure, never by "
               "their training losses."),
    PredictionExercise(
        "ch03.masking_valid_nll",
        "For the same two runs, predict the completion NLL on held-out stories: is it lower for 'masked', lower for "
        "'unmasked', or the 'same' (within 0.005 nats per token)?",
        kind="choice", choices=("masked", "unmasked", "same"),
        misconceptions=((lambda v: v == "unmasked", "Training on the prompt adds gradient from the prompt tokens; "
                                                    "it does not teach the completions anything more."),
                        (lambda v: v == "masked", "Masking does not give the completion tokens more gradient: "
                                                  "they are supervised in both runs, and the unmasked run only "
                                                  "divides their sum by a larger count, a rescaling that Adam "
                                                  "largely undoes.")),
        lesson="Here masking changes the completion NLL by far less than 0.005: the prompt is short and its tokens "
               "barely compete with the story's. Masking matters for what the loss means (it is the NLL of what "
               "the model will be asked to write) and when prompts are long or unlike the outputs; on short, "
               "regular prompts it hardly changes what the model learns."),
    PredictionExercise(
        "ch03.sft_opener_share",
        "After the masked 30-step SFT run of tiny-gpt2, predict whether the share of sampled stories that open with "
        "'Once upon a time,' is closest to the base model's share ('base'), the data's ('data') or every story "
        "('one').",
        kind="choice", choices=("base", "data", "one"),
        misconceptions=((lambda v: v == "one",
                         "Fine-tuning on stories where one opener is the most common does not make the model use it "
                         "every time: that is what DFT does (chapter 4), not maximum likelihood."),
                        (lambda v: v == "base",
                         "30 steps are few, but the opener is one of the first choices the model learns: it is the "
                         "same decision at the start of every story.")),
        lesson="SFT is maximum likelihood, and the maximum-likelihood model of a choice gives each option its "
               "frequency in the data (exercise 3.4). The opener moves from the base model's share to about the "
               "data's share, with sampling noise on 80 stories, and no further: SFT copies the data's habits, "
               "formulas included, without exaggerating them."),
)
