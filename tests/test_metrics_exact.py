"""dftlab.metrics.exact: validity, choice frequencies and exact cross-entropy against a grammar known by hand."""

import math

import pytest

from dftlab import metrics
from dftlab.metrics import choice_chi_square, choice_frequency_table, sequence_cross_entropy, validity_rate

from conftest import FakeTales, UniformLM, WORDS, story


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
