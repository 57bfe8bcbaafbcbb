"""Text statistics on lists of strings (chapter 1): n-gram counts, token L2 (Rosmine), distinct-n (Li et al.
2016), self-BLEU (Zhu et al. 2018), the Zipf coefficient and the rank-frequency table behind a Zipf plot (Holtzman
et al. 2019), seq-rep-n (Welleck et al. 2019), an overuse table (slop-forensics, Antislop) and the mean length.

A "word" here is the course's word, `dftlab.metrics.words.words`: lower case, punctuation dropped, so "The" and
"the." are one word. Every function takes `split_words`, a function from a text to its words, to count in another
unit (the study passes `dftlab.metrics.words.whitespace_tokens`, the unit its cached results were measured in).
Where a `tokenizer` is accepted and passed, the tokens are the ids of `tokenizer.encode(text)` instead.
N-grams never cross from one text into the next.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pandas as pd

from dftlab.metrics.words import check_split_words, words
from dftlab.validation import check_int, check_texts


def _tokens(text: str, tokenizer=None, split_words=words) -> list:
    """The words of `text` (`split_words`), or the ids of `tokenizer.encode(text)` when a tokenizer is passed."""
    if tokenizer is None:
        return list(split_words(text))
    encoded = tokenizer.encode(text)
    # A `tokenizers.Tokenizer` returns an Encoding object; a transformers tokenizer returns the ids.
    return list(getattr(encoded, "ids", encoded))


def ngrams(tokens: list, n: int) -> list[tuple]:
    """The n-grams of one list of tokens, in order, each a tuple of n tokens (none when there are fewer than n)."""
    return [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]


def ngram_counts(texts, n: int = 1, tokenizer=None, split_words=words) -> Counter:
    """Counts of every n-gram (a tuple of n words, or of n token ids with a `tokenizer`) over all texts; n-grams
    stay inside one text."""
    texts = check_texts(texts)
    n = check_int(n, "n")
    split_words = check_split_words(split_words)
    counts = Counter()
    for text in texts:
        counts.update(ngrams(_tokens(text, tokenizer, split_words), n))
    return counts


def _frequencies(counts: Counter, name: str, n: int) -> dict:
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"{name} has no {n}-grams at all (every text is shorter than n={n} tokens). "
                         f"Pass longer texts or a smaller n.")
    return {gram: count / total for gram, count in counts.items()}


def token_l2_distance(samples, reference, n: int = 1, tokenizer=None, split_words=words) -> float:
    """Rosmine's "token L2": the L2 distance between the n-gram frequency vectors of two corpora.

    Each vector is normalised to sum to 1 and lives on the union of both vocabularies, so an n-gram
    missing from one side counts as frequency 0 there. 0 means identical frequencies; the largest
    possible value, sqrt(2), means two corpora with no n-gram in common, each made of one n-gram.
    """
    samples, reference = check_texts(samples, "samples"), check_texts(reference, "reference")
    p = _frequencies(ngram_counts(samples, n, tokenizer, split_words), "samples", n)
    q = _frequencies(ngram_counts(reference, n, tokenizer, split_words), "reference", n)
    # fsum over sorted n-grams: the result does not depend on set order (PYTHONHASHSEED) in the last digit.
    union = sorted(p.keys() | q.keys())
    return math.sqrt(math.fsum((p.get(gram, 0.0) - q.get(gram, 0.0)) ** 2 for gram in union))


def distinct_n(texts, n: int = 1, split_words=words) -> float:
    """distinct-n (Li et al. 2016): distinct n-grams / all n-grams, counted over the whole corpus.

    1 means no n-gram ever repeats; a formulaic corpus scores low. Raises ValueError when the corpus
    has no n-gram at all (rather than returning 0.0, which would read as "maximally repetitive").
    """
    counts = ngram_counts(texts, n, split_words=split_words)
    total = sum(counts.values())
    if total == 0:
        raise ValueError(f"texts has no {n}-grams at all (every text is shorter than n={n} words); "
                         f"distinct-{n} is undefined. Pass longer texts or a smaller n.")
    return len(counts) / total


def self_bleu(texts, max_texts: int = 200, seed: int = 0, max_ngram_order: int = 4, split_words=words) -> float:
    """Self-BLEU (Zhu et al. 2018, Texygen) on a 0..1 scale: how much each text reads like the others.

    Each text is scored as a hypothesis against all the other texts as references with sacrebleu's
    sentence BLEU, and the scores are averaged. High self-BLEU = low diversity. Settings: the texts' words
    (`split_words`; `dftlab.metrics.words.bleu_13a_tokens` gives sacrebleu's own "13a" tokens), effective
    order (short texts use fewer n-gram orders) and "floor" smoothing with 0.1, the smoothing (NLTK's method1)
    that Texygen uses. At most `max_texts` texts are kept, a subset drawn with `seed` (the same call gives the
    same subset).

    The result equals the mean of `BLEU.sentence_score(text, other_texts)` on the texts' words joined by
    spaces, with sacrebleu's tokenizer off (a test checks this), but each text's n-grams are extracted once
    instead of once per hypothesis, so it costs O(N), not O(N^2).
    """
    from sacrebleu.metrics import BLEU

    texts = check_texts(texts)
    split_words = check_split_words(split_words)
    max_texts = check_int(max_texts, "max_texts")
    max_ngram_order = check_int(max_ngram_order, "max_ngram_order")
    if len(texts) < 2:
        raise ValueError(f"texts must hold at least 2 texts for self-BLEU (each is compared with the others), "
                         f"got {len(texts)}.")
    if len(texts) > max_texts:
        keep = np.random.default_rng(seed).choice(len(texts), size=max_texts, replace=False)
        texts = [texts[i] for i in sorted(keep)]
    stats = [_all_ngram_counts(list(split_words(text)), max_ngram_order) for text in texts]
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


def _all_ngram_counts(tokens: list, max_order: int) -> tuple[Counter, int]:
    """Counts of the 1- to `max_order`-grams of one text, and its length (what BLEU needs of a sentence)."""
    return Counter(gram for order in range(1, max_order + 1) for gram in ngrams(tokens, order)), len(tokens)


def rank_frequency(texts, tokenizer=None, split_words=words) -> pd.DataFrame:
    """Each word's relative frequency by rank, most frequent first (the data of a Zipf plot).

    Columns: rank (1, 2, ...), word, count, frequency (count over all words). Ties in frequency are ranked in order of
    first appearance. `zipf_coefficient` fits a line to these same rows."""
    counts = ngram_counts(texts, 1, tokenizer, split_words)
    ranked = counts.most_common()
    total = sum(counts.values())
    counted = np.array([count for _, count in ranked], dtype=np.float64)
    return pd.DataFrame({"rank": np.arange(1, len(ranked) + 1), "word": [gram[0] for gram, _ in ranked],
                         "count": counted.astype(int), "frequency": counted / max(total, 1)})


def zipf_coefficient(texts, tokenizer=None, top: int | None = 5000, split_words=words) -> float:
    """The Zipf exponent s of the corpus: the fit frequency ~ rank**(-s) (Holtzman et al. 2019).

    A least-squares line through (log rank, log frequency) of the `top` most frequent words (all words if
    top=None): the first rows of `rank_frequency(texts)`, the data of `plots.plot_zipf`. s is minus the slope.
    Human English has s close to 1; a larger s means a few words take more of the mass.
    """
    if top is not None:
        top = check_int(top, "top")
    table = rank_frequency(texts, tokenizer, split_words)
    frequencies = table["count"].to_numpy(dtype=np.float64)[:top]
    if len(frequencies) < 2:
        raise ValueError(f"texts has {len(frequencies)} distinct token(s); a Zipf fit needs at least 2 "
                         f"(and top must be at least 2, got {top!r}).")
    ranks = np.arange(1, len(frequencies) + 1, dtype=np.float64)
    slope, _intercept = np.polyfit(np.log(ranks), np.log(frequencies), 1)
    return float(-slope)


def repetition_rate(texts, n: int = 4, split_words=words) -> float:
    """seq-rep-n (Welleck et al. 2019): mean over texts of 1 - unique n-grams / n-grams in that text.

    Unlike distinct-n this looks inside each text: 0 means no text repeats an n-gram of its own.
    Texts shorter than n words have no n-grams and are left out of the mean; ValueError if all are.
    """
    texts = check_texts(texts)
    n = check_int(n, "n")
    split_words = check_split_words(split_words)
    rates = []
    for text in texts:
        grams = ngrams(_tokens(text, None, split_words), n)
        if grams:
            rates.append(1.0 - len(set(grams)) / len(grams))
    if not rates:
        raise ValueError(f"every text in texts is shorter than n={n} words, so seq-rep-{n} is undefined. "
                         f"Pass longer texts or a smaller n.")
    return float(np.mean(rates))


def overuse_table(samples, reference, n=(1, 2, 3), phrases=None, min_count: int = 5,
                  top: int | None = 20, split_words=words) -> pd.DataFrame:
    """The phrases the samples use more often than the reference does (slop-forensics; Antislop).

    overuse_ratio = (relative frequency in samples) / (relative frequency in reference), where the
    relative frequency of a k-word phrase is its count over all k-grams of that corpus. To keep the
    ratio finite for phrases absent from the reference, both frequencies in the ratio are add-one
    smoothed over the V distinct k-grams of the two corpora together: (count + 1) / (total + V).
    The `sample_freq` and `reference_freq` columns show the raw, unsmoothed frequencies.

    n: an int, or several (default 1, 2 and 3 words). phrases: if given, exactly these phrases (strings,
    split into words by `split_words`, like the texts) are reported and `n` and `min_count` are ignored. Otherwise every n-gram that
    occurs at least `min_count` times in the samples is a candidate. The table is sorted by
    overuse_ratio, highest first, and cut to `top` rows (top=None keeps all).
    """
    samples = check_texts(samples, "samples")
    reference = check_texts(reference, "reference")
    if top is not None:
        top = check_int(top, "top")
    split_words = check_split_words(split_words)
    if phrases is not None:
        if isinstance(phrases, str) or not isinstance(phrases, (list, tuple)) or not phrases:
            raise ValueError("phrases must be a non-empty list of strings (or None to find them), "
                             f"got {type(phrases).__name__}.")
        wanted = []
        for index, phrase in enumerate(phrases):
            if not isinstance(phrase, str) or not split_words(phrase):
                raise ValueError(f"phrases[{index}] must be a non-empty string of words, got {phrase!r}.")
            wanted.append(tuple(split_words(phrase)))
        orders = sorted({len(gram) for gram in wanted})
    else:
        orders = list(n) if isinstance(n, (list, tuple, range)) else [n]
        if not orders:
            raise ValueError("n must be a positive int or a non-empty list of them, got an empty list.")
        orders = sorted({check_int(order, "n") for order in orders})
        min_count = check_int(min_count, "min_count")
    rows = []
    for order in orders:
        sample_counts = ngram_counts(samples, order, split_words=split_words)
        reference_counts = ngram_counts(reference, order, split_words=split_words)
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



def mean_word_count(texts, split_words=words) -> float:
    """The mean length of the texts in words (`split_words`, the course's words by default)."""
    texts = check_texts(texts)
    split_words = check_split_words(split_words)
    return float(np.mean([len(split_words(text)) for text in texts]))
