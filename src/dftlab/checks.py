"""Auto-checked exercises: `check(exercise_id, answer)` says whether an answer is right, and if it is
not, which mistake it most likely contains (the notebooks in exercises/ and solutions/, every chapter).

Two kinds of exercise are checked here; written answers are not (their model answers live in solutions/).

* **Function exercises.** The learner writes a function, e.g. `entropy(probs)`. `check` runs it on
  hand-made examples, edge cases (one-hot, uniform, batch shapes) and inputs drawn at random with a
  generator seeded by the exercise id, so the same answer always gets the same feedback. It compares
  each result (and, for losses, the gradient) with the reference from the dftlab module that the
  chapter derives. When they differ, it runs typical wrong versions of the function on the same
  inputs: if one of them reproduces the learner's output, the feedback names that mistake.
* **Predict-then-run exercises.** The learner writes a prediction in a variable *before* running an
  experiment; the notebook then measures the real value and calls
  `check(exercise_id, prediction, measured=value)`. The feedback compares the two, names a common
  misconception when the prediction matches one, and explains the result.

`check` never raises because of the answer: exceptions in the learner's code, answers of the wrong
type and code that runs past the time limit all come back as feedback in a `CheckResult`. A stub that
still raises `NotImplementedError` (or a prediction still set to `...`) is "not attempted yet".
Nothing here calls `eval`: answers are only ever called (functions) or compared (values).
"""
from __future__ import annotations

import difflib
import html
import math
import re
import signal
import threading
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from dftlab import distributions, metrics, objectives
from dftlab.data import mask_prompt

IGNORE_INDEX = -100
TIME_LIMIT_SECONDS = 3.0  # per call of the learner's function; the reference answers take milliseconds

# ---------------------------------------------------------------------------------------------
# The result.
# ---------------------------------------------------------------------------------------------

_MARKS = {"passed": ("✔", "#1a7f37"), "failed": ("✘", "#cf222e"), "not attempted": ("○", "#6e7781")}


@dataclass(frozen=True)
class CheckResult:
    """What `check` found: `passed`, a `feedback` sentence, and whether the exercise was `attempted`.

    Its notebook reprs are one line, a green tick, a red cross or a grey circle, and hold nothing that
    changes between runs (no timings, no addresses), so executed notebooks compare equal under nbval.
    """

    exercise_id: str
    passed: bool
    feedback: str
    attempted: bool = True

    @property
    def status(self) -> str:
        if self.passed:
            return "passed"
        return "failed" if self.attempted else "not attempted"

    def __repr__(self) -> str:
        mark, _ = _MARKS[self.status]
        return f"{mark} {self.exercise_id}: {self.feedback}"

    def _repr_markdown_(self) -> str:
        mark, _ = _MARKS[self.status]
        return f"{mark} **{self.exercise_id}**: {self.feedback}"

    def _repr_html_(self) -> str:
        mark, colour = _MARKS[self.status]
        # `code` spans in the feedback become <code> after escaping, as they would in markdown.
        feedback = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(self.feedback))
        return (f'<div class="dftlab-check"><span style="color: {colour}; font-weight: bold">{mark} '
                f'{html.escape(self.exercise_id)}</span>: {feedback}</div>')


def _passed(exercise_id: str, feedback: str) -> CheckResult:
    return CheckResult(exercise_id, True, feedback)


def _failed(exercise_id: str, feedback: str) -> CheckResult:
    return CheckResult(exercise_id, False, feedback)


def _not_attempted(exercise_id: str, feedback: str) -> CheckResult:
    return CheckResult(exercise_id, False, feedback, attempted=False)


# ---------------------------------------------------------------------------------------------
# Running the learner's code: exceptions and a time limit.
# ---------------------------------------------------------------------------------------------

class _TimeLimitExceeded(BaseException):
    """Raised inside the learner's code by the alarm. A BaseException, so `except Exception:` cannot swallow it."""


class _AnswerProblem(Exception):
    """The learner's code raised, ran too long, or returned something unusable; `feedback` says which."""

    def __init__(self, feedback: str, attempted: bool = True):
        super().__init__(feedback)
        self.feedback = feedback
        self.attempted = attempted


def _run_with_alarm(function: Callable, args: tuple, time_limit: float):
    """Main thread: SIGALRM interrupts a runaway Python loop between two bytecodes."""
    state = {"active": True}

    def on_alarm(signum, frame):
        if state["active"]:
            raise _TimeLimitExceeded()

    previous = signal.signal(signal.SIGALRM, on_alarm)
    try:
        # The alarm repeats every 50 ms: code that swallows one with a bare `except:` and goes on is hit again.
        signal.setitimer(signal.ITIMER_REAL, time_limit, 0.05)
        try:
            return function(*args)
        finally:
            state["active"] = False
            signal.setitimer(signal.ITIMER_REAL, 0)
    finally:
        signal.signal(signal.SIGALRM, previous)


def _run_in_thread(function: Callable, args: tuple, time_limit: float):
    """Elsewhere (another thread, or no SIGALRM): wait for a worker thread. A runaway worker cannot be
    killed, so it is left running as a daemon, and the feedback says so."""
    outcome = {}

    def work():
        try:
            outcome["value"] = function(*args)
        except BaseException as exc:  # handed back to the caller's thread below
            outcome["error"] = exc

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(time_limit)
    if worker.is_alive():
        raise _TimeLimitExceeded("still running")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _call(function: Callable, args: tuple, where: str, time_limit: float, what: str = "your function"):
    """Call the learner's code and turn every way it can go wrong into an `_AnswerProblem`."""
    # The alarm needs the main thread, and must not cancel someone else's timer (e.g. pytest-timeout's).
    use_alarm = (hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
                 and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
    try:
        if use_alarm:
            return _run_with_alarm(function, args, time_limit)
        return _run_in_thread(function, args, time_limit)
    except _TimeLimitExceeded as exc:
        stopped = ("was left running in the background (restart the kernel if things slow down)" if exc.args
                   else "was stopped")
        raise _AnswerProblem(f"{what} took longer than {time_limit:g} s on {where} and {stopped}. "
                             f"Look for a loop that never ends, or a Python loop over every element of a tensor.")
    except NotImplementedError as exc:
        hint = f" ({exc})" if str(exc) else ""
        raise _AnswerProblem(f"not attempted yet{hint}. Replace the `raise NotImplementedError` line with your code, "
                             f"then run this cell again.", attempted=False)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = message[:200] + ("..." if len(message) > 200 else "")
        raise _AnswerProblem(f"{what} raised {type(exc).__name__}" + (f": {message}" if message else "")
                             + f" (on {where}).")


# ---------------------------------------------------------------------------------------------
# Comparing results.
# ---------------------------------------------------------------------------------------------

RTOL, ATOL = 1e-4, 1e-5


def _as_tensor(value, where: str) -> torch.Tensor:
    """The learner's result as a tensor; numpy arrays, Python numbers and lists of numbers are accepted."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, bool) or value is None:
        raise _AnswerProblem(f"your function returned {value!r} on {where}; it should return a tensor. "
                             f"Did you forget the `return` line?")
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise _AnswerProblem(f"your function returned a {type(value).__name__} on {where}, which is not a number "
                             f"or a tensor of numbers.") from None


def _same(got: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> bool:
    if tuple(got.shape) != tuple(expected.shape):
        return False
    if expected.dtype == torch.bool or not (expected.is_floating_point() or got.is_floating_point()):
        return bool(torch.equal(got.long(), expected.long()))
    return bool(torch.allclose(got.double(), expected.double(), rtol=rtol, atol=atol, equal_nan=True))


def _same_result(got, expected) -> bool:
    """Tensors, or tuples of tensors (the causal shift returns two)."""
    if isinstance(expected, tuple):
        return isinstance(got, tuple) and len(got) == len(expected) and all(map(_same, got, expected))
    return isinstance(got, torch.Tensor) and _same(got, expected)


def _show(value) -> str:
    """A short, deterministic rendering of a value for feedback: values when small, the shape when not."""
    if isinstance(value, tuple):
        return "(" + ", ".join(_show(item) for item in value) + ")"
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.dim() == 0:
            return _number(value.item())
        if value.numel() <= 8:
            return "[" + ", ".join(_show(item) for item in value) + "]"
        return f"a tensor of shape {tuple(value.shape)}"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, (list, str)) and len(repr(value)) <= 80:
        return repr(value)
    return f"a {type(value).__name__}"


def _number(x) -> str:
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"


def _clone(value):
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, list):
        return list(value)
    return value


# ---------------------------------------------------------------------------------------------
# Function exercises.
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Case:
    """One call of the answer: `shown` is how the feedback describes it, `hint` is added if the answer raises."""

    shown: str
    args: tuple
    hint: str = ""


@dataclass(frozen=True)
class _Mistake:
    """A typical wrong answer, written as a function with the answer's signature, and what to tell the learner."""

    feedback: str
    function: Callable


@dataclass(frozen=True)
class FunctionExercise:
    """The learner writes `signature`; `reference` is the right answer, `cases(generator)` the inputs to try."""

    exercise_id: str
    signature: str
    description: str
    reference: Callable
    cases: Callable[[torch.Generator], list]
    mistakes: tuple = ()
    convert: Callable | None = None        # learner's raw result -> comparable value (default: a tensor)
    check_gradient: bool = False           # a loss: also compare d(loss)/d(logits), the first argument
    mutating_hint: str = "copy it first (e.g. `x = x.clone()`)"


@dataclass(frozen=True)
class PredictionExercise:
    """Predict-then-run: the learner's `prediction` is compared with the `measured` value.

    `kind` is "number" (passes within `tolerance`, absolute), "choice" (one of `choices`) or
    "distribution" (a probability vector; passes when no entry is further than `tolerance`).
    `misconceptions` are (test, feedback) pairs: test(prediction) is True when the prediction
    matches that misconception. `lesson` is shown after every attempt.
    """

    exercise_id: str
    description: str
    kind: str
    lesson: str
    tolerance: float = 0.0
    choices: tuple = ()
    misconceptions: tuple = ()


def _seed(exercise_id: str) -> torch.Generator:
    """Random inputs for an exercise are the same on every call, so feedback text is deterministic."""
    return torch.Generator().manual_seed(zlib.crc32(exercise_id.encode()))


def _convert(exercise: FunctionExercise, raw, where: str):
    if exercise.convert is not None:
        return exercise.convert(raw, where)
    return _as_tensor(raw, where)


def _diagnose(exercise: FunctionExercise, cases: list, outputs: list, first_failure: int) -> str | None:
    """The mistake that reproduces the learner's output on the first failing case and on the most others."""
    best, best_score = None, -1
    for mistake in exercise.mistakes:
        score, matches_failure = 0, False
        for index, (case, output) in enumerate(zip(cases, outputs)):
            try:
                wrong = _convert(exercise, mistake.function(*map(_clone, case.args)), case.shown)
            except Exception:  # a mistake that cannot even run on this input does not describe it
                continue
            if _same_result(output, wrong):
                score += 1
                matches_failure |= index == first_failure
        if matches_failure and score > best_score:
            best, best_score = mistake, score
    return None if best is None else best.feedback


def _scalar_loss_gradient(loss_function: Callable, case: _Case):
    logits = case.args[0].detach().clone().requires_grad_(True)
    loss = loss_function(logits, *map(_clone, case.args[1:]))
    (gradient,) = torch.autograd.grad(loss, logits)
    return gradient


def _gradient_feedback(exercise: FunctionExercise, answer: Callable, case: _Case, time_limit: float) -> str | None:
    """None when the answer's gradient in the logits matches the reference's; else what is wrong with it."""
    logits = case.args[0].detach().clone().requires_grad_(True)
    loss = _call(answer, (logits, *map(_clone, case.args[1:])), case.shown, time_limit)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return ("the value is right, but the loss carries no gradient, so training could not use it. Build it "
                "from `logits` with torch operations only (no `.item()`, `.detach()` of the result, numpy or floats).")
    (gradient,) = _call(lambda: torch.autograd.grad(loss, logits, allow_unused=True), (), case.shown, time_limit,
                        what="computing the gradient of your loss")
    if gradient is None:
        return "the value is right, but the loss does not depend on `logits` through autograd."
    expected = _scalar_loss_gradient(exercise.reference, case)
    if _same(gradient, expected, rtol=1e-3, atol=1e-6):
        return None
    for mistake in exercise.mistakes:
        try:
            wrong = _scalar_loss_gradient(mistake.function, case)
        except Exception:
            continue
        if _same(gradient, wrong, rtol=1e-3, atol=1e-6):
            return mistake.feedback
    return (f"the value is right, but the gradient in the logits is not (on {case.shown}): "
            f"check which factors should be constants.")


def _check_function(exercise: FunctionExercise, answer, time_limit: float) -> CheckResult:
    exercise_id = exercise.exercise_id
    if answer is ... or answer is None:
        return _not_attempted(exercise_id, f"not attempted yet: define `{exercise.signature}` and pass the function.")
    if not callable(answer):
        return _failed(exercise_id, f"expected a function `{exercise.signature}`, got a {type(answer).__name__}. "
                                    f"Pass the function itself, without calling it.")
    cases = exercise.cases(_seed(exercise_id))
    outputs = []
    try:
        for index, case in enumerate(cases):
            arguments = tuple(map(_clone, case.args))
            try:
                raw = _call(answer, arguments, case.shown, time_limit)
            except _AnswerProblem as problem:
                if case.hint and problem.attempted:
                    raise _AnswerProblem(f"{problem.feedback} {case.hint}") from None
                raise
            for before, after in zip(case.args, arguments):
                if isinstance(before, torch.Tensor) and not torch.equal(before, after):
                    return _failed(exercise_id, f"your function changed its input in place (on {case.shown}), "
                                                f"which corrupts the caller's data: {exercise.mutating_hint}.")
            output = _convert(exercise, raw, case.shown)
            expected = _convert(exercise, exercise.reference(*map(_clone, case.args)), case.shown)
            outputs.append(output)
            if not _same_result(output, expected):
                mistake = _diagnose(exercise, cases[:index + 1], outputs, index)
                details = f"on {case.shown} the answer is {_show(expected)}, yours gave {_show(output)}."
                if mistake:
                    return _failed(exercise_id, f"not yet: {mistake} ({details})")
                shape_note = ""
                if isinstance(output, torch.Tensor) and isinstance(expected, torch.Tensor) \
                        and output.shape != expected.shape:
                    shape_note = f" Expected shape {tuple(expected.shape)}, got {tuple(output.shape)}."
                return _failed(exercise_id, f"not yet: {details}{shape_note}")
        if exercise.check_gradient:
            for case in cases:
                problem = _gradient_feedback(exercise, answer, case, time_limit)
                if problem:
                    return _failed(exercise_id, f"not yet: {problem}")
    except _AnswerProblem as problem:
        if not problem.attempted:
            return _not_attempted(exercise_id, problem.feedback)
        return _failed(exercise_id, problem.feedback)
    gradient = " and gradients" if exercise.check_gradient else ""
    return _passed(exercise_id, f"correct: your function matches the reference values{gradient} on all "
                                f"{len(cases)} test inputs (hand-computed examples, edge cases, random batches).")


# ---------------------------------------------------------------------------------------------
# Prediction exercises.
# ---------------------------------------------------------------------------------------------

def _prediction_value(exercise: PredictionExercise, value):
    """The prediction or the measurement as a float, a lower-case string or a float vector; None if unusable."""
    if exercise.kind == "choice":
        return value.strip().lower() if isinstance(value, str) else None
    if isinstance(value, bool):
        return None
    try:
        array = np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if not np.isfinite(array).all():
        return None
    if exercise.kind == "number":
        return float(array) if array.size == 1 else None
    return array if array.ndim == 1 else None


def _check_prediction(exercise: PredictionExercise, prediction, measured) -> CheckResult:
    exercise_id = exercise.exercise_id
    if prediction is ... or prediction is None:
        return _not_attempted(exercise_id, "not attempted yet: write your prediction in the variable *before* "
                                           "running the experiment, then run this cell again.")
    expected_form = {"number": "a number", "choice": "one of " + ", ".join(repr(c) for c in exercise.choices),
                     "distribution": "a list of probabilities"}[exercise.kind]
    if measured is None:
        return _failed(exercise_id, "pass the measured value too: `check(exercise_id, prediction, measured=value)`.")
    measured_value = _prediction_value(exercise, measured)
    if measured_value is None:
        return _failed(exercise_id, f"the measured value should be {expected_form}, got {_show(measured)}.")
    predicted = _prediction_value(exercise, prediction)
    if predicted is None or (exercise.kind == "choice" and predicted not in exercise.choices):
        return _failed(exercise_id, f"your prediction should be {expected_form}, got {_show(prediction)}.")
    if exercise.kind == "choice":
        close = predicted == measured_value
        shown_prediction, shown_measured = repr(predicted), repr(measured_value)
    elif exercise.kind == "number":
        close = abs(predicted - measured_value) <= exercise.tolerance
        shown_prediction, shown_measured = _number(predicted), _number(measured_value)
    else:
        if predicted.shape != measured_value.shape:
            return _failed(exercise_id, f"your prediction has {predicted.size} entries; the experiment has "
                                        f"{measured_value.size}.")
        if (predicted < 0).any() or abs(predicted.sum() - 1) > 0.01:
            return _failed(exercise_id, f"your prediction {_show(torch.as_tensor(predicted))} is not a probability "
                                        f"distribution: entries must be >= 0 and sum to 1.")
        close = float(np.abs(predicted - measured_value).max()) <= exercise.tolerance
        shown_prediction = _show(torch.as_tensor(predicted))
        shown_measured = _show(torch.as_tensor(measured_value))
    if close:
        return _passed(exercise_id, f"well predicted: you said {shown_prediction}, the experiment gives "
                                    f"{shown_measured}. {exercise.lesson}")
    misconception = next((feedback for test, feedback in exercise.misconceptions if test(predicted)), "")
    return _failed(exercise_id, f"you predicted {shown_prediction}, the experiment gives {shown_measured}. "
                                + (f"{misconception} " if misconception else "") + exercise.lesson)


# ---------------------------------------------------------------------------------------------
# Random inputs.
# ---------------------------------------------------------------------------------------------

def _random_probs(generator: torch.Generator, *shape: int, spread: float = 2.0) -> torch.Tensor:
    return torch.softmax(spread * torch.randn(*shape, generator=generator), dim=-1)


def _random_logits(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return 2.0 * torch.randn(*shape, generator=generator)


def _random_targets(generator: torch.Generator, count: int, vocab_size: int, ignored: int = 0) -> torch.Tensor:
    targets = torch.randint(0, vocab_size, (count,), generator=generator)
    if ignored:
        targets[torch.randperm(count, generator=generator)[:ignored]] = IGNORE_INDEX
    return targets


_WORDS = "the a cat dog sat ran on mat and then it was".split()


def _random_corpus(generator: torch.Generator, num_texts: int, min_words: int, max_words: int) -> list[str]:
    texts = []
    for _ in range(num_texts):
        length = int(torch.randint(min_words, max_words + 1, (1,), generator=generator))
        words = torch.randint(0, len(_WORDS), (length,), generator=generator).tolist()
        texts.append(" ".join(_WORDS[w] for w in words))
    return texts


def _probs_of(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


# ---------------------------------------------------------------------------------------------
# Chapter 1: token distributions.
# ---------------------------------------------------------------------------------------------

def _entropy_cases(g):
    return [
        _Case("probs = [0.5, 0.25, 0.25]", (_probs_of([0.5, 0.25, 0.25]),)),
        _Case("a uniform distribution over 8 tokens", (torch.full((8,), 1 / 8),)),
        _Case("a one-hot distribution [0, 1, 0, 0]", (_probs_of([0.0, 1.0, 0.0, 0.0]),)),
        _Case("a batch of shape (3, 5)", (_random_probs(g, 3, 5),)),
        _Case("a batch of shape (2, 3, 4) with a zero in every row",
              (torch.cat([_random_probs(g, 2, 3, 3), torch.zeros(2, 3, 1)], -1),)),
    ]


def _plain_entropy_terms(p):
    return -(p * torch.log(p))


CH01_ENTROPY = FunctionExercise(
    "ch01.entropy", "entropy(probs)",
    "Shannon entropy in nats over the last axis of a tensor of probabilities.",
    reference=distributions.entropy, cases=_entropy_cases,
    mistakes=(
        _Mistake("log base 2 instead of the natural log? The course measures entropy in nats: use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(2)),
        _Mistake("log base 10 instead of the natural log? Use `torch.log`.",
                 lambda p: distributions.entropy(p) / math.log(10)),
        _Mistake("the sign is flipped: H(p) = -sum p log p, which is never negative.",
                 lambda p: -distributions.entropy(p)),
        _Mistake("0 log 0 gave nan: by convention 0 log 0 = 0. Use `torch.special.xlogy(p, p)` or skip zero entries.",
                 lambda p: _plain_entropy_terms(p).sum(-1)),
        _Mistake("you returned one term per token: sum -p log p over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p)),
        _Mistake("you summed over every axis: sum over the last axis only (`dim=-1`), one entropy per distribution.",
                 lambda p: -torch.special.xlogy(p, p).sum()),
        _Mistake("you averaged over the tokens instead of summing: use `.sum(-1)`, not `.mean(-1)`.",
                 lambda p: -torch.special.xlogy(p, p).mean(-1)),
        _Mistake("you reduced over the first axis: sum over the last axis (`dim=-1`).",
                 lambda p: -torch.special.xlogy(p, p).sum(0)),
    ),
)


def _softmax_cases(g):
    return [
        _Case("logits = [0, ln 3], temperature = 1", (_probs_of([0.0, math.log(3.0)]), 1.0)),
        _Case("logits = [0, ln 3], temperature = 0.5", (_probs_of([0.0, math.log(3.0)]), 0.5)),
        _Case("logits of shape (4, 6), temperature = 2", (_random_logits(g, 4, 6), 2.0)),
        _Case("large logits [1000, 1001, 1002], temperature = 1", (_probs_of([1000.0, 1001.0, 1002.0]), 1.0)),
        _Case("logits of shape (2, 3, 5), temperature = 0.7", (_random_logits(g, 2, 3, 5), 0.7)),
        _Case("logits of shape (3, 4), temperature = 0.25", (_random_logits(g, 3, 4), 0.25)),
    ]


CH01_SOFTMAX = FunctionExercise(
    "ch01.softmax_with_temperature", "softmax_with_temperature(logits, temperature)",
    "Turn logits into probabilities over the last axis at a given temperature.",
    reference=distributions.softmax_with_temperature, cases=_softmax_cases,
    mistakes=(
        _Mistake("you multiplied the logits by the temperature: divide them, z / T (T < 1 must sharpen).",
                 lambda z, t: torch.softmax(z * t, -1)),
        _Mistake("applied temperature after softmax? Divide the logits by T *before* the softmax.",
                 lambda z, t: torch.softmax(z, -1) / t),
        _Mistake("applied temperature after softmax? Softmax of probabilities / T is not the same: divide the "
                 "logits by T, then take one softmax.",
                 lambda z, t: torch.softmax(torch.softmax(z, -1) / t, -1)),
        _Mistake("the temperature has no effect in your function: divide the logits by it.",
                 lambda z, t: torch.softmax(z, -1)),
        _Mistake("the probabilities do not sum to 1: divide exp(z / T) by its sum over the last axis.",
                 lambda z, t: torch.exp(z / t)),
        _Mistake("exp overflowed to inf for large logits (inf / inf = nan). Subtract the largest logit first "
                 "(the softmax does not change) or use `torch.softmax`.",
                 lambda z, t: torch.exp(z / t) / torch.exp(z / t).sum(-1, keepdim=True)),
        _Mistake("you normalised over the first axis: the softmax runs over the last axis (`dim=-1`), the vocabulary.",
                 lambda z, t: torch.softmax(z / t, 0)),
    ),
)


def _top_k_cases(g):
    return [
        _Case("logits = [1, 3, 2, 0], k = 2", (_probs_of([1.0, 3.0, 2.0, 0.0]), 2)),
        _Case("logits = [0.5, -1, 2, 4, 1], k = 1", (_probs_of([0.5, -1.0, 2.0, 4.0, 1.0]), 1)),
        _Case("logits = [1, 3, 2], k = 3 (keep everything)", (_probs_of([1.0, 3.0, 2.0]), 3)),
        _Case("logits of shape (3, 7), k = 3", (_random_logits(g, 3, 7), 3)),
        _Case("logits of shape (2, 2, 6), k = 4", (_random_logits(g, 2, 2, 6), 4)),
    ]


def _keep_top(z, k):
    return z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], float("-inf"))


CH01_TOP_K = FunctionExercise(
    "ch01.top_k_filter", "top_k_filter(logits, k)",
    "Keep the k largest logits on the last axis and set the others to -inf.",
    reference=distributions.top_k_filter, cases=_top_k_cases,
    mistakes=(
        _Mistake("you set the dropped logits to 0, but a logit of 0 still gets probability after the softmax: "
                 "use `float('-inf')`.",
                 lambda z, k: z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], 0.0)),
        _Mistake("you kept one token too many (off by one): keep exactly k.",
                 lambda z, k: _keep_top(z, min(k + 1, z.shape[-1]))),
        _Mistake("you kept one token too few (off by one): keep exactly k, including the k-th largest.",
                 lambda z, k: z.masked_fill(z <= torch.topk(z, k, -1).values[..., -1:], float("-inf"))),
        _Mistake("you kept the k *smallest* logits: keep the largest.",
                 lambda z, k: z.masked_fill(z > torch.topk(z, k, -1, largest=False).values[..., -1:], float("-inf"))),
        _Mistake("you returned only the k kept values: keep the shape of `logits` and set the others to -inf.",
                 lambda z, k: torch.topk(z, k, -1).values),
        _Mistake("you returned probabilities: return the filtered *logits* (the softmax comes later).",
                 lambda z, k: torch.softmax(_keep_top(z, k), -1)),
        _Mistake("you picked the k largest of the whole tensor: filter each distribution (the last axis) separately.",
                 lambda z, k: z.masked_fill(z < torch.topk(z.flatten(), k).values[-1], float("-inf"))),
    ),
)


# ---------------------------------------------------------------------------------------------
# Chapter 2: maximum likelihood.
# ---------------------------------------------------------------------------------------------

def _categorical_mle(samples, vocab_size):
    """The maximum-likelihood categorical distribution: the empirical frequency of each token."""
    return torch.bincount(samples, minlength=vocab_size).double() / len(samples)


def _mle_cases(g):
    return [
        _Case("samples = [0, 0, 1, 2], vocab_size = 3", (torch.tensor([0, 0, 1, 2]), 3)),
        _Case("samples = [2, 2, 2], vocab_size = 5 (tokens never seen)", (torch.tensor([2, 2, 2]), 5)),
        _Case("200 random samples, vocab_size = 6", (torch.randint(0, 6, (200,), generator=g), 6)),
        _Case("50 random samples of tokens 0-3, vocab_size = 10", (torch.randint(0, 4, (50,), generator=g), 10)),
    ]


CH02_CATEGORICAL_MLE = FunctionExercise(
    "ch02.categorical_mle", "categorical_mle(samples, vocab_size)",
    "The maximum-likelihood categorical distribution [vocab_size] for a 1-D tensor of token ids.",
    reference=_categorical_mle, cases=_mle_cases,
    mistakes=(
        _Mistake("you returned counts: the MLE is the *frequency*, count / number of samples.",
                 lambda s, v: torch.bincount(s, minlength=v).double()),
        _Mistake("you smoothed the counts (add-one): that is a useful prior, but the MLE is the raw frequency, "
                 "which gives unseen tokens probability 0.",
                 lambda s, v: (torch.bincount(s, minlength=v).double() + 1) / (len(s) + v)),
        _Mistake("your result has one entry per token *seen*, not per token in the vocabulary: "
                 "use `torch.bincount(samples, minlength=vocab_size)`.",
                 lambda s, v: torch.bincount(s).double() / len(s)),
        _Mistake("you returned the uniform distribution: the MLE depends on the samples.",
                 lambda s, v: torch.full((v,), 1.0 / v)),
    ),
)


def _loss_cases(g, with_ignored: bool):
    hand = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    cases = [
        _Case("logits = [[0, 0], [ln 3, 0]], targets = [0, 0]", (hand, torch.tensor([0, 0]))),
        _Case("uniform logits of shape (4, 5)", (torch.zeros(4, 5), torch.tensor([0, 1, 2, 4]))),
        _Case("confident logits (one logit is 8)", (8.0 * F.one_hot(torch.tensor([1, 2, 0]), 4).float(),
                                                   torch.tensor([1, 0, 0]))),
        _Case("random logits of shape (8, 10)", (_random_logits(g, 8, 10), _random_targets(g, 8, 10))),
        _Case("random logits of shape (1, 3)", (_random_logits(g, 1, 3), _random_targets(g, 1, 3))),
    ]
    if with_ignored:
        hint = "Positions whose target is -100 (ignore_index) must be left out."
        cases += [
            _Case("logits = [[0, 0], [ln 3, 0]], targets = [0, -100]", (hand, torch.tensor([0, IGNORE_INDEX])), hint),
            _Case("random logits of shape (10, 6) with 4 targets set to -100",
                  (_random_logits(g, 10, 6), _random_targets(g, 10, 6, ignored=4)), hint),
        ]
    return cases


def _per_token_nll(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none", ignore_index=IGNORE_INDEX)


CH02_NLL_LOSS = FunctionExercise(
    "ch02.nll_loss", "nll_loss(logits, targets)",
    "Mean negative log-likelihood (nats per token) of targets [N] under logits [N, V]; a scalar tensor.",
    reference=objectives.nll, cases=lambda g: _loss_cases(g, with_ignored=False), check_gradient=True,
    mistakes=(
        _Mistake("you summed instead of averaging: the loss is the *mean* over the N tokens.",
                 lambda z, y: _per_token_nll(z, y).sum()),
        _Mistake("the sign is flipped: the loss is -log p(target), which is never negative.",
                 lambda z, y: -_per_token_nll(z, y).mean()),
        _Mistake("you used the raw logit z_y instead of log p_y: apply `log_softmax` over the vocabulary first.",
                 lambda z, y: -z.gather(-1, y[:, None]).mean()),
        _Mistake("you used -p(target) instead of -log p(target): take the log of the probability.",
                 lambda z, y: -torch.softmax(z, -1).gather(-1, y[:, None]).mean()),
        _Mistake("log base 2? Use the natural log (nats), e.g. `torch.log_softmax`.",
                 lambda z, y: _per_token_nll(z, y).mean() / math.log(2)),
        _Mistake("you averaged -log p over every token of the vocabulary: pick the *target's* log-probability "
                 "in each row (e.g. `log_probs[torch.arange(N), targets]`).",
                 lambda z, y: -torch.log_softmax(z, -1).mean()),
        _Mistake("you normalised over the batch axis: `log_softmax` must run over the vocabulary (`dim=-1`).",
                 lambda z, y: -torch.log_softmax(z, 0).gather(-1, y[:, None]).mean()),
    ),
)


def _kl_cases(g):
    return [
        _Case("p = [0.5, 0.5], q = [0.25, 0.75]", (_probs_of([0.5, 0.5]), _probs_of([0.25, 0.75]))),
        _Case("p = q = [0.2, 0.3, 0.5]", (_probs_of([0.2, 0.3, 0.5]), _probs_of([0.2, 0.3, 0.5]))),
        _Case("p = [1, 0], q = [0.5, 0.5] (a zero in p)", (_probs_of([1.0, 0.0]), _probs_of([0.5, 0.5]))),
        _Case("p, q of shape (3, 6)", (_random_probs(g, 3, 6), _random_probs(g, 3, 6))),
        _Case("p, q of shape (2, 2, 4)", (_random_probs(g, 2, 2, 4), _random_probs(g, 2, 2, 4))),
    ]


CH02_KL = FunctionExercise(
    "ch02.kl_divergence", "kl_divergence(p, q)",
    "KL(p || q) in nats over the last axis.",
    reference=distributions.kl_divergence, cases=_kl_cases,
    mistakes=(
        _Mistake("you computed KL(q || p): the first argument is the distribution you average over, "
                 "KL(p || q) = sum p log(p / q). KL is not symmetric.",
                 lambda p, q: distributions.kl_divergence(q, p)),
        _Mistake("the sign is flipped: KL(p || q) = sum p log(p / q) is never negative.",
                 lambda p, q: -distributions.kl_divergence(p, q)),
        _Mistake("log base 2 instead of the natural log? Use `torch.log` (nats).",
                 lambda p, q: distributions.kl_divergence(p, q) / math.log(2)),
        _Mistake("0 log 0 gave nan where p is 0: those terms are 0 by convention (`torch.special.xlogy`).",
                 lambda p, q: (p * torch.log(p / q)).sum(-1)),
        _Mistake("you returned one term per token: sum over the last axis.",
                 lambda p, q: torch.special.xlogy(p, p) - torch.special.xlogy(p, q)),
        _Mistake("you summed over every axis: one KL per pair of distributions, so sum over the last axis only.",
                 lambda p, q: distributions.kl_divergence(p, q).sum()),
    ),
)


# ---------------------------------------------------------------------------------------------
# Chapter 3: supervised fine-tuning.
# ---------------------------------------------------------------------------------------------

def _labels(value, where: str) -> torch.Tensor:
    if isinstance(value, (list, tuple)):
        try:
            value = torch.tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise _AnswerProblem(f"your function returned a list that is not a list of ints (on {where}).") from None
    result = _as_tensor(value, where)
    if result.is_floating_point():
        raise _AnswerProblem(f"your labels are floats (on {where}); token ids and -100 are integers: keep the "
                             f"dtype of `input_ids`.")
    return result


def _mask_cases(g):
    ids = torch.tensor([11, 12, 13, 14, 15])
    return [
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 2", (ids, 2)),
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 0 (no prompt)", (ids, 0)),
        _Case("input_ids = [11, 12, 13, 14, 15], prompt_length = 5 (all prompt)", (ids, 5)),
        _Case("12 random ids, prompt_length = 7", (torch.randint(0, 500, (12,), generator=g), 7)),
        _Case("9 random ids, prompt_length = 1", (torch.randint(0, 500, (9,), generator=g), 1)),
    ]


def _masked(ids, start, stop, value=IGNORE_INDEX):
    labels = ids.clone()
    labels[max(start, 0):max(stop, 0)] = value
    return labels


CH03_MASK_PROMPT = FunctionExercise(
    "ch03.mask_prompt", "mask_prompt(input_ids, prompt_length)",
    "Labels for a 1-D tensor of input ids with the first prompt_length positions set to -100.",
    reference=mask_prompt, cases=_mask_cases, convert=_labels,
    mutating_hint="start from `labels = input_ids.clone()`",
    mistakes=(
        _Mistake("masked one token too many (off by one): positions 0 .. prompt_length - 1 are the prompt, "
                 "so the first completion token must stay a label.",
                 lambda ids, n: _masked(ids, 0, n + 1)),
        _Mistake("masked one token too few (off by one): all prompt_length prompt positions must become -100.",
                 lambda ids, n: _masked(ids, 0, n - 1)),
        _Mistake("forgot to mask the prompt: set the first prompt_length labels to -100.",
                 lambda ids, n: ids.clone()),
        _Mistake("you masked the completion instead of the prompt: the model must learn the completion.",
                 lambda ids, n: _masked(ids, n, len(ids))),
        _Mistake("you masked with 0, which is a real token id: the ignore index is -100.",
                 lambda ids, n: _masked(ids, 0, n, 0)),
        _Mistake("you masked with -1: the ignore index of the loss is -100.",
                 lambda ids, n: _masked(ids, 0, n, -1)),
    ),
)


def _causal_shift(logits, labels):
    """Position t predicts token t + 1: drop the last prediction and the first label."""
    return logits[..., :-1, :], labels[..., 1:]


def _shift_result(value, where: str):
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise _AnswerProblem(f"your function should return a pair `(logits, labels)`, got {_show(value)} "
                             f"(on {where}).")
    return _as_tensor(value[0], where), _as_tensor(value[1], where)


def _shift_cases(g):
    return [
        _Case("logits of shape (4, 3), labels = [5, 6, 7, 8]", (_random_logits(g, 4, 3), torch.tensor([5, 6, 7, 8]))),
        _Case("logits of shape (2, 5), labels = [1, 2]", (_random_logits(g, 2, 5), torch.tensor([1, 2]))),
        _Case("a batch: logits (3, 4, 5), labels (3, 4)",
              (_random_logits(g, 3, 4, 5), torch.randint(0, 5, (3, 4), generator=g))),
    ]


CH03_SHIFT = FunctionExercise(
    "ch03.shift_for_causal_lm", "shift_for_causal_lm(logits, labels)",
    "Align a causal LM's logits [.., T, V] with labels [.., T]: return (logits, labels) with T - 1 positions.",
    reference=_causal_shift, cases=_shift_cases, convert=_shift_result,
    mistakes=(
        _Mistake("you did not shift: the logits at position t predict token t + 1, not token t.",
                 lambda z, y: (z, y)),
        _Mistake("shifted the wrong way: drop the *last* logit and the *first* label "
                 "(`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[..., 1:, :], y[..., :-1])),
        _Mistake("you dropped the last position of both: the labels must move one step left, `labels[..., 1:]`.",
                 lambda z, y: (z[..., :-1, :], y[..., :-1])),
        _Mistake("you dropped the first position of both: the logits must lose their *last* position.",
                 lambda z, y: (z[..., 1:, :], y[..., 1:])),
        _Mistake("you shifted along the batch axis: shift the time axis (`logits[..., :-1, :]`, `labels[..., 1:]`).",
                 lambda z, y: (z[:-1], y[1:])),
    ),
)


# ---------------------------------------------------------------------------------------------
# Chapter 4: Dynamic Fine-Tuning.
# ---------------------------------------------------------------------------------------------

def _dft_terms(logits, targets, weight: Callable):
    """Per-token weight(p) * -log p on supervised positions, and the supervised mask."""
    mask = targets != IGNORE_INDEX
    log_p = -_per_token_nll(logits, targets)
    return torch.where(mask, -weight(log_p.exp()) * log_p, torch.zeros_like(log_p)), mask


def _dft_variant(weight: Callable, divide_by_all: bool = False, total: bool = False):
    def loss(logits, targets):
        terms, mask = _dft_terms(logits, targets, weight)
        if total:
            return terms.sum()
        return terms.sum() / (len(targets) if divide_by_all else mask.sum().clamp(min=1))
    return loss


def _dft_minus_p(logits, targets):
    mask = targets != IGNORE_INDEX
    p = torch.softmax(logits, -1).gather(-1, targets.clamp(min=0)[:, None])[:, 0]
    return -(p * mask).sum() / mask.sum().clamp(min=1)


CH04_DFT_LOSS = FunctionExercise(
    "ch04.dft_loss", "dft_loss(logits, targets)",
    "Dynamic Fine-Tuning loss: the token mean of -sg(p) log p over targets that are not -100; a scalar tensor.",
    reference=objectives.dft, cases=lambda g: _loss_cases(g, with_ignored=True), check_gradient=True,
    mistakes=(
        _Mistake("this is the plain NLL (the SFT loss): DFT weights each token's -log p by sg(p), its own probability.",
                 _dft_variant(lambda p: torch.ones_like(p))),
        _Mistake("you summed instead of averaging: divide by the number of supervised tokens.",
                 _dft_variant(lambda p: p.detach(), total=True)),
        _Mistake("included ignore_index targets in the mean: you divided by all N positions, including those whose "
                 "target is -100. Divide by the number of supervised tokens.",
                 _dft_variant(lambda p: p.detach(), divide_by_all=True)),
        _Mistake("the weight is 1 - p instead of p: DFT up-weights tokens the model already finds likely.",
                 _dft_variant(lambda p: (1 - p).detach())),
        _Mistake("you returned -p, which has the same gradient as DFT but not its value: "
                 "multiply -log p by the detached p.",
                 _dft_minus_p),
        _Mistake("the sign is flipped: the loss is -sg(p) log p, which is never negative.",
                 lambda z, y: -objectives.dft(z, y)),
        _Mistake("the value is right but the gradient does not match: did you detach p? The weight must be a "
                 "constant (`p.detach()`); otherwise autograd also differentiates through it.",
                 _dft_variant(lambda p: p)),
    ),
)


def _dft_logit_gradient(probs, target):
    """The gradient of the one-token DFT loss in the logits z, at softmax(z) = probs: p_y (p - e_y)."""
    logits = probs.detach().double().log().requires_grad_(True)
    (gradient,) = torch.autograd.grad(objectives.dft(logits[None], torch.tensor([target])), logits)
    return gradient


def _gradient_cases(g):
    return [
        _Case("probs = [0.5, 0.25, 0.25], target = 1", (_probs_of([0.5, 0.25, 0.25]), 1)),
        _Case("uniform probs over 4 tokens, target = 0", (torch.full((4,), 0.25), 0)),
        _Case("probs = [0.97, 0.01, 0.01, 0.01], target = 0 (a confident right answer)",
              (_probs_of([0.97, 0.01, 0.01, 0.01]), 0)),
        _Case("probs = [0.97, 0.01, 0.01, 0.01], target = 2 (an unlikely target)",
              (_probs_of([0.97, 0.01, 0.01, 0.01]), 2)),
        _Case("random probs over 6 tokens, target = 4", (_random_probs(g, 6), 4)),
    ]


def _one_hot(probs, target):
    return F.one_hot(torch.tensor(target), probs.shape[-1]).to(probs.dtype)


CH04_DFT_GRADIENT = FunctionExercise(
    "ch04.dft_logit_gradient", "dft_logit_gradient(probs, target)",
    "The gradient in the logits of the one-token DFT loss -sg(p_y) log p_y, at probabilities probs [V].",
    reference=_dft_logit_gradient, cases=_gradient_cases,
    mistakes=(
        _Mistake("this is the cross-entropy gradient p - e_y: DFT multiplies it by the constant weight p_y.",
                 lambda p, y: p - _one_hot(p, y)),
        _Mistake("the sign is flipped: the gradient of the loss is p_y (p - e_y); gradient *descent* then moves "
                 "against it.",
                 lambda p, y: p[y] * (_one_hot(p, y) - p)),
        _Mistake("the weight is 1 - p_y: DFT's weight is p_y itself.",
                 lambda p, y: (1 - p[y]) * (p - _one_hot(p, y))),
        _Mistake("you differentiated through the weight too (no stop-gradient): that is the gradient of "
                 "-p_y log p_y, (1 + log p_y) p_y (p - e_y). The weight sg(p_y) is a constant.",
                 lambda p, y: (1 + torch.log(p[y])) * p[y] * (p - _one_hot(p, y))),
        _Mistake("you returned -p_y e_y, the gradient in the *probabilities*: the exercise asks for the gradient "
                 "in the logits, through the softmax.",
                 lambda p, y: -p[y] * _one_hot(p, y)),
    ),
)


# ---------------------------------------------------------------------------------------------
# Chapter 5: distribution matching.
# ---------------------------------------------------------------------------------------------

def _float_result(value, where: str) -> torch.Tensor:
    result = _as_tensor(value, where)
    if result.numel() != 1:
        raise _AnswerProblem(f"your function should return one number, got a tensor of shape {tuple(result.shape)} "
                             f"(on {where}).")
    return result.reshape(()).double()


def _ngrams(words, n):
    return [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]


def _distinct_per_text(texts, n):
    ratios = [len(set(_ngrams(t.split(), n))) / len(_ngrams(t.split(), n)) for t in texts if _ngrams(t.split(), n)]
    return sum(ratios) / len(ratios)


def _distinct_joined(texts, n):
    grams = _ngrams(" ".join(texts).split(), n)
    return len(set(grams)) / len(grams)


def _distinct_characters(texts, n):
    grams = [g for t in texts for g in _ngrams(list(t), n)]
    return len(set(grams)) / len(grams)


def _distinct_over_words(texts, n):
    grams = [g for t in texts for g in _ngrams(t.split(), n)]
    return len(set(grams)) / sum(len(t.split()) for t in texts)


def _distinct_cases(g):
    return [
        _Case("texts = ['the cat sat', 'the cat ran'], n = 1", (["the cat sat", "the cat ran"], 1)),
        _Case("texts = ['the cat sat', 'the cat ran'], n = 2", (["the cat sat", "the cat ran"], 2)),
        _Case("texts = ['a b c d'], n = 2 (nothing repeats)", (["a b c d"], 2)),
        _Case("texts = ['sat', 'the cat sat'], n = 2 (a text shorter than n)", (["sat", "the cat sat"], 2)),
        _Case("20 random texts, n = 1", (_random_corpus(g, 20, 3, 8), 1)),
        _Case("20 random texts, n = 2", (_random_corpus(g, 20, 3, 8), 2)),
        _Case("10 random texts, n = 3", (_random_corpus(g, 10, 4, 9), 3)),
    ]


CH05_DISTINCT_N = FunctionExercise(
    "ch05.distinct_n", "distinct_n(texts, n)",
    "distinct-n of a list of texts (words split on whitespace): distinct n-grams / all n-grams, over the corpus.",
    reference=metrics.distinct_n, cases=_distinct_cases, convert=_float_result,
    mistakes=(
        _Mistake("counted per text instead of over the corpus: pool the n-grams of every text, then divide once "
                 "(repeats *across* texts are what makes a corpus formulaic).",
                 _distinct_per_text),
        _Mistake("you joined the texts, so n-grams cross from the end of one text into the next: "
                 "take n-grams inside each text.",
                 _distinct_joined),
        _Mistake("you counted characters, not words: split each text on whitespace (`text.split()`).",
                 _distinct_characters),
        _Mistake("you returned the number of distinct n-grams: divide it by the total number of n-grams.",
                 lambda texts, n: float(len(Counter(g for t in texts for g in _ngrams(t.split(), n))))),
        _Mistake("you divided by the number of words, not the number of n-grams (a text of L words has "
                 "L - n + 1 n-grams).",
                 _distinct_over_words),
        _Mistake("the ratio is upside down: distinct n-grams / all n-grams, a number between 0 and 1.",
                 lambda texts, n: 1 / metrics.distinct_n(texts, n)),
        _Mistake("your function ignores n: it always counts single words.",
                 lambda texts, n: metrics.distinct_n(texts, 1)),
    ),
)


def _word_frequencies(texts):
    counts = Counter(w for t in texts for w in t.split())
    total = sum(counts.values())
    return {w: c / total for w, c in counts.items()}


def _l2_variant(norm: str = "l2", normalise: bool = True, union: bool = True):
    def distance(samples, reference):
        if normalise:
            p, q = _word_frequencies(samples), _word_frequencies(reference)
        else:
            p = Counter(w for t in samples for w in t.split())
            q = Counter(w for t in reference for w in t.split())
        words = (p.keys() | q.keys()) if union else p.keys()
        differences = [p.get(w, 0.0) - q.get(w, 0.0) for w in words]
        if norm == "l1":
            return sum(abs(d) for d in differences)
        squared = sum(d * d for d in differences)
        return squared if norm == "squared" else math.sqrt(squared)
    return distance


def _l2_cases(g):
    return [
        _Case("samples = ['a a b'], reference = ['a b b']", (["a a b"], ["a b b"])),
        _Case("samples = reference = ['the cat sat', 'the dog']",
              (["the cat sat", "the dog"], ["the cat sat", "the dog"])),
        _Case("samples = ['x'], reference = ['y'] (no word in common)", (["x"], ["y"])),
        _Case("samples = ['a b'], reference = ['a b c c']", (["a b"], ["a b c c"])),
        _Case("random corpora of 15 and 25 texts", (_random_corpus(g, 15, 2, 6), _random_corpus(g, 25, 2, 6))),
    ]


CH05_TOKEN_L2 = FunctionExercise(
    "ch05.token_l2_distance", "token_l2_distance(samples, reference)",
    "The L2 distance between the word-frequency vectors (each summing to 1) of two lists of texts.",
    reference=lambda samples, reference: metrics.token_l2_distance(samples, reference, n=1),
    cases=_l2_cases, convert=_float_result,
    mistakes=(
        _Mistake("you compared raw counts: normalise each corpus's counts to frequencies (divide by its total) "
                 "so that corpora of different sizes compare.",
                 _l2_variant(normalise=False)),
        _Mistake("you returned the squared distance: take the square root.",
                 _l2_variant(norm="squared")),
        _Mistake("that is the L1 distance (sum of absolute differences): L2 is the square root of the sum of squares.",
                 _l2_variant(norm="l1")),
        _Mistake("you only looped over the words of `samples`: a word that appears only in `reference` counts "
                 "with frequency 0 in the samples (use the union of both vocabularies).",
                 _l2_variant(union=False)),
    ),
)


# ---------------------------------------------------------------------------------------------
# Chapter 6: back to maximum likelihood.
# ---------------------------------------------------------------------------------------------

def _decoding_cases(g):
    hand = torch.log(_probs_of([0.5, 0.3, 0.15, 0.05]))
    return [
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 0.7", (hand, 1.0, 0.7)),
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 1, top_p = 1", (hand, 1.0, 1.0)),
        _Case("logits = log [0.5, 0.3, 0.15, 0.05], temperature = 2, top_p = 0.6", (hand, 2.0, 0.6)),
        _Case("logits of shape (3, 8), temperature = 0.5, top_p = 0.9", (_random_logits(g, 3, 8), 0.5, 0.9)),
        _Case("logits of shape (2, 10), temperature = 1.5, top_p = 0.5", (_random_logits(g, 2, 10), 1.5, 0.5)),
    ]


def _renormalised_top_p(logits, temperature, top_p):
    return torch.softmax(distributions.top_p_filter(logits / temperature, top_p), -1)


def _strict_top_p(logits, temperature, top_p):
    """Keeps a token only if the total *including it* stays within p, so it drops the token that crosses p."""
    scaled = logits / temperature
    sorted_logits, order = torch.sort(scaled, -1, descending=True)
    drop_sorted = torch.softmax(sorted_logits, -1).cumsum(-1) > top_p + 1e-6
    drop_sorted[..., 0] = False
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return torch.softmax(scaled.masked_fill(drop, float("-inf")), -1)


CH06_DECODING = FunctionExercise(
    "ch06.decoding_distribution", "decoding_distribution(logits, temperature, top_p)",
    "The distribution a sampler draws from: temperature first, then top-p (nucleus) filtering, renormalised.",
    reference=lambda logits, temperature, top_p: distributions.decoding_distribution(logits, temperature,
                                                                                      top_p=top_p),
    cases=_decoding_cases,
    mistakes=(
        _Mistake("you chose the nucleus before applying the temperature: divide the logits by T first, then keep "
                 "the top-p set of the *tempered* distribution.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z, p) / t, -1)),
        _Mistake("you did not renormalise after filtering: the kept probabilities must sum to 1 again.",
                 lambda z, t, p: torch.softmax(z / t, -1) * torch.isfinite(distributions.top_p_filter(z / t, p))),
        _Mistake("the temperature has no effect in your function: divide the logits by it first.",
                 lambda z, t, p: _renormalised_top_p(z, 1.0, p)),
        _Mistake("top_p has no effect in your function: drop the tokens outside the nucleus.",
                 lambda z, t, p: torch.softmax(z / t, -1)),
        _Mistake("you dropped the token that takes the total past top_p (off by one): keep the *smallest* set "
                 "of most likely tokens whose total reaches top_p, so the token that crosses it stays.",
                 _strict_top_p),
        _Mistake("you multiplied the logits by the temperature: divide them.",
                 lambda z, t, p: torch.softmax(distributions.top_p_filter(z * t, p), -1)),
    ),
)


# ---------------------------------------------------------------------------------------------
# Predict-then-run exercises (the notebook measures; `check` compares).
# ---------------------------------------------------------------------------------------------

def _near(target: float, tolerance: float) -> Callable[[Any], bool]:
    return lambda value: abs(value - target) <= tolerance


DFT_TOY_TARGET = (0.40, 0.25, 0.15, 0.12, 0.08)  # q of the worked example in chapter 4

PREDICTIONS = (
    PredictionExercise(
        "ch01.zipf_top10_mass",
        "Predict the share of probability held by the 10 most likely of 10,000 tokens under Zipf's law (p_r ~ 1/r).",
        kind="number", tolerance=0.08,
        misconceptions=((_near(0.001, 0.01), "That is the uniform answer (10 / 10,000): under Zipf's law the top "
                                             "ranks are far more likely than the rest."),
                        (lambda v: v > 0.6, "The tail is long: 9,990 tokens with small probabilities still add up "
                                            "to most of the mass.")),
        lesson="With p_r proportional to 1/r the top 10 ranks hold H_10 / H_10000 (harmonic numbers), about 30%: "
               "a few tokens dominate, and the long tail is where varied writing lives."),
    PredictionExercise(
        "ch02.uniform_model_nll",
        "Predict the mean NLL (nats per token) of a uniform model over 3 tokens on data drawn from q = (0.7, 0.2, 0.1).",
        kind="number", tolerance=0.05,
        misconceptions=((_near(0.802, 0.05), "That is H(q), the NLL of the perfect model p = q: the uniform model "
                                             "pays KL(q || uniform) on top."),
                        (_near(0.0, 0.05), "A loss of 0 needs p(target) = 1 for every token.")),
        lesson="The uniform model gives every token probability 1/3, so each token costs -log(1/3) = ln 3 = 1.099 "
               "nats whatever the data. Cross-entropy = H(q) + KL(q || p) = 0.802 + 0.297."),
    PredictionExercise(
        "ch03.supervised_token_count",
        "Predict how many labels in a padded batch of three prompt/completion examples are supervised (not -100).",
        kind="number", tolerance=0.0,
        misconceptions=((_near(18, 0), "You counted every real token: prompt tokens are masked to -100 too."),
                        (_near(21, 0), "You counted every position of the padded batch (3 x 7): padding and prompt "
                                       "positions carry -100.")),
        lesson="Only completion tokens are supervised (EOS included); prompt tokens and padding are -100, so the "
               "token-mean loss divides by the number of completion tokens."),
    PredictionExercise(
        "ch03.sft_matches_frequency",
        "Predict p('sunny') after SFT on 10 demonstrations (6 'sunny', 3 'rainy', 1 'grey') for the same prompt.",
        kind="number", tolerance=0.05,
        misconceptions=((_near(1.0, 0.05), "SFT does not pick the most common completion: minimising the NLL "
                                           "matches the frequencies (chapter 4 shows which loss *does* pick the mode)."),),
        lesson="SFT is maximum likelihood on the demonstrations, and the MLE of a categorical is the empirical "
               "frequency: p('sunny') goes to 6/10."),
    PredictionExercise(
        "ch04.dft_fixed_point",
        "Predict the distribution that DFT reaches when fitted to q = (0.40, 0.25, 0.15, 0.12, 0.08) from uniform.",
        kind="distribution", tolerance=0.05,
        misconceptions=((lambda v: float(np.abs(v - np.asarray(DFT_TOY_TARGET)).max()) <= 0.05,
                         "That is the data distribution q, where cross-entropy ends. DFT's gradient is the gradient of "
                         "-E_q[p(y)], a linear function of p, whose maximum on the simplex is a vertex."),
                        (lambda v: float(np.abs(v - 0.2).max()) <= 0.05,
                         "Uniform is where the fit starts; DFT moves away from it.")),
        lesson="DFT maximises the expected probability sum_y q_y p_y, not the log-likelihood; that linear score is "
               "maximised by putting all the mass on the mode of q, so the fit collapses towards (1, 0, 0, 0, 0)."),
    PredictionExercise(
        "ch04.dft_loss_ratio",
        "Predict DFT loss / NLL loss on a batch where the model gives every target probability 0.1.",
        kind="number", tolerance=0.02,
        misconceptions=((_near(1.0, 0.05), "The two losses are not equal: DFT multiplies each token's NLL by p."),
                        (_near(10.0, 0.5), "The ratio is the other way up: DFT's loss is the smaller one.")),
        lesson="Each token's DFT loss is p times its NLL, so with p = 0.1 everywhere the ratio is exactly 0.1. "
               "This is why users see DFT loss values 10-20x smaller than cross-entropy: do not compare them directly."),
    PredictionExercise(
        "ch05.formulaic_distinct_1",
        "Predict distinct-1 of a corpus made of 100 copies of 'the cat sat on the mat'.",
        kind="number", tolerance=0.005,
        misconceptions=((_near(5 / 6, 0.02), "5/6 is distinct-1 of a single copy: repeats across texts count too, "
                                             "because distinct-n is computed over the whole corpus."),),
        lesson="5 distinct words out of 600: distinct-1 = 0.0083. Each text on its own looks varied; only the "
               "corpus-level count exposes the repetition."),
    PredictionExercise(
        "ch05.shuffled_token_l2",
        "Predict the unigram token-L2 distance between a corpus and the same corpus with the words of every text "
        "shuffled.",
        kind="number", tolerance=0.02,
        misconceptions=((lambda v: v > 0.1, "Shuffling words inside a text does not change how often each word "
                                            "occurs."),),
        lesson="Unigram frequencies ignore order, so the distance is 0: token-L2 with n = 1 cannot see word salad. "
               "Higher n, or embedding-level measures such as MMD, are needed for that."),
    PredictionExercise(
        "ch06.temperature_undoes_dft",
        "Predict whether some sampling temperature makes the DFT-trained distribution match q (KL < 0.01): "
        "'yes' or 'no'.",
        kind="choice", choices=("yes", "no"),
        misconceptions=((lambda v: v == "yes", "Temperature keeps the ranking and rescales the log-probabilities "
                                               "by one factor; it cannot restore the ratios between tail tokens "
                                               "that DFT flattened."),),
        lesson="DFT pushed the tail tokens to nearly equal, tiny probabilities. A high temperature brings the "
               "entropy back but not the shape of q: the information about the tail is gone."),
    PredictionExercise(
        "ch06.greedy_same_token",
        "Predict whether greedy decoding picks the same token from the NLL fit (p = q) and the DFT fit: 'yes' or 'no'.",
        kind="choice", choices=("yes", "no"),
        misconceptions=((lambda v: v == "no", "Both fits rank the mode of q first, and greedy decoding only looks "
                                              "at the ranking."),),
        lesson="Greedy decoding is mode-seeking whatever the training loss: it turns a well-calibrated MLE model "
               "into a formulaic one. Sample (T = 1, maybe with top-p) to see the distribution you trained."),
)

_FUNCTIONS = (CH01_SOFTMAX, CH01_ENTROPY, CH01_TOP_K, CH02_CATEGORICAL_MLE, CH02_NLL_LOSS, CH02_KL,
              CH03_MASK_PROMPT, CH03_SHIFT, CH04_DFT_LOSS, CH04_DFT_GRADIENT, CH05_DISTINCT_N, CH05_TOKEN_L2,
              CH06_DECODING)

_REGISTRY: dict[str, FunctionExercise | PredictionExercise] = {
    exercise.exercise_id: exercise for exercise in sorted(_FUNCTIONS + PREDICTIONS, key=lambda e: e.exercise_id)}

EXERCISES: dict[str, str] = {
    exercise_id: (f"implement `{exercise.signature}`: {exercise.description}" if isinstance(exercise, FunctionExercise)
                  else f"predict, then run: {exercise.description}")
    for exercise_id, exercise in _REGISTRY.items()}


# ---------------------------------------------------------------------------------------------
# The one entry point.
# ---------------------------------------------------------------------------------------------

def check(exercise_id: str, answer=..., *, measured=None, time_limit: float = TIME_LIMIT_SECONDS) -> CheckResult:
    """Check an answer to exercise `exercise_id` (a key of `EXERCISES`) and say what is wrong with it.

    Function exercises: `check("ch01.entropy", entropy)` passes your function itself. Each call of it
    may take at most `time_limit` seconds.
    Predict-then-run exercises: `check("ch04.dft_fixed_point", prediction, measured=fit.probs)` passes
    your prediction and the value the notebook measured.
    Returns a `CheckResult`; it never raises because of the answer.
    """
    if not isinstance(exercise_id, str) or exercise_id not in _REGISTRY:
        close = difflib.get_close_matches(str(exercise_id), list(_REGISTRY), n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        return _failed(str(exercise_id), f"unknown exercise id {exercise_id!r}. {suggestion}"
                                         f"Known ids: {', '.join(_REGISTRY)}.")
    if isinstance(time_limit, bool) or not isinstance(time_limit, (int, float)) or not 0 < time_limit < math.inf:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit!r}.")
    exercise = _REGISTRY[exercise_id]
    if isinstance(exercise, FunctionExercise):
        if measured is not None:
            return _failed(exercise_id, "this exercise checks a function: call `check(exercise_id, your_function)` "
                                        "without `measured=`.")
        return _check_function(exercise, answer, float(time_limit))
    return _check_prediction(exercise, answer, measured)
