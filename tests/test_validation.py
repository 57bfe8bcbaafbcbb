"""dftlab.validation: the argument checks every module shares, and the messages they give."""
import math

import numpy as np
import pytest

from dftlab.validation import check_int, check_number, check_samples, check_texts


def test_check_int_accepts_ints_and_numpy_ints_within_bounds():
    assert check_int(3, "n") == 3 and isinstance(check_int(np.int64(3), "n"), int)
    assert check_int(0, "n", 0) == 0 and check_int(-5, "n", None) == -5


@pytest.mark.parametrize("value, minimum, maximum, wanted", [
    (0, 1, None, r"a positive int \(>= 1\)"), (True, 1, None, "a positive int"), (2.0, 1, None, "a positive int"),
    (-1, 0, None, "an int >= 0"), (11, 1, 10, "an int between 1 and 10"), (1, 3, None, "an int >= 3")])
def test_check_int_names_the_argument_and_what_it_wanted(value, minimum, maximum, wanted):
    with pytest.raises(ValueError, match=rf"steps must be {wanted}.*got {value!r}"):
        check_int(value, "steps", minimum, maximum)


def test_check_int_adds_the_hint():
    with pytest.raises(ValueError, match="Or None."):
        check_int("x", "seed", None, hint="Or None.")


@pytest.mark.parametrize("value, kwargs, interval", [
    (0.0, dict(low=0.0, low_open=True), r"> 0 \(positive\)"), (1.5, dict(low=0.0, high=1.0), r"in \[0, 1\]"),
    (1.0, dict(low=0.0, high=1.0, high_open=True), r"in \[0, 1\)"), (math.nan, {}, ""), (math.inf, {}, ""),
    (True, {}, "")])
def test_check_number_refuses_values_outside_the_interval_or_not_finite(value, kwargs, interval):
    with pytest.raises(ValueError, match=rf"lr must be a finite number {interval}"):
        check_number(value, "lr", **kwargs)
    assert check_number(0.5, "lr", **kwargs) == 0.5


def test_check_texts_refuses_a_single_string_and_names_a_bad_entry():
    assert check_texts(("a", "b")) == ["a", "b"]
    with pytest.raises(ValueError, match=r"wrap it as \[text\]"):
        check_texts("one text")
    with pytest.raises(ValueError, match=r"texts\[1\] must be a str"):
        check_texts(["a", 2])
    with pytest.raises(ValueError, match="non-empty"):
        check_texts([])


def test_check_samples_returns_pairs_and_names_a_bad_entry():
    assert check_samples([{"prompt": "p", "completion": " c"}]) == [("p", " c")]
    with pytest.raises(ValueError, match=r"samples\[0\] must be a dict with 'prompt' and 'completion'"):
        check_samples([{"prompt": "p"}])
