"""Argument checks shared by every public function of dftlab: one place for "is this a positive int?".

A public function checks its arguments once, at the top, with these helpers, and then trusts them; the
functions it calls inside dftlab do not check again. Each helper returns the value in its plain Python
form (an `int`, a `float`, a `list`), so that callers can write `n = check_int(n, "n")`.

Every message names the argument and says what would be accepted. `bool` is refused wherever a number is
expected: `True` is an `int` to Python, but `steps=True` is always a mistake.
"""
from __future__ import annotations

import math
import numbers


def check_int(value, name: str, minimum: int | None = 1, maximum: int | None = None, *, hint: str = "") -> int:
    """`value` as an int in [minimum, maximum] (None: no bound). Accepts numpy integers; refuses bool and floats."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Integral) or (minimum is not None and value < minimum)
            or (maximum is not None and value > maximum)):
        if maximum is not None:
            wanted = f"an int between {minimum} and {maximum}"
        else:
            wanted = {None: "an int", 1: "a positive int (>= 1)", 0: "an int >= 0"}.get(minimum, f"an int >= {minimum}")
        raise ValueError(f"{name} must be {wanted}, got {value!r}.{' ' + hint if hint else ''}")
    return int(value)


def check_number(value, name: str, low: float = -math.inf, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False, hint: str = "") -> float:
    """`value` as a finite float in the interval from `low` to `high` (closed unless `low_open`/`high_open`)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
            or value < low or value > high or (low_open and value == low) or (high_open and value == high)):
        raise ValueError(f"{name} must be a finite number {_interval(low, high, low_open, high_open)}, "
                         f"got {value!r}.{' ' + hint if hint else ''}")
    return float(value)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if high == math.inf:
        if low == 0 and low_open:
            return "> 0 (positive)"
        return "" if low == -math.inf else (f"> {low:g}" if low_open else f">= {low:g}")
    if low == -math.inf:
        return f"< {high:g}" if high_open else f"<= {high:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_texts(texts, name: str = "texts") -> list[str]:
    """A non-empty list (or tuple) of strings, returned as a list. A single str is refused, not split."""
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


def check_samples(samples, name: str = "samples") -> list[tuple[str, str]]:
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
