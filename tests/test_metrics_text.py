"""dftlab.metrics.text: n-gram counts, distinct-n, self-BLEU, Zipf and overuse, each against a small example by hand."""

import math
from collections import Counter

import numpy as np
import pytest

from dftlab import metrics
from dftlab.metrics import (distinct_n, ngram_counts, mean_word_count, overuse_table, rank_frequency, repetition_rate,
                            self_bleu, token_l2_distance, zipf_coefficient)
from dftlab.metrics.words import bleu_13a_tokens, whitespace_tokens

from conftest import WORDS, _word_tokenizer


def test_ngram_counts_stay_inside_each_text_and_count_the_course_words():
    assert ngram_counts(["a b", "c d"], n=2) == Counter({("a", "b"): 1, ("c", "d"): 1})  # no ("b", "c")
    # "The end." and "the end" are the same two words: lower case, punctuation dropped.
    assert ngram_counts(["The end.", "the end"], n=1) == Counter({("the",): 2, ("end",): 2})
    # The study's unit keeps case and punctuation.
    assert ngram_counts(["The end.", "the end"], n=1, split_words=whitespace_tokens) == \
        Counter({("The",): 1, ("end.",): 1, ("the",): 1, ("end",): 1})


def test_every_word_metric_counts_the_course_words_by_default():
    """Capitals and punctuation do not make new words in any of them (each would differ on whitespace tokens)."""
    plain, written = ["the cat sat on the mat", "the dog ran"], ["The cat sat on the mat.", "the dog, ran"]
    assert distinct_n(written, 1) == distinct_n(plain, 1) != distinct_n(written, 1, split_words=whitespace_tokens)
    assert repetition_rate(["The cat. the cat", "a b"], n=2) == repetition_rate(["the cat the cat", "a b"], n=2)
    assert token_l2_distance(written, plain) == 0.0 < token_l2_distance(written, plain, split_words=whitespace_tokens)
    assert zipf_coefficient(written) == zipf_coefficient(plain)
    same_words = ["The cat sat.", "the cat sat"]
    assert self_bleu(same_words) == pytest.approx(1.0)
    assert self_bleu(same_words, split_words=whitespace_tokens) < 0.9
    assert mean_word_count(["Hello, world!", "One more time."]) == 2.5
    assert mean_word_count(["1 2 3 go"]) == 1  # a token without a letter is not a word
    table = overuse_table(["The cat. The cat."], ["a dog"], n=1, min_count=2)
    assert set(table["phrase"]) == {"the", "cat"}


def test_the_study_block_measures_exactly_as_before():
    """The study's cached word columns were measured on whitespace tokens (sacrebleu's 13a tokens for self-BLEU);
    its block must still give the numbers the code gave then. Expected values computed with the code of that time."""
    from dftlab.study.measurement import word_metrics

    texts = ["Once upon a time, a little fox found a shiny key. The fox was happy.",
             "Once upon a time, a little bird sang. The bird was happy, and the bird flew home.",
             "One day, Tom saw a big red ball. Tom said, \"Let's play!\" They played all day.",
             "Once upon a time, the cat sat. The cat sat. The cat sat on the mat, and it was happy.",
             "Lily had a doll. Lily loved the doll. Once upon a time, she lost it in the park."]
    reference = ["Once upon a time, a dog ran to the park. The dog was happy.",
                 "One day, Sam found a box. In the box was a toy. Sam was happy.",
                 "Once upon a time, a girl named Mia wanted a cake. She baked one with her mom.",
                 "The sun was warm. The bird sang, and the kids played all day."]
    expected = {"distinct_1": 0.5465116279069767, "distinct_2": 0.8148148148148148, "distinct_3": 0.868421052631579,
                "self_bleu": 0.23491565545912624, "token_l2_1": 0.13714751379502102,
                "token_l2_2": 0.15375572426077402, "zipf_coefficient": 0.6247306308689831,
                "seq_rep_4": 0.011764705882352944, "overuse_formulaic": 0.970823231551519,
                "overuse_top_phrases": 1.1370192307692308, "mean_words": 17.2}
    assert word_metrics(texts, reference, 200) == expected
    assert ngram_counts(["a"], n=2) == Counter()


def test_ngram_counts_use_tokenizer_ids(tokenizer):
    cat, ran = WORDS.index("cat"), WORDS.index("ran")
    assert ngram_counts(["cat ran ran"], n=1, tokenizer=tokenizer) == Counter({(cat,): 1, (ran,): 2})
    # A raw `tokenizers.Tokenizer` returns an Encoding; its .ids are used.
    assert ngram_counts(["cat ran"], n=2, tokenizer=_word_tokenizer()) == Counter({(cat, ran): 1})


def test_token_l2_distance_by_hand():
    # samples: a 2/3, b 1/3; reference: a 1/4, b 3/4 -> differences +-5/12 -> L2 = 5/12 * sqrt(2).
    assert token_l2_distance(["a a b"], ["a b b b"]) == pytest.approx(5 / 12 * math.sqrt(2))
    # Disjoint single-token corpora: (1, 0) vs (0, 1) -> sqrt(2); a corpus against itself -> 0.
    assert token_l2_distance(["x x"], ["y"]) == pytest.approx(math.sqrt(2))
    assert token_l2_distance(["a b c", "c"], ["c a", "b c"]) == pytest.approx(0.0)
    # Bigrams: samples {ab: 1/2, bc: 1/2}, reference {ab: 1} -> sqrt(1/4 + 1/4).
    assert token_l2_distance(["a b c"], ["a b"], n=2) == pytest.approx(math.sqrt(0.5))


def test_distinct_n_by_hand():
    # unigrams a b a b a b: 2 distinct of 6; bigrams ab ba ab | ab: 2 distinct of 4.
    assert distinct_n(["a b a b", "a b"], n=1) == pytest.approx(2 / 6)
    assert distinct_n(["a b a b", "a b"], n=2) == pytest.approx(2 / 4)
    with pytest.raises(ValueError, match="distinct-3"):
        distinct_n(["a b", "c"], n=3)


def test_self_bleu_by_hand():
    # "a b c d" vs reference "a b c e": precisions 3/4, 2/3, 1/2 and 0/1 floored to 0.1/1, equal lengths
    # so no brevity penalty: BLEU = (3/4 * 2/3 * 1/2 * 0.1) ** (1/4); the other direction is symmetric.
    expected = (0.75 * (2 / 3) * 0.5 * 0.1) ** 0.25
    assert self_bleu(["a b c d", "a b c e"]) == pytest.approx(expected, abs=1e-4)
    assert self_bleu(["the cat sat on the mat"] * 3) == pytest.approx(1.0)
    assert self_bleu(["a b c d", "e f g h", "i j k l"]) == 0.0


def test_self_bleu_equals_sacrebleu_sentence_scores():
    # The fast path must give exactly the mean of sacrebleu's own sentence BLEU of each text vs the rest.
    from sacrebleu.metrics import BLEU
    rng = np.random.default_rng(0)
    words = ["the", "cat", "sat", "on", "mat", "dog", ",", ".", "!", "ran"]
    texts = [" ".join(rng.choice(words, size=rng.integers(1, 15))) for _ in range(25)] + ["the cat sat"] * 2 + [""]
    bleu = BLEU(effective_order=True, smooth_method="floor", smooth_value=0.1)
    expected = np.mean([bleu.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)]) / 100
    assert self_bleu(texts, split_words=bleu_13a_tokens) == pytest.approx(expected, abs=1e-12)
    # In the course's words: sacrebleu on the words joined by spaces, its own tokenizer off.
    joined = [" ".join(metrics.words.words(t)) for t in texts]
    bleu = BLEU(effective_order=True, smooth_method="floor", smooth_value=0.1, tokenize="none")
    expected = np.mean([bleu.sentence_score(t, joined[:i] + joined[i + 1:]).score for i, t in enumerate(joined)]) / 100
    assert self_bleu(texts) == pytest.approx(expected, abs=1e-12)


def test_self_bleu_subsample_is_deterministic_and_bounded():
    rng = np.random.default_rng(1)
    texts = [" ".join(rng.choice(list("abcdefgh"), size=8)) for _ in range(30)]
    first = self_bleu(texts, max_texts=10, seed=3)
    assert first == self_bleu(texts, max_texts=10, seed=3)
    assert 0.0 <= first <= 1.0


def test_plot_zipf_draws_the_words_zipf_coefficient_fits():
    """The Zipf plot's data and the Zipf coefficient count the same words, ranked the same way."""
    import matplotlib.pyplot as plt

    from dftlab import plots

    texts = ["The cat saw the dog.", "THE END, the end", "a cat; a Dog"]
    ax = plots.plot_zipf({"corpus": texts})
    drawn = ax.get_lines()[0].get_ydata()
    plt.close("all")
    table = rank_frequency(texts)
    assert list(table["word"]) == ["the", "cat", "dog", "end", "a", "saw"]  # ties in order of first appearance
    assert drawn.tolist() == pytest.approx(table["frequency"].tolist())
    ranks, counts = np.log(table["rank"].to_numpy(float)), np.log(table["count"].to_numpy(float))
    assert zipf_coefficient(texts) == pytest.approx(-np.polyfit(ranks, counts, 1)[0])
    assert zipf_coefficient(texts) != zipf_coefficient(texts, split_words=whitespace_tokens)


def test_zipf_coefficient_recovers_exponent_one():
    # counts 12, 6, 4, 3 = 12 / rank for ranks 1..4, so log f = log 12 - 1 * log r exactly: s = 1.
    texts = ["a " * 12 + "b " * 6, "c " * 4 + "d " * 3]
    assert zipf_coefficient(texts) == pytest.approx(1.0)
    # counts 36, 9, 4 = 36 / rank**2 for ranks 1..3: s = 2.
    assert zipf_coefficient(["x " * 36 + "y " * 9 + "z " * 4]) == pytest.approx(2.0)
    # top=2 keeps only ranks 1 and 2 of 12, 6, 4, 3: slope through (0, log 12), (log 2, log 6) = -1.
    assert zipf_coefficient(texts, top=2) == pytest.approx(1.0)


def test_repetition_rate_by_hand():
    # "a b a b": bigrams ab ba ab -> 1 - 2/3 = 1/3; "c d e": cd de -> 0; mean 1/6. "x" has no bigram: left out.
    assert repetition_rate(["a b a b", "c d e", "x"], n=2) == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="n=4"):
        repetition_rate(["a b"], n=4)


def test_overuse_table_by_hand():
    # samples: a 2, b 1 (3 tokens); reference: a 1, b 3 (4 tokens); V = 2 words in all.
    # a: ((2+1)/(3+2)) / ((1+1)/(4+2)) = 0.6 / (1/3) = 1.8;  b: (2/5) / (4/6) = 0.6.
    table = overuse_table(["a a b"], ["a b b b"], n=1, min_count=1)
    assert list(table["phrase"]) == ["a", "b"]
    assert list(table["overuse_ratio"]) == pytest.approx([1.8, 0.6])
    assert list(table["sample_freq"]) == pytest.approx([2 / 3, 1 / 3])
    assert list(table["reference_freq"]) == pytest.approx([1 / 4, 3 / 4])
    assert {"phrase", "sample_freq", "reference_freq", "overuse_ratio"} <= set(table.columns)


def test_overuse_table_phrases_and_min_count():
    # "x y" is absent from the reference; bigrams: samples {xy: 2, yx: 1} (3), reference {ab: 1} (1), V = 3.
    # x y: ((2+1)/(3+3)) / ((0+1)/(1+3)) = 0.5 / 0.25 = 2.0.
    table = overuse_table(["x y x y"], ["a b"], phrases=["x y"])
    assert table.loc[0, "phrase"] == "x y" and table.loc[0, "overuse_ratio"] == pytest.approx(2.0)
    # min_count=2 keeps only unigrams/bigrams seen at least twice in the samples: x, y, "x y".
    found = overuse_table(["x y x y"], ["a b"], n=[1, 2], min_count=2, top=None)
    assert set(found["phrase"]) == {"x", "y", "x y"}
    assert list(found["overuse_ratio"]) == sorted(found["overuse_ratio"], reverse=True)


@pytest.mark.parametrize("call, argument", [
    (lambda: ngram_counts([], n=1), "texts"),
    (lambda: ngram_counts("a b c", n=1), "texts"),
    (lambda: ngram_counts(["a", 3], n=1), r"texts\[1\]"),
    (lambda: ngram_counts(["a"], n=0), "n must"),
    (lambda: distinct_n(["a"], n=1.5), "n must"),
    (lambda: token_l2_distance(["a"], [], n=1), "reference must"),
    (lambda: token_l2_distance(["a b"], ["b"], n=2), "reference has no 2-grams"),
    (lambda: self_bleu(["only one"]), "at least 2"),
    (lambda: self_bleu(["a", "b"], max_texts=0), "max_texts"),
    (lambda: zipf_coefficient(["a a a"]), "distinct"),
    (lambda: overuse_table(["a"], ["a"], n=0), "n must"),
    (lambda: overuse_table(["a"], ["a"], phrases=[""]), r"phrases\[0\]"),
    (lambda: overuse_table(["a"], None), "reference"),
])
def test_text_statistics_reject_bad_input(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
