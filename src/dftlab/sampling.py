"""The course's one sampler: from a model's next-token logits to the distribution a draw is made from.

Every decoding rule the course uses is a step on the logits, applied in this order:

1. the repetition penalty (CTRL's, `distributions.repetition_penalty`): tokens already in the text become less likely;
2. the temperature T: the logits are divided by T;
3. top-k: keep the k largest logits. Ties: every token whose logit *equals* the k-th largest is kept too, so top-k can
   keep more than k tokens. A tie is then never broken by the token's number in the vocabulary (an accident of the
   tokenizer), and the rule is the one of `distributions.top_k_filter` and of transformers' top-k;
4. top-p: keep the most likely tokens until their probability reaches p (the most likely token always stays);
5. min-p: keep the tokens whose probability is at least min-p times the most likely one's;
6. softmax: what is left is renormalised.

Steps 3-5 each take the distribution the earlier steps left. `sampling_distribution` is that pipeline, a pure
function; `dftlab.generate.sample_ids` is the loop that draws from it token by token, and every sampler in the
package is built on the two: `generate.sample_completions` (chapters 1-7 and the study), chapter 1's
`continue_text`. Steps 2-5 live in `distributions.decoding_logits` (the chapter-1 functions, in this order), which
`distributions.decoding_distribution` (chapter 7's exercise) also uses. The decoding explorer (`widgets.decoding_spec`) does
steps 2-4 in the page, and a test runs its expressions under Node on the same logits.

The real chat model's sample sets (`dftlab.chat_samples`) are drawn by transformers' `generate`, which the stored
sets were built with; `transformers_generate_settings` translates settings for it, and a test checks that
transformers' warpers and `sampling_distribution` give the same probabilities on the same logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dftlab.distributions import (check_decoding_settings, decoding_logits, repetition_penalty,
                                  softmax_with_temperature)
from dftlab.validation import check_number


@dataclass(frozen=True)
class SamplerSettings:
    """How to turn logits into the distribution a token is drawn from; None (or False) turns a rule off.

    temperature > 0; top_k a positive integer; top_p and min_p in (0, 1]; repetition_penalty > 0 (above 1
    discourages repeats). `greedy=True` takes the most likely token after the penalty instead of drawing
    (the temperature and the filters then do not matter)."""

    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    greedy: bool = False

    def __post_init__(self):
        check_decoding_settings(self.temperature, self.top_k, self.top_p)
        if self.min_p is not None:
            check_number(self.min_p, "min_p", 0.0, 1.0, low_open=True, hint="min_p = 1 keeps only the top token.")
        if self.repetition_penalty is not None:
            check_number(self.repetition_penalty, "repetition_penalty", 0.0, low_open=True,
                         hint="Values above 1 discourage repeats; None (or 1) turns the penalty off.")
        if not isinstance(self.greedy, bool):
            raise ValueError(f"greedy must be True or False, got {self.greedy!r}.")


def penalised_logits(logits, settings: SamplerSettings, previous_ids=None):
    """Step 1 alone: the logits after the repetition penalty (the logits themselves when there is none).

    `previous_ids` (the ids of the text so far: a list for logits [V], [B, L] for [B, V]) is needed only with a
    repetition penalty. Greedy decoding takes the argmax of these."""
    if not isinstance(settings, SamplerSettings):
        raise TypeError(f"settings must be a SamplerSettings, e.g. SamplerSettings(temperature=0.7, top_p=0.9); "
                        f"got {type(settings).__name__}")
    if settings.repetition_penalty is None:
        return logits
    if previous_ids is None:
        raise ValueError("a repetition penalty needs previous_ids, the ids of the text so far")
    return repetition_penalty(logits, previous_ids, settings.repetition_penalty)


def processed_logits(logits, settings: SamplerSettings, previous_ids=None) -> torch.Tensor:
    """The logits after the penalty, the temperature, top-k, top-p and min-p (in that order); dropped tokens are -inf.

    `logits` is [V] or [B, V]; `previous_ids` as for `penalised_logits`."""
    return decoding_logits(penalised_logits(logits, settings, previous_ids), settings.temperature, settings.top_k,
                           settings.top_p, settings.min_p)


def sampling_distribution(logits, settings: SamplerSettings, previous_ids=None) -> torch.Tensor:
    """The distribution a sampler draws the next token from: `processed_logits`, then the softmax.

    With `settings.greedy`, all the probability goes to the most likely token after the penalty."""
    if settings.greedy:
        penalised = penalised_logits(logits, settings, previous_ids)
        probs = softmax_with_temperature(penalised, 1.0)  # checks the logits
        return torch.nn.functional.one_hot(torch.as_tensor(penalised).argmax(-1), probs.shape[-1]).to(probs.dtype)
    # T = 1 here: processed_logits applied the temperature already
    return softmax_with_temperature(processed_logits(logits, settings, previous_ids), 1.0)


def transformers_generate_settings(settings: SamplerSettings) -> dict:
    """The same settings as arguments of transformers' `model.generate` (sampling on; top-k off unless set).

    transformers applies them in the same order: the repetition penalty, the temperature, top-k, top-p, min-p."""
    if settings.greedy:
        arguments = {"do_sample": False}
    else:
        arguments = {"do_sample": True, "temperature": settings.temperature, "top_k": settings.top_k or 0,
                     "top_p": 1.0 if settings.top_p is None else settings.top_p}
        if settings.min_p is not None:
            arguments["min_p"] = settings.min_p
    if settings.repetition_penalty is not None:
        arguments["repetition_penalty"] = settings.repetition_penalty
    return arguments
