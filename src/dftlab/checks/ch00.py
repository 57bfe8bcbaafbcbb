"""Chapter 0, what formulaic writing looks like: the exercises on the overuse ratio, the optimum of preference
tuning, precision and recall of distributions (k-nearest-neighbour coverage), and what decoding and a
typicality-biased reward do to a distribution.

Registered by `dftlab.checks`. A reference answer calls the dftlab function the chapter derives wherever there is
one; the preference-tuning optimum and k-NN coverage are computed in the chapter's cells, so their references are
written out here.
"""
from __future__ import annotations

import torch

from dftlab.checks.engine import (_float_result, FunctionExercise, PredictionExercise, _AnswerProblem, _as_tensor, _Case, _Mistake,
                                  _near, _probs_of, _random_corpus, _random_logits)
from dftlab.metrics import formulaic, word_overuse


# ---------------------------------------------------------------------------------------------
# 0.1 The overuse ratio of one word.
# ---------------------------------------------------------------------------------------------

def _overuse_ratio(texts, word):
    table = word_overuse(texts, min_count=1)
    row = table[table["word"] == word]
    return float(row["overuse_ratio"].iloc[0]) if len(row) else 0.0


def _overuse_cases(g):
    formulaic.english_frequency("the")  # load wordfreq's list now, outside the learner's time limit
    return [
        _Case("texts = ['The cat sat on the mat.', 'A dog and a cat.'], word = 'cat'",
              (["The cat sat on the mat.", "A dog and a cat."], "cat")),
        _Case("texts = ['Cat! The cat, the CAT.', 'A dog.'], word = 'cat' (capitals and punctuation)",
              (["Cat! The cat, the CAT.", "A dog."], "cat")),
        _Case("texts = ['The sea, the sea.', 'A tapestry of light, a tapestry of night.', 'The end.'], "
              "word = 'tapestry'",
              (["The sea, the sea.", "A tapestry of light, a tapestry of night.", "The end."], "tapestry")),
        _Case("texts = ['The cat sat.', 'The dog ran.'], word = 'tapestry' (a word that never appears)",
              (["The cat sat.", "The dog ran."], "tapestry")),
        _Case("12 random texts of 2 to 30 words, word = 'the'", (_random_corpus(g, 12, 2, 30), "the")),
        _Case("8 random texts of 5 to 15 words, word = 'dog'", (_random_corpus(g, 8, 5, 15), "dog")),
    ]


def _occurrences(texts, word):
    return sum(formulaic.words(text).count(word) for text in texts)


def _total_words(texts):
    return sum(len(formulaic.words(text)) for text in texts)


def _split_occurrences(texts, word):
    return sum(text.split().count(word) for text in texts)


CH00_OVERUSE_RATIO = FunctionExercise(
    "ch00.overuse_ratio", "overuse_ratio(texts, word)",
    "How many times more often `word` appears in `texts` than in modern English: its share of all the words of "
    "the texts, divided by metrics.formulaic.english_frequency(word).",
    reference=_overuse_ratio, cases=_overuse_cases, convert=_float_result,
    mistakes=(
        _Mistake("you divided by the number of texts: the word's frequency is its count over the total number of "
                 "words in all the texts.",
                 lambda texts, word: _occurrences(texts, word) / len(texts) / formulaic.english_frequency(word)),
        _Mistake("the ratio is upside down: divide the word's frequency in the texts by its English frequency, "
                 "so that a word used more often than in English gets a ratio above 1.",
                 lambda texts, word: formulaic.english_frequency(word)
                 / max(_occurrences(texts, word) / _total_words(texts), 1e-30)),
        _Mistake("you returned the word's frequency in the texts: divide it by its English frequency.",
                 lambda texts, word: _occurrences(texts, word) / _total_words(texts)),
        _Mistake("you counted the texts that use the word, not its occurrences: a text that says 'tapestry' twice "
                 "counts twice.",
                 lambda texts, word: sum(word in formulaic.words(text) for text in texts) / _total_words(texts)
                 / formulaic.english_frequency(word)),
        _Mistake("you averaged each text's frequency instead of pooling all the words: a short text then weighs as "
                 "much as a long one. Count the word over all the texts and divide by their total number of words.",
                 lambda texts, word: sum(formulaic.words(t).count(word) / max(len(formulaic.words(t)), 1)
                                         for t in texts) / len(texts) / formulaic.english_frequency(word)),
        _Mistake("you split the texts with str.split(), so 'The' and 'cat,' are not counted as 'the' and 'cat': "
                 "use metrics.formulaic.words(text), which lower-cases and drops punctuation.",
                 lambda texts, word: _split_occurrences(texts, word) / sum(len(t.split()) for t in texts)
                 / formulaic.english_frequency(word)),
    ),
)


# ---------------------------------------------------------------------------------------------
# 0.3 The optimum of KL-regularised preference tuning.
# ---------------------------------------------------------------------------------------------

def _preference_optimum(reference_probs, rewards, beta):
    return torch.softmax(torch.log(reference_probs) + rewards / beta, dim=-1)


def _preference_cases(g):
    hand = _probs_of([0.5, 0.3, 0.2])
    return [
        _Case("reference_probs = [0.5, 0.3, 0.2], rewards = [0, 1, 0], beta = 1",
              (hand, torch.tensor([0.0, 1.0, 0.0]), 1.0)),
        _Case("reference_probs = [0.5, 0.3, 0.2], rewards = [0, 1, 0], beta = 0.25",
              (hand, torch.tensor([0.0, 1.0, 0.0]), 0.25)),
        _Case("reference_probs = [0.5, 0.3, 0.2], rewards = [2, 2, 2] (all answers equally good), beta = 0.5",
              (hand, torch.tensor([2.0, 2.0, 2.0]), 0.5)),
        _Case("reference_probs = [0.4, 0.25, 0.15, 0.12, 0.08], rewards = log(reference_probs) (a typicality "
              "reward), beta = 1",
              (_probs_of([0.4, 0.25, 0.15, 0.12, 0.08]), torch.log(_probs_of([0.4, 0.25, 0.15, 0.12, 0.08])), 1.0)),
        _Case("a batch: reference_probs of shape (3, 6), rewards of shape (3, 6), beta = 2",
              (torch.softmax(_random_logits(g, 3, 6), -1), torch.randn(3, 6, generator=g), 2.0)),
    ]


def _normalised(weights):
    return weights / weights.sum(-1, keepdim=True)


CH00_PREFERENCE_OPTIMUM = FunctionExercise(
    "ch00.preference_optimum", "preference_optimum(reference_probs, rewards, beta)",
    "The distribution that maximises E[reward] - beta KL(pi || reference): pi proportional to "
    "reference_probs * exp(rewards / beta), over the last axis.",
    reference=_preference_optimum, cases=_preference_cases,
    mistakes=(
        _Mistake("you did not normalise: pi is proportional to reference * exp(reward / beta), so divide by the sum "
                 "over the answers (the last axis).",
                 lambda ref, r, beta: ref * torch.exp(r / beta)),
        _Mistake("you multiplied the rewards by beta: beta is the price of moving away from the reference, so the "
                 "rewards are divided by it (a large beta keeps pi close to the reference).",
                 lambda ref, r, beta: _normalised(ref * torch.exp(r * beta))),
        _Mistake("you left out the reference model: softmax(rewards / beta) is the optimum without the KL anchor's "
                 "starting point. Multiply by reference_probs (or add log reference_probs to the logits).",
                 lambda ref, r, beta: torch.softmax(r / beta, dim=-1)),
        _Mistake("the sign of the rewards is flipped: a higher reward must raise an answer's probability, "
                 "exp(+reward / beta).",
                 lambda ref, r, beta: _normalised(ref * torch.exp(-r / beta))),
        _Mistake("you normalised over the wrong axis: each row is one prompt's distribution over answers, so "
                 "normalise over the last axis (dim=-1).",
                 lambda ref, r, beta: (ref * torch.exp(r / beta)) / (ref * torch.exp(r / beta)).sum(0, keepdim=True)),
    ),
)


# ---------------------------------------------------------------------------------------------
# 0.5 Precision and recall: k-nearest-neighbour coverage.
# ---------------------------------------------------------------------------------------------

def _coverage(reference, samples, k):
    reference, samples = torch.as_tensor(reference, dtype=torch.float64), torch.as_tensor(samples, dtype=torch.float64)
    radius = torch.cdist(reference, reference).sort(dim=1).values[:, k]  # column 0: each point's distance to itself
    return float((torch.cdist(samples, reference) <= radius[None, :]).any(dim=1).double().mean())


def _coverage_self_counted(reference, samples, k):
    reference = torch.as_tensor(reference, dtype=torch.float64)
    return _coverage_radius(reference, samples, torch.cdist(reference, reference).sort(dim=1).values[:, k - 1])


def _coverage_radius(reference, samples, radius):
    samples, reference = torch.as_tensor(samples, dtype=torch.float64), torch.as_tensor(reference, dtype=torch.float64)
    distances = torch.cdist(samples, reference)
    return float((distances <= radius[None, :]).any(dim=1).double().mean())


def _coverage_one_radius(reference, samples, k):
    reference = torch.as_tensor(reference, dtype=torch.float64)
    radius = torch.cdist(reference, reference).sort(dim=1).values[:, k].mean()
    return _coverage_radius(reference, samples, radius.expand(len(reference)))


def _coverage_count(reference, samples, k):
    return _coverage(reference, samples, k) * len(samples)


def _coverage_cases(g):
    line = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    return [
        _Case("reference = points 0, 1, 2, 10 on a line, samples = 0.5, 5, 13, 30, k = 1",
              (line, torch.tensor([[0.5], [5.0], [13.0], [30.0]]), 1)),
        _Case("reference = points 0, 1, 2, 10 on a line, samples = 0.5, 5, 13, 30, k = 2",
              (line, torch.tensor([[0.5], [5.0], [13.0], [30.0]]), 2)),
        _Case("reference = 30 random points in 2-D, samples = 20 points drawn from a narrower cloud, k = 3",
              (torch.randn(30, 2, generator=g, dtype=torch.float64),
               0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64), 3)),
        _Case("reference = 20 points from a narrow cloud, samples = 30 from a wide one, k = 3",
              (0.5 * torch.randn(20, 2, generator=g, dtype=torch.float64),
               torch.randn(30, 2, generator=g, dtype=torch.float64), 3)),
        _Case("reference = 40 random points in 8-D, samples = 25 random points in 8-D, k = 5",
              (torch.randn(40, 8, generator=g, dtype=torch.float64),
               torch.randn(25, 8, generator=g, dtype=torch.float64), 5)),
    ]


CH00_COVERAGE = FunctionExercise(
    "ch00.coverage", "coverage(reference, samples, k)",
    "The share of `samples` [M, d] that lie within at least one `reference` point's k-nearest-neighbour ball "
    "(radius: its distance to its k-th nearest *other* reference point). Precision is coverage(real, generated), "
    "recall is coverage(generated, real).",
    reference=_coverage, cases=_coverage_cases, convert=_float_result,
    mutating_hint="sort a copy (`torch.sort` or `np.sort` return new arrays), not the input",
    mistakes=(
        _Mistake("you counted each reference point as its own nearest neighbour: its distance to itself is 0, so "
                 "after sorting, column k (not k - 1) holds the k-th nearest *other* point.",
                 _coverage_self_counted),
        _Mistake("you swapped the roles: the balls are drawn around the *reference* points, and you count the "
                 "*samples* that fall inside one.",
                 lambda reference, samples, k: _coverage(samples, reference, k)),
        _Mistake("you gave every reference point the same radius (the mean k-NN distance): each point has its own "
                 "radius, so that dense regions get small balls and sparse regions large ones.",
                 _coverage_one_radius),
        _Mistake("you returned how many samples are covered: return their share (divide by the number of samples).",
                 _coverage_count),
    ),
)


FUNCTIONS = (CH00_OVERUSE_RATIO, CH00_PREFERENCE_OPTIMUM, CH00_COVERAGE)

PREDICTIONS = (
    PredictionExercise(
        "ch00.repetition_by_decoding",
        "Predict which decoding of SmolLM2-135M-Instruct repeats 4-word sequences more often inside its own answers "
        "(seq-rep-4): 'T=1' or 'T=0.7' (the chat decoding, T = 0.7 with top-p 0.9).",
        kind="choice", choices=("t=1", "t=0.7"),
        misconceptions=((lambda v: v == "t=1", "Sampling at T = 1 draws more rare tokens, but a rare token rarely "
                                               "repeats a whole phrase; it is the trimmed, sharpened distribution "
                                               "that keeps choosing the same continuation, and once a phrase is in "
                                               "the context its likeliest continuation is often the phrase again."),),
        lesson="Lowering the temperature and cutting the tail make every step pick from fewer, likelier tokens. In a "
               "small model that turns into loops: the chat decoding repeats several per cent of its 4-grams inside "
               "an answer, sampling at T = 1 almost none. The same weights, two styles."),
    PredictionExercise(
        "ch00.typicality_top_share",
        "A reference model answers with probabilities [0.5, 0.3, 0.2]. All three answers are equally good, but the "
        "reward adds alpha log p_ref (raters prefer the familiar) with alpha = beta. Predict the tuned model's "
        "probability of the first answer.",
        kind="number", tolerance=0.05,
        misconceptions=((_near(0.5, 0.02), "A reward that prefers typical answers does not leave the distribution "
                                           "alone: the optimum is p_ref^(1 + alpha/beta), which sharpens it."),
                        (_near(1.0, 0.05), "The KL term keeps every answer: the optimum is a sharpened reference "
                                           "(p_ref squared, renormalised), not the single most typical answer. "
                                           "Only beta -> 0 would give the argmax."),
                        (_near(0.25, 0.02), "0.5 squared is right, but a distribution must be renormalised: divide "
                                            "by 0.5^2 + 0.3^2 + 0.2^2.")),
        lesson="pi* is proportional to p_ref exp(r / beta) = p_ref^(1 + alpha/beta): here p_ref squared, renormalised, "
               "the reference decoded at temperature 1/2. A reward that merely likes familiar text acts on the "
               "trained model like a lower sampling temperature, even when every answer is equally good."),
)
