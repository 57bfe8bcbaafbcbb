"""Chapter 6, distribution matching: the exercises on distinct-n, token-L2, the MMD permutation test and precision
and recall by k-nearest-neighbour coverage, and on what they cannot see.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is one.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np
import torch

from dftlab import metrics
from dftlab.course.checks.engine import (Case, FunctionExercise, Mistake, PredictionExercise, float_result, near,
                                         random_corpus)
from dftlab.metrics.text import ngrams
from dftlab.metrics.words import whitespace_tokens, words


def _distinct_per_text(texts, n):
    ratios = [len(set(ngrams(words(t), n))) / len(ngrams(words(t), n)) for t in texts if ngrams(words(t), n)]
    return sum(ratios) / len(ratios)


def _distinct_joined(texts, n):
    grams = ngrams(words(" ".join(texts)), n)
    return len(set(grams)) / len(grams)


def _distinct_characters(texts, n):
    grams = [g for t in texts for g in ngrams(list(t), n)]
    return len(set(grams)) / len(grams)


def _distinct_over_words(texts, n):
    grams = [g for t in texts for g in ngrams(words(t), n)]
    return len(set(grams)) / sum(len(words(t)) for t in texts)


def _distinct_cases(g):
    return [
        Case("texts = ['the cat sat', 'the cat ran'], n = 1", (["the cat sat", "the cat ran"], 1)),
        Case("texts = ['the cat sat', 'the cat ran'], n = 2", (["the cat sat", "the cat ran"], 2)),
        Case("texts = ['a b c d'], n = 2 (nothing repeats)", (["a b c d"], 2)),
        Case("texts = ['sat', 'the cat sat'], n = 2 (a text shorter than n)", (["sat", "the cat sat"], 2)),
        Case("texts = ['The cat sat.', 'the cat, the dog'], n = 1 (capitals and punctuation)",
              (["The cat sat.", "the cat, the dog"], 1)),
        Case("20 random texts, n = 1", (random_corpus(g, 20, 3, 8), 1)),
        Case("20 random texts, n = 2", (random_corpus(g, 20, 3, 8), 2)),
        Case("10 random texts, n = 3", (random_corpus(g, 10, 4, 9), 3)),
    ]


CH06_DISTINCT_N = FunctionExercise(
    "ch06.distinct_n", "distinct_n(texts, n)",
    "distinct-n of a list of texts (words as dftlab.metrics.words.words(text) gives them: lower case, punctuation "
    "dropped): distinct n-grams / all n-grams, over the corpus.",
    reference=metrics.distinct_n, cases=_distinct_cases, convert=float_result,
    mistakes=(
        Mistake("counted per text instead of over the corpus: pool the n-grams of every text, then divide once "
                 "(repeats *across* texts are what makes a corpus formulaic).",
                 _distinct_per_text),
        Mistake("you joined the texts, so n-grams cross from the end of one text into the next: "
                 "take n-grams inside each text.",
                 _distinct_joined),
        Mistake("you counted characters, not words: split each text into its words with "
                 "`metrics.words.words(text)`.",
                 _distinct_characters),
        Mistake("you split the texts on whitespace, so 'The' and 'the', or 'cat' and 'cat,', count as different "
                 "words: take the words of `metrics.words.words(text)`, which lower-cases and drops punctuation.",
                 lambda texts, n: metrics.distinct_n(texts, n, split_words=whitespace_tokens)),
        Mistake("you returned the number of distinct n-grams: divide it by the total number of n-grams.",
                 lambda texts, n: float(len(Counter(g for t in texts for g in ngrams(words(t), n))))),
        Mistake("you divided by the number of words, not the number of n-grams (a text of L words has "
                 "L - n + 1 n-grams).",
                 _distinct_over_words),
        Mistake("the ratio is upside down: distinct n-grams / all n-grams, a number between 0 and 1.",
                 lambda texts, n: 1 / metrics.distinct_n(texts, n)),
        Mistake("your function ignores n: it always counts single words.",
                 lambda texts, n: metrics.distinct_n(texts, 1)),
    ),
)


def _word_frequencies(texts):
    counts = Counter(w for t in texts for w in words(t))
    total = sum(counts.values())
    return {w: c / total for w, c in counts.items()}


def _l2_variant(norm: str = "l2", normalise: bool = True, union: bool = True):
    def distance(samples, reference):
        if normalise:
            p, q = _word_frequencies(samples), _word_frequencies(reference)
        else:
            p = Counter(w for t in samples for w in words(t))
            q = Counter(w for t in reference for w in words(t))
        vocabulary = (p.keys() | q.keys()) if union else p.keys()
        differences = [p.get(w, 0.0) - q.get(w, 0.0) for w in vocabulary]
        if norm == "l1":
            return sum(abs(d) for d in differences)
        squared = sum(d * d for d in differences)
        return squared if norm == "squared" else math.sqrt(squared)
    return distance


def _l2_cases(g):
    return [
        Case("samples = ['a a b'], reference = ['a b b']", (["a a b"], ["a b b"])),
        Case("samples = reference = ['the cat sat', 'the dog']",
              (["the cat sat", "the dog"], ["the cat sat", "the dog"])),
        Case("samples = ['x'], reference = ['y'] (no word in common)", (["x"], ["y"])),
        Case("samples = ['a b'], reference = ['a b c c']", (["a b"], ["a b c c"])),
        Case("samples = ['The cat sat.'], reference = ['the cat, the mat'] (capitals and punctuation)",
              (["The cat sat."], ["the cat, the mat"])),
        Case("random corpora of 15 and 25 texts", (random_corpus(g, 15, 2, 6), random_corpus(g, 25, 2, 6))),
    ]


CH06_TOKEN_L2 = FunctionExercise(
    "ch06.token_l2_distance", "token_l2_distance(samples, reference)",
    "The L2 distance between the word-frequency vectors (each summing to 1) of two lists of texts, words as "
    "dftlab.metrics.words.words(text) gives them (lower case, punctuation dropped).",
    reference=lambda samples, reference: metrics.token_l2_distance(samples, reference, n=1),
    cases=_l2_cases, convert=float_result,
    mistakes=(
        Mistake("you compared raw counts: normalise each corpus's counts to frequencies (divide by its total) "
                 "so that corpora of different sizes compare.",
                 _l2_variant(normalise=False)),
        Mistake("you returned the squared distance: take the square root.",
                 _l2_variant(norm="squared")),
        Mistake("that is the L1 distance (sum of absolute differences): L2 is the square root of the sum of squares.",
                 _l2_variant(norm="l1")),
        Mistake("you only looped over the words of `samples`: a word that appears only in `reference` counts "
                 "with frequency 0 in the samples (use the union of both vocabularies).",
                 _l2_variant(union=False)),
        Mistake("you split the texts on whitespace, so 'The' and 'the', or 'sat' and 'sat.', count as different "
                 "words: take the words of `metrics.words.words(text)`, which lower-cases and drops punctuation.",
                 lambda samples, reference: metrics.token_l2_distance(samples, reference, n=1,
                                                                      split_words=whitespace_tokens)),
    ),
)


def _mmd2(x, y):
    """The statistic the learner is given: dftlab's unbiased MMD^2 (RBF kernel, median-heuristic bandwidth).

    Rounded to 12 decimals, so the same two sets give the same value whatever the order of their rows (sums in
    another order differ in the last bits): ties are then ties, as in `metrics.mmd`, which counts values within
    1e-12 of the observed one as ties.
    """
    return round(metrics.mmd(x, y, num_permutations=1).mmd2, 12)


def _permutation_cases(g):
    def sample(rows, shift=0.0, dim=4):
        return (torch.randn(rows, dim, generator=g, dtype=torch.float64) + shift).numpy()

    small_x, small_y = sample(3), sample(4)
    same_x, same_y = sample(20), sample(25)
    far_x, far_y = sample(15), sample(12, 1.5)
    near_x, near_y = sample(30), sample(20, 0.4)
    # The first case tells most mistakes apart (the feedback names the one that fits the first failing case).
    return [
        Case("x: 30 points, y: 20 points shifted by 0.4, 150 permutations, seed 7", (near_x, near_y, _mmd2, 150, 7)),
        Case("x: 20 points, y: 25 points, one distribution, 200 permutations, seed 0",
              (same_x, same_y, _mmd2, 200, 0)),
        Case("x: 3 points, y: 4 points, one distribution, 200 permutations, seed 0 (only 35 distinct "
              "relabellings, so the observed one comes up again)", (small_x, small_y, _mmd2, 200, 0)),
        Case("x: 15 points, y: 12 points shifted by 1.5, 100 permutations, seed 3", (far_x, far_y, _mmd2, 100, 3)),
    ]


def _permutation_variant(compare=">=", plus_one=True, pooled=True, generator_per_loop=False, shuffle="labels",
                         two_sided=False):
    def p_value(x, y, statistic, num_permutations, seed):
        x, y = np.asarray(x), np.asarray(y)
        pool = np.concatenate([x, y])
        labels = np.arange(len(pool)) < len(x)
        observed = statistic(x, y)
        rng = np.random.default_rng(seed)
        count = 0
        for _ in range(num_permutations):
            if generator_per_loop:
                rng = np.random.default_rng(seed)
            if not pooled:
                value = statistic(rng.permutation(x), rng.permutation(y))
            elif shuffle == "labels":
                shuffled = rng.permutation(labels)
                value = statistic(pool[shuffled], pool[~shuffled])
            else:
                order = rng.permutation(len(pool))
                value = statistic(pool[order[:len(x)]], pool[order[len(x):]])
            if two_sided:
                value, target = abs(value), abs(observed)
            else:
                target = observed
            count += value >= target if compare == ">=" else value > target
        return (count + 1) / (num_permutations + 1) if plus_one else count / num_permutations
    return p_value


CH06_PERMUTATION = FunctionExercise(
    "ch06.permutation_p_value", "permutation_p_value(x, y, statistic, num_permutations, seed)",
    "The p-value of the MMD permutation test: pool x and y, shuffle the labels with "
    "np.random.default_rng(seed), and count the relabellings whose statistic is at least the observed one, "
    "with the +1 correction.",
    reference=lambda x, y, statistic, num_permutations, seed: metrics.mmd(x, y, num_permutations, seed).p_value,
    cases=_permutation_cases, convert=float_result,
    mistakes=(
        Mistake("you counted only relabellings with a statistic strictly greater than the observed one: count "
                 "ties as well (>=). The observed labelling itself is one of the possible relabellings, and with "
                 "few points it comes up again among the shuffles.",
                 _permutation_variant(compare=">")),
        Mistake("you left out the +1 correction: the p-value is (1 + #{shuffles at least as extreme}) / "
                 "(1 + num_permutations), counting the observed labelling as one of the shuffles, so it can never be "
                 "0.",
                 _permutation_variant(plus_one=False)),
        Mistake("you shuffled inside each sample, which leaves both sets (and the statistic) unchanged, so every "
                 "shuffle ties. Pool x and y first, then reassign the labels 'x' and 'y' at random.",
                 _permutation_variant(pooled=False)),
        Mistake("you created the random generator inside the loop, so every shuffle is the same one. Create "
                 "`rng = np.random.default_rng(seed)` once, before the loop.",
                 _permutation_variant(generator_per_loop=True)),
        Mistake("you shuffled the pooled points and split them after len(x). That is a valid permutation test, "
                 "but it draws different relabellings from the package: shuffle the label vector with "
                 "`rng.permutation(labels)` as the exercise says, so that the p-values can be compared exactly.",
                 _permutation_variant(shuffle="points")),
        Mistake("you compared absolute values: the test is one-sided, because a large MMD^2 is the evidence of a "
                 "difference and a negative one is not.",
                 _permutation_variant(two_sided=True)),
    ),
)


# --- Precision and recall: k-nearest-neighbour coverage ------------------------------------------------------------


def _coverage_radius(reference, samples, radius):
    samples, reference = torch.as_tensor(samples, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    distances = torch.cdist(samples, reference)
    return float((distances <= radius[None, :]).any(dim=1).double().mean())


def _sorted_distances(reference):
    reference = torch.as_tensor(reference, dtype=torch.float64)
    return torch.cdist(reference, reference).sort(dim=1).values


def _coverage_self_counted(reference, samples, k):
    return _coverage_radius(reference, samples, _sorted_distances(reference)[:, k - 1])


def _coverage_one_radius(reference, samples, k):
    radius = _sorted_distances(reference)[:, k].mean()
    return _coverage_radius(reference, samples, radius.expand(len(reference)))


def _coverage_count(reference, samples, k):
    return metrics.knn_coverage(reference, samples, k) * len(samples)


def _coverage_cases(g):
    line = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    return [
        Case("reference = points 0, 1, 2, 10 on a line, samples = 0.5, 5, 13, 30, k = 1",
              (line, torch.tensor([[0.5], [5.0], [13.0], [30.0]]), 1)),
        Case("reference = points 0, 1, 2, 10 on a line, samples = 0.5, 5, 13, 30, k = 2",
              (line, torch.tensor([[0.5], [5.0], [13.0], [30.0]]), 2)),
        Case("reference = 30 random points in 2-D, samples = 20 points drawn from a narrower cloud, k = 3",
              (torch.randn(30, 2, generator=g, dtype=torch.float64),
               0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64), 3)),
        Case("reference = 20 points from a narrow cloud, samples = 30 from a wide one, k = 3",
              (0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64),
               torch.randn(30, 2, generator=g, dtype=torch.float64), 3)),
        Case("reference = 40 random points in 8-D, samples = 25 random points in 8-D, k = 5",
              (torch.randn(40, 8, generator=g, dtype=torch.float64),
               torch.randn(25, 8, generator=g, dtype=torch.float64), 5)),
    ]


CH06_COVERAGE = FunctionExercise(
    "ch06.coverage", "coverage(reference, samples, k)",
    "The share of `samples` [M, d] that lie within at least one `reference` point's k-nearest-neighbour ball "
    "(radius: its distance to its k-th nearest *other* reference point). Precision is coverage(real, generated), "
    "recall is coverage(generated, real).",
    reference=metrics.knn_coverage, cases=_coverage_cases, convert=float_result,
    mutating_hint="sort a copy (`torch.sort` or `np.sort` return new arrays), not the input",
    mistakes=(
        Mistake("you counted each reference point as its own nearest neighbour: its distance to itself is 0, so "
                 "after sorting, column k (not k - 1) holds the k-th nearest *other* point.",
                 _coverage_self_counted),
        Mistake("you swapped the roles: the balls are drawn around the *reference* points, and you count the "
                 "*samples* that fall inside one.",
                 lambda reference, samples, k: metrics.knn_coverage(samples, reference, k)),
        Mistake("you gave every reference point the same radius (the mean k-NN distance): each point has its own "
                 "radius, so that dense regions get small balls and sparse regions large ones.",
                 _coverage_one_radius),
        Mistake("you returned how many samples are covered: return their share (divide by the number of samples).",
                 _coverage_count),
    ),
)


FUNCTIONS = (CH06_DISTINCT_N, CH06_TOKEN_L2, CH06_PERMUTATION, CH06_COVERAGE)

PREDICTIONS = (
    PredictionExercise(
        "ch06.formulaic_distinct_1",
        "Predict distinct-1 of a corpus made of 100 copies of 'the cat sat on the mat'.",
        kind="number", tolerance=0.005,
        misconceptions=((near(5 / 6, 0.02), "5/6 is distinct-1 of a single copy: repeats across texts count too, "
                                             "because distinct-n is computed over the whole corpus."),),
        lesson="5 distinct words out of 600: distinct-1 = 0.0083. Each text on its own looks varied; only the "
               "corpus-level count exposes the repetition."),
    PredictionExercise(
        "ch06.shuffled_token_l2",
        "Predict the unigram token-L2 distance between a corpus and the same corpus with the words of every text "
        "shuffled.",
        kind="number", tolerance=0.02,
        misconceptions=((lambda v: v > 0.1, "Shuffling words inside a text does not change how often each word "
                                            "occurs."),),
        lesson="Unigram frequencies ignore order, so the distance is 0: token-L2 with n = 1 cannot see word salad. "
               "Higher n, or embedding-level measures such as MMD, are needed for that."),
)
