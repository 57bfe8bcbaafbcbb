"""Chapter 0, what formulaic writing looks like: the exercises on the overuse ratio, what decoding does to one
model's repetitions, slop-score's rate by kind of writing, and how many habit words survive the split-half topic
control in another model's outputs.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter derives wherever there is
one. (The optimum of preference tuning moved to chapter 5's checks, k-NN coverage to chapter 6's.)
"""
from __future__ import annotations

from dftlab.course.checks.engine import Case, FunctionExercise, Mistake, PredictionExercise, float_result, random_corpus
from dftlab.metrics import formulaic, word_overuse
from dftlab.metrics.words import words


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
        Case("texts = ['The cat sat on the mat.', 'A dog and a cat.'], word = 'cat'",
              (["The cat sat on the mat.", "A dog and a cat."], "cat")),
        Case("texts = ['Cat! The cat, the CAT.', 'A dog.'], word = 'cat' (capitals and punctuation)",
              (["Cat! The cat, the CAT.", "A dog."], "cat")),
        Case("texts = ['The sea, the sea.', 'A tapestry of light, a tapestry of night.', 'The end.'], "
              "word = 'tapestry'",
              (["The sea, the sea.", "A tapestry of light, a tapestry of night.", "The end."], "tapestry")),
        Case("texts = ['The cat sat.', 'The dog ran.'], word = 'tapestry' (a word that never appears)",
              (["The cat sat.", "The dog ran."], "tapestry")),
        Case("12 random texts of 2 to 30 words, word = 'the'", (random_corpus(g, 12, 2, 30), "the")),
        Case("8 random texts of 5 to 15 words, word = 'dog'", (random_corpus(g, 8, 5, 15), "dog")),
    ]


def _occurrences(texts, word):
    return sum(words(text).count(word) for text in texts)


def _total_words(texts):
    return sum(len(words(text)) for text in texts)


def _split_occurrences(texts, word):
    return sum(text.split().count(word) for text in texts)


CH00_OVERUSE_RATIO = FunctionExercise(
    "ch00.overuse_ratio", "overuse_ratio(texts, word)",
    "How many times more often `word` appears in `texts` than in modern English: its share of all the words of "
    "the texts, divided by metrics.formulaic.english_frequency(word).",
    reference=_overuse_ratio, cases=_overuse_cases, convert=float_result,
    mistakes=(
        Mistake("you divided by the number of texts: the word's frequency is its count over the total number of "
                 "words in all the texts.",
                 lambda texts, word: _occurrences(texts, word) / len(texts) / formulaic.english_frequency(word)),
        Mistake("the ratio is upside down: divide the word's frequency in the texts by its English frequency, "
                 "so that a word used more often than in English gets a ratio above 1.",
                 lambda texts, word: formulaic.english_frequency(word)
                 / max(_occurrences(texts, word) / _total_words(texts), 1e-30)),
        Mistake("you returned the word's frequency in the texts: divide it by its English frequency.",
                 lambda texts, word: _occurrences(texts, word) / _total_words(texts)),
        Mistake("you counted the texts that use the word, not its occurrences: a text that says 'tapestry' twice "
                 "counts twice.",
                 lambda texts, word: sum(word in words(text) for text in texts) / _total_words(texts)
                 / formulaic.english_frequency(word)),
        Mistake("you averaged each text's frequency instead of pooling all the words: a short text then weighs as "
                 "much as a long one. Count the word over all the texts and divide by their total number of words.",
                 lambda texts, word: sum(words(t).count(word) / max(len(words(t)), 1)
                                         for t in texts) / len(texts) / formulaic.english_frequency(word)),
        Mistake("you split the texts with str.split(), so 'The' and 'cat,' are not counted as 'the' and 'cat': "
                 "use metrics.words.words(text), which lower-cases and drops punctuation.",
                 lambda texts, word: _split_occurrences(texts, word) / sum(len(t.split()) for t in texts)
                 / formulaic.english_frequency(word)),
    ),
)


FUNCTIONS = (CH00_OVERUSE_RATIO,)

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
        "ch00.slop_rate_by_genre",
        "Predict which half of slop-score's prompts makes gemma-3-27b-it use more slop-list words per 1,000 words: "
        "the 'creative' writing prompts or the 'essay' prompts.",
        kind="choice", choices=("creative", "essay"),
        misconceptions=((lambda v: v == "creative",
                         "Stories feel like the home of purple prose, and the list does hold story words (tapestry, "
                         "whispered). But much of it is the vocabulary of explanation and argument (crucially, "
                         "nuanced, fostering, navigate), which essays call for at every turn."),),
        lesson="Every vendored model that answered both halves uses more list words per 1,000 in its essays than in "
               "its stories. A rate on slop-score's scale depends on the kind of writing asked for as well as on the "
               "model, which is why a fair comparison uses the same prompts, or the same mix of them: SmolLM2's "
               "subset keeps slop-score's half-and-half mix."),
    PredictionExercise(
        "ch00.habit_word_survival",
        "gemma-3-27b-it answered 300 different prompts, about a thousand words each. Apply the chapter's rule for "
        "habit words to its outputs (each prompt a group), then the split-half control: predict the share of its "
        "habit words that survive the control (a number between 0 and 1).",
        kind="number", tolerance=0.15,
        misconceptions=((lambda v: v < 0.45,
                         "SmolLM2 kept about a third of its habit words, but its sample is small: 60 prompts, about a "
                         "hundred words per answer, so each half holds little evidence and the control fails words "
                         "for lack of data as well as for being topics. gemma-3-27b-it's outputs give each half "
                         "150 prompts and far more words."),
                        (lambda v: v > 0.95,
                         "The control is not a formality even with plenty of text: words that a few prompts of one "
                         "half call for, or that are just rare, still fail on the other half.")),
        lesson="About two thirds of gemma-3-27b-it's habit words survive, against a third of SmolLM2's. How many "
               "survive depends on how much evidence each half holds, not only on how habitual the words are: a word "
               "that fails the control is unconfirmed, not shown to be a topic word. The survivors, such as "
               "'crucially', 'meticulously' and 'unsettling', are habits by any reading."),
)
