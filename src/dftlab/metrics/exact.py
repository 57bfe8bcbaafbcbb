"""Exact-truth metrics, for a generator whose probabilities we know (dftlab.tinytales.TinyTales; chapter 3):
validity, choice frequencies with a chi-square test, and the sequence-level cross-entropy and KL.

`tales` is duck-typed: .log_prob(prompt, completion), .parse(prompt, completion), .choice_distribution(name)
and .entropy().
"""
from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from dftlab.metrics.model_stats import completion_log_probs
from dftlab.validation import check_number, check_samples


ABSENT = "<absent>"  # the option label for a valid story in which the choice is never made


def validity_rate(samples, tales) -> float:
    """The share of samples that the generator could have produced (finite log-probability under it)."""
    pairs = check_samples(samples)
    return sum(math.isfinite(tales.log_prob(prompt, completion)) for prompt, completion in pairs) / len(pairs)



def _picked_options(choices: dict | None, name: str) -> list:
    """The options one parsed story picked at choice `name`.

    One option for a choice made once; one per occurrence for a repeated choice, which `parse`
    numbers name_1, name_2, ... (TinyTales' `connective` and `action`); [ABSENT] if the story never makes it.
    """
    choices = choices or {}
    if name in choices:
        return [ABSENT if choices[name] is None else choices[name]]
    prefix = name + "_"
    numbered = sorted((int(key[len(prefix):]), option) for key, option in choices.items()
                      if key.startswith(prefix) and key[len(prefix):].isdigit())
    return [option for _number, option in numbered] or [ABSENT]


def _choice_counts(samples, tales, name: str) -> tuple[Counter, dict, int]:
    """Observed option counts over the valid samples, the true option probabilities, and the number of valid samples."""
    pairs = check_samples(samples)
    if not isinstance(name, str):
        raise ValueError(f"name must be the name of a choice (a str), got {name!r}.")
    true_probs = dict(tales.choice_distribution(name))
    counts, num_valid = Counter(), 0
    for prompt, completion in pairs:
        if not math.isfinite(tales.log_prob(prompt, completion)):
            continue
        num_valid += 1
        counts.update(_picked_options(tales.parse(prompt, completion), name))
    missing_mass = 1.0 - sum(true_probs.values())
    if missing_mass > 1e-9:
        true_probs[ABSENT] = true_probs.get(ABSENT, 0.0) + missing_mass
    return counts, true_probs, num_valid


def choice_frequency_table(samples, tales, name: str) -> pd.DataFrame:
    """How often the valid samples pick each option of choice `name`, next to its true probability.

    Columns: option, count, sample_freq, true_prob (the generator's exact marginal) and ratio =
    sample_freq / true_prob (inf for an option the generator never picks). sample_freq is count over
    the valid samples, or, for a choice a story makes several times (TinyTales' middle sentences), over
    all its occurrences. Valid stories that never make the choice count under the option "<absent>".
    A model that collapses onto the mode shows ratio > 1 for the likeliest option and < 1 for the others.
    """
    counts, true_probs, num_valid = _choice_counts(samples, tales, name)
    if num_valid == 0:
        raise ValueError("no sample in samples is valid under tales (validity_rate is 0), so there are no "
                         "choices to count. Check the samples, or train the model longer.")
    num_observations = sum(counts.values())
    options = list(true_probs) + [option for option in counts if option not in true_probs]
    rows = []
    for option in options:
        sample_freq, true_prob = counts[option] / num_observations, true_probs.get(option, 0.0)
        ratio = sample_freq / true_prob if true_prob > 0 else (math.inf if sample_freq > 0 else math.nan)
        rows.append({"option": option, "count": counts[option], "sample_freq": sample_freq,
                     "true_prob": true_prob, "ratio": ratio})
    return pd.DataFrame(rows).sort_values("true_prob", ascending=False, kind="stable").reset_index(drop=True)


def choice_chi_square(samples, tales, name: str, min_expected: float = 5.0) -> tuple[float, float]:
    """Chi-square goodness-of-fit of the valid samples' choices of `name` against the true marginal.

    Returns (statistic, p_value). The chi-square approximation needs expected counts of about 5 or
    more, so the options with expected count below `min_expected` are pooled into one cell; if that
    cell is still too small it absorbs the next-smallest option, and so on. Options the generator never
    picks have expected count 0 and always land in the pooled cell. ValueError when fewer than two
    cells remain (too few valid samples for a test). For a choice made several times per story, every
    occurrence is one observation; occurrences that share a parent choice within one story (TinyTales'
    actions share the place) are not independent, so there the p-value is only approximate (too small).
    """
    from scipy.stats import chi2

    min_expected = check_number(min_expected, "min_expected", 0.0, low_open=True, hint="5 is the usual rule.")
    counts, true_probs, num_valid = _choice_counts(samples, tales, name)
    # Sorted by expected count, ties by name, so the pooling is the same in every run.
    options = sorted(set(true_probs) | set(counts), key=lambda option: (true_probs.get(option, 0.0), str(option)))
    num_observations = sum(counts.values())
    cells = [(num_observations * true_probs.get(option, 0.0), counts[option]) for option in options]
    pooled = None  # (expected, observed) of the pooled cell, once there is one
    while cells and (cells[0][0] < min_expected or (pooled is not None and pooled[0] < min_expected)):
        expected, observed = cells.pop(0)
        pooled = (expected, observed) if pooled is None else (pooled[0] + expected, pooled[1] + observed)
    if pooled is not None:
        cells.append(pooled)
    if len(cells) < 2:
        raise ValueError(f"only {num_valid} valid samples ({num_observations} observations): after pooling the "
                         f"options with expected count below {min_expected}, fewer than two cells remain for "
                         f"choice {name!r}. Draw more samples.")
    statistic = sum((observed - expected) ** 2 / expected for expected, observed in cells)
    return float(statistic), float(chi2.sf(statistic, len(cells) - 1))


def sequence_cross_entropy(model, tokenizer, true_examples, tales, batch_size: int = 16) -> dict:
    """Exact-truth fit of a model to the generator q: sequence cross-entropy, H(q) and KL(q || p), in nats.

    cross_entropy = -mean log p(completion + EOS | prompt) over `true_examples`, stories drawn from q
    itself (via `completion_log_probs`). Its expectation is H(q) + KL(q || p), so with the exact
    true_entropy = H(completion | prompt) from `tales.entropy()`, kl = cross_entropy - true_entropy
    estimates KL(q || p) without bias; standard_error is that of the mean (the same for both). The model
    is scored on one tokenisation of each text only, while it could also spell the same text with
    other token sequences; ignoring them lowers p, so the estimate is an upper bound on the text-level
    quantities. The prompts of `true_examples` must follow the generator's own prompt distribution.
    """
    pairs = check_samples(true_examples, "true_examples")
    for index, (prompt, completion) in enumerate(pairs):
        if not math.isfinite(tales.log_prob(prompt, completion)):
            raise ValueError(f"true_examples[{index}] cannot be produced by tales (log_prob is -inf); "
                             f"true_examples must be stories sampled from tales itself.")
    log_probs = completion_log_probs(model, tokenizer, list(true_examples), batch_size=batch_size)
    cross_entropy = float(-log_probs.mean())
    standard_error = float(log_probs.std(ddof=1) / math.sqrt(len(log_probs))) if len(log_probs) > 1 else math.nan
    true_entropy = float(tales.entropy())
    return {"cross_entropy": cross_entropy, "true_entropy": true_entropy, "kl": cross_entropy - true_entropy,
            "standard_error": standard_error, "num_examples": len(log_probs)}
