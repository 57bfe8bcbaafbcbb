"""Chapter 8, what changes a real model's writing: the exercises on slop-score's list-word rate pooled over a set of
answers (then used to measure a lever on the cached students and decodings), and on what distillation hands on.

Registered by `dftlab.course.checks`. A reference answer calls the dftlab function the chapter uses.
"""
from __future__ import annotations

import torch

from dftlab.course.checks.engine import FunctionExercise, PredictionExercise, Case, float_result, Mistake, random_corpus
from dftlab.metrics.slop_score import slop_list_rate, slop_list_word_hits

# A few words on slop-score's list (checked by tests/test_course_checks.py), to put into random answers.
LISTED = ("tapestry", "meticulously", "palpable", "unwavering", "whispered", "crucially", "nuanced")


# ---------------------------------------------------------------------------------------------
# 8.1 slop-score's list words per 1,000 words, over a set of answers.
# ---------------------------------------------------------------------------------------------

def _list_words_per_1000(texts):
    counts = slop_list_word_hits(texts)
    return sum(hits for hits, _ in counts) / sum(total for _, total in counts) * 1000


def _with_listed_words(g, texts):
    """`texts` with a listed word put after every fifth word, at random."""
    out = []
    for text in texts:
        tokens = text.split()
        for position in range(0, len(tokens), 5):
            if int(torch.randint(0, 2, (1,), generator=g)):
                tokens.insert(position, LISTED[int(torch.randint(0, len(LISTED), (1,), generator=g))])
        out.append(" ".join(tokens))
    return out


def _rate_cases(g):
    long_story = ("The harbour woke slowly. Gulls circled over the boats while the fishermen mended their nets, and "
                  "a palpable calm lay over the water. Old Tom, unwavering as ever, counted the crates twice before "
                  "he let anyone carry them up the hill to the market, where the baker was already shouting and the "
                  "first customers stood waiting in the cold with their baskets.")
    return [
        Case("texts = [a 60-word story with two listed words, 'A tapestry.']", ([long_story, "A tapestry."],)),
        Case("texts = ['A tapestry of light.', 'The cat sat on the mat and looked at the door for a while.']",
              (["A tapestry of light.", "The cat sat on the mat and looked at the door for a while."],)),
        Case("texts = ['Crucially, it works.', 'It works.'] (short answers, as a 64-token student writes)",
              (["Crucially, it works.", "It works."],)),
        Case("texts = ['A well-known, twenty-first-century tapestry: 3 panels, 2 rooms.'] (hyphens and numbers)",
              (["A well-known, twenty-first-century tapestry: 3 panels, 2 rooms."],)),
        Case("texts = ['no listed word here at all', 'none here either']",
              (["no listed word here at all", "none here either"],)),
        Case("10 random answers of 3 to 40 words, some listed words put in",
              (_with_listed_words(g, random_corpus(g, 10, 3, 40)),)),
        Case("6 random answers of 60 to 90 words, some listed words put in",
              (_with_listed_words(g, random_corpus(g, 6, 60, 90)),)),
    ]


def _mean_of_rates(texts):
    counts = [(hits, total) for hits, total in slop_list_word_hits(texts) if total]
    return sum(hits / total for hits, total in counts) / len(counts) * 1000


def _leaderboard_rate(texts):
    return slop_list_rate(texts)["slop_words_per_1k"]


CH08_LIST_WORDS_PER_1000 = FunctionExercise(
    "ch08.list_words_per_1000", "list_words_per_1000(texts)",
    "slop-score's list words per 1,000 words over a set of answers, every answer counted however short, words and "
    "hits as metrics.slop_list_word_hits counts them.",
    reference=_list_words_per_1000, cases=_rate_cases, convert=float_result,
    mistakes=(
        Mistake("you averaged each answer's own rate: a two-word answer with one listed word then weighs as much as "
                 "a long one. Pool the hits and the words of all the answers first, then divide.", _mean_of_rates),
        Mistake("you called slop_list_rate, which drops every answer of 300 characters or fewer, as slop-score's "
                 "leaderboard does. The students' answers are cut to 64 tokens, so most of them would be dropped: "
                 "count every answer.", _leaderboard_rate),
        Mistake("the rate is per 1,000 words: multiply the share of listed words by 1000.",
                 lambda texts: _list_words_per_1000(texts) / 1000),
        Mistake("you divided by the number of answers instead of the number of words.",
                 lambda texts: sum(h for h, _ in slop_list_word_hits(texts)) / len(texts) * 1000),
        Mistake("you counted words with str.split(), which keeps punctuation and numbers as words; "
                 "slop_list_word_hits gives each answer's word count as slop-score counts it.",
                 lambda texts: sum(h for h, _ in slop_list_word_hits(texts))
                 / sum(len(t.split()) for t in texts) * 1000),
    ),
)


FUNCTIONS = (CH08_LIST_WORDS_PER_1000,)

PREDICTIONS = (
    PredictionExercise(
        "ch08.data_lever_by_kind",
        "Predict on which kind of held-out prompt SmolLM2's nll students of the anti-slop teacher use at least 10% "
        "fewer of slop-score's list words than the nll students of the original teacher: 'creative', 'essay', "
        "'both' or 'neither'.",
        kind="choice", choices=("creative", "essay", "both", "neither"),
        misconceptions=((lambda v: v in ("creative", "essay", "both"),
                         "A student fitted by maximum likelihood should match its data, and the anti-slop teacher "
                         "writes about a fifth as many list words as the original on both kinds of prompt. But 24 "
                         "LoRA steps are far from a fit: what the students took from either teacher first is the "
                         "register both teachers share, and its favourite words came with it."),),
        lesson="Neither kind: on creative prompts the two teachers' students use about the same rate, and on essays "
               "the anti-slop teacher's students use more list words, not fewer, although their teacher uses about a "
               "fifth as many as the original. Splitting by kind did not hide a fall; at this budget the teacher's "
               "low list rate did not pass on at all."),
    PredictionExercise(
        "ch08.objective_repetition",
        "Predict which objective's students (both teachers, both seeds) repeat 4-word sequences within their own "
        "answers more often (seq-rep-4): 'nll' or 'dft'.",
        kind="choice", choices=("nll", "dft"),
        misconceptions=((lambda v: v == "nll",
                         "The nll students wrote more of the teachers' rare words, which looks like the more formulaic "
                         "text. But repetition inside an answer is a different face of a formula: Dynamic FT weights "
                         "each token by the model's own probability of it, so it reinforces what the model already "
                         "writes most readily, and a phrase just written is among the most readily written."),),
        lesson="The dft students repeat themselves more within an answer than the nll students, pooled over both "
               "teachers and both seeds, as SmolLM2 under Dynamic FT looped on TinyTales. Fewer listed words and more "
               "repetition: Dynamic FT did not make the students write less formulaically, it moved the formula from "
               "the teacher's vocabulary to the model's own habits."),
)
