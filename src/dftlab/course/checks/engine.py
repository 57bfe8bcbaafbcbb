"""The engine of `dftlab.course.checks`: the result, running the learner's code under a time limit, comparing
values, the two kinds of exercise, the registry and `check`.

The exercises themselves are defined one chapter per module (`dftlab.course.checks.ch01` ... `ch07`), with
the helpers below; `dftlab.course.checks` registers them all. Nothing here calls `eval`: answers are only
ever called (functions) or compared (values).
"""
from __future__ import annotations

import difflib
import html
import math
import re
import signal
import threading
import zlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from dftlab.data import IGNORE_INDEX
from dftlab.validation import check_number

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


class AnswerProblem(Exception):
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
    """Call the learner's code and turn every way it can go wrong into an `AnswerProblem`."""
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
        raise AnswerProblem(f"{what} took longer than {time_limit:g} s on {where} and {stopped}. "
                             f"Look for a loop that never ends, or a Python loop over every element of a tensor.")
    except NotImplementedError as exc:
        hint = f" ({exc})" if str(exc) else ""
        raise AnswerProblem(f"not attempted yet{hint}. Replace the `raise NotImplementedError` line with your code, "
                             f"then run this cell again.", attempted=False)
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = message[:200] + ("..." if len(message) > 200 else "")
        raise AnswerProblem(f"{what} raised {type(exc).__name__}" + (f": {message}" if message else "")
                             + f" (on {where}).")


# ---------------------------------------------------------------------------------------------
# Comparing results.
# ---------------------------------------------------------------------------------------------

RTOL, ATOL = 1e-4, 1e-5


def as_tensor(value, where: str) -> torch.Tensor:
    """The learner's result as a tensor; numpy arrays, Python numbers and lists of numbers are accepted."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, bool) or value is None:
        raise AnswerProblem(f"your function returned {value!r} on {where}; it should return a tensor. "
                             f"Did you forget the `return` line?")
    try:
        return torch.as_tensor(np.asarray(value))
    except (TypeError, ValueError, RuntimeError):
        raise AnswerProblem(f"your function returned a {type(value).__name__} on {where}, which is not a number "
                             f"or a tensor of numbers.") from None


def float_result(value, where: str) -> torch.Tensor:
    """A function exercise's answer as one float64 number (a problem naming its shape if it is not one)."""
    result = as_tensor(value, where)
    if result.numel() != 1:
        raise AnswerProblem(f"your function should return one number, got a tensor of shape {tuple(result.shape)} "
                             f"(on {where}).")
    return result.reshape(()).double()



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


def show(value) -> str:
    """A short, deterministic rendering of a value for feedback: values when small, the shape when not."""
    if isinstance(value, tuple):
        return "(" + ", ".join(show(item) for item in value) + ")"
    if isinstance(value, torch.Tensor):
        if value.numel() == 1 and value.dim() == 0:
            return _number(value.item())
        if value.numel() <= 8:
            return "[" + ", ".join(show(item) for item in value) + "]"
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
class Case:
    """One call of the answer: `shown` is how the feedback describes it, `hint` is added if the answer raises."""

    shown: str
    args: tuple
    hint: str = ""


@dataclass(frozen=True)
class Mistake:
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
    return as_tensor(raw, where)


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


def _scalar_loss_gradient(loss_function: Callable, case: Case):
    logits = case.args[0].detach().clone().requires_grad_(True)
    loss = loss_function(logits, *map(_clone, case.args[1:]))
    (gradient,) = torch.autograd.grad(loss, logits)
    return gradient


@dataclass
class Trial:
    """What the learner's function did on an exercise's inputs, before any judgement.

    `run_trial` makes it where the learner's code runs; `judge_trial` needs only it, the exercise and the same
    inputs, so the grader can judge in a process the learner's code cannot reach (`dftlab.course.grading`). `outputs` are
    the converted results of the inputs that ran cleanly, in order; `stop` is (input index, feedback, attempted)
    where the run stopped (the function raised, changed its input, or returned something unusable); `gradients`
    (losses only) hold, per input, the gradient in the logits or a sentence saying why there is none, and
    `gradient_stop` is (feedback, attempted) when computing one raised.
    """

    outputs: list
    stop: tuple | None = None
    gradients: list | None = None
    gradient_stop: tuple | None = None


def _learner_gradient(answer: Callable, case: Case, time_limit: float):
    """d(loss)/d(logits) of the learner's loss on one input, or a sentence saying why it has none."""
    logits = case.args[0].detach().clone().requires_grad_(True)
    loss = _call(answer, (logits, *map(_clone, case.args[1:])), case.shown, time_limit)
    if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
        return ("the value is right, but the loss carries no gradient, so training could not use it. Build it "
                "from `logits` with torch operations only (no `.item()`, `.detach()` of the result, numpy or floats).")
    (gradient,) = _call(lambda: torch.autograd.grad(loss, logits, allow_unused=True), (), case.shown, time_limit,
                        what="computing the gradient of your loss")
    if gradient is None:
        return "the value is right, but the loss does not depend on `logits` through autograd."
    return gradient.detach()


def run_trial(exercise: FunctionExercise, answer: Callable, cases: list, time_limit: float) -> Trial:
    """Call the learner's function on every input (where their code runs); judge nothing."""
    outputs = []
    for index, case in enumerate(cases):
        arguments = tuple(map(_clone, case.args))
        try:
            raw = _call(answer, arguments, case.shown, time_limit)
            for before, after in zip(case.args, arguments):
                if isinstance(before, torch.Tensor) and not torch.equal(before, after):
                    return Trial(outputs, (index, f"your function changed its input in place (on {case.shown}), "
                                                  f"which corrupts the caller's data: {exercise.mutating_hint}.", True))
            outputs.append(_convert(exercise, raw, case.shown))
        except AnswerProblem as problem:
            hint = f" {case.hint}" if case.hint and problem.attempted else ""
            return Trial(outputs, (index, problem.feedback + hint, problem.attempted))
    if not exercise.check_gradient:
        return Trial(outputs)
    gradients = []
    for case in cases:
        try:
            gradients.append(_learner_gradient(answer, case, time_limit))
        except AnswerProblem as problem:
            return Trial(outputs, gradients=gradients, gradient_stop=(problem.feedback, problem.attempted))
    return Trial(outputs, gradients=gradients)


def _gradient_feedback(exercise: FunctionExercise, case: Case, gradient) -> str | None:
    """None when the learner's gradient in the logits matches the reference's; else what is wrong with it."""
    if isinstance(gradient, str):
        return gradient
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


def _stopped(exercise_id: str, feedback: str, attempted: bool) -> CheckResult:
    return _failed(exercise_id, feedback) if attempted else _not_attempted(exercise_id, feedback)


def judge_trial(exercise: FunctionExercise, cases: list, trial: Trial) -> CheckResult:
    """Compare a trial with the reference answers on the same inputs, and name the likely mistake."""
    exercise_id = exercise.exercise_id
    for index, output in enumerate(trial.outputs):
        case = cases[index]
        expected = _convert(exercise, exercise.reference(*map(_clone, case.args)), case.shown)
        if not _same_result(output, expected):
            mistake = _diagnose(exercise, cases[:index + 1], trial.outputs[:index + 1], index)
            details = f"on {case.shown} the answer is {show(expected)}, yours gave {show(output)}."
            if mistake:
                return _failed(exercise_id, f"not yet: {mistake} ({details})")
            shape_note = ""
            if isinstance(output, torch.Tensor) and isinstance(expected, torch.Tensor) \
                    and output.shape != expected.shape:
                shape_note = f" Expected shape {tuple(expected.shape)}, got {tuple(output.shape)}."
            return _failed(exercise_id, f"not yet: {details}{shape_note}")
    if trial.stop is not None:
        _, feedback, attempted = trial.stop
        return _stopped(exercise_id, feedback, attempted)
    if len(trial.outputs) != len(cases):
        raise ValueError(f"the trial has {len(trial.outputs)} results for {len(cases)} inputs")
    if exercise.check_gradient:
        for case, gradient in zip(cases, trial.gradients or []):
            problem = _gradient_feedback(exercise, case, gradient)
            if problem:
                return _failed(exercise_id, f"not yet: {problem}")
        if trial.gradient_stop is not None:
            return _stopped(exercise_id, *trial.gradient_stop)
        if len(trial.gradients or []) != len(cases):
            raise ValueError(f"the trial has {len(trial.gradients or [])} gradients for {len(cases)} inputs")
    gradient = " and gradients" if exercise.check_gradient else ""
    return _passed(exercise_id, f"correct: your function matches the reference values{gradient} on all "
                                f"{len(cases)} test inputs (hand-computed examples, edge cases, random batches).")


def _answer_problem(exercise: FunctionExercise, answer) -> CheckResult | None:
    """The result when `answer` is not a function to try at all (still a stub, or not callable); else None."""
    if answer is ... or answer is None:
        return _not_attempted(exercise.exercise_id,
                              f"not attempted yet: define `{exercise.signature}` and pass the function.")
    if not callable(answer):
        return _failed(exercise.exercise_id, f"expected a function `{exercise.signature}`, got a "
                                             f"{type(answer).__name__}. Pass the function itself, without calling it.")
    return None


def _check_function(exercise: FunctionExercise, answer, time_limit: float) -> CheckResult:
    problem = _answer_problem(exercise, answer)
    if problem is not None:
        return problem
    cases = exercise.cases(_seed(exercise.exercise_id))
    return judge_trial(exercise, cases, run_trial(exercise, answer, cases, time_limit))


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
        return _failed(exercise_id, f"the measured value should be {expected_form}, got {show(measured)}.")
    predicted = _prediction_value(exercise, prediction)
    if predicted is None or (exercise.kind == "choice" and predicted not in exercise.choices):
        return _failed(exercise_id, f"your prediction should be {expected_form}, got {show(prediction)}.")
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
            return _failed(exercise_id, f"your prediction {show(torch.as_tensor(predicted))} is not a probability "
                                        f"distribution: entries must be >= 0 and sum to 1.")
        close = float(np.abs(predicted - measured_value).max()) <= exercise.tolerance
        shown_prediction = show(torch.as_tensor(predicted))
        shown_measured = show(torch.as_tensor(measured_value))
    if close:
        return _passed(exercise_id, f"well predicted: you said {shown_prediction}, the experiment gives "
                                    f"{shown_measured}. {exercise.lesson}")
    misconception = next((feedback for test, feedback in exercise.misconceptions if test(predicted)), "")
    return _failed(exercise_id, f"you predicted {shown_prediction}, the experiment gives {shown_measured}. "
                                + (f"{misconception} " if misconception else "") + exercise.lesson)


# ---------------------------------------------------------------------------------------------
# Grading in two processes: a record of what the answer did, made where the learner's code runs,
# as plain JSON data, and its judgement, made where it cannot reach (`dftlab.course.grading`).
# ---------------------------------------------------------------------------------------------

_DTYPES = {"float64": torch.float64, "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8,
           "uint8": torch.uint8, "bool": torch.bool}
_MAX_RECORD_NUMBERS = 1_000_000  # a record is a few small tensors; more than this is not an honest one


def graded_inputs(exercise_id: str, seed: int) -> list:
    """The inputs a grader tries an answer on: the exercise's cases drawn from `seed`, which the learner never sees
    (in a notebook, `check` draws them from the exercise id, so that feedback is the same on every run)."""
    exercise = REGISTRY[exercise_id]
    return exercise.cases(torch.Generator().manual_seed((int(seed) + zlib.crc32(exercise_id.encode())) % 2 ** 63))


def _encode(value):
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _DTYPES:
            value, dtype = value.double(), "float64"
        data = value.reshape(-1).double().tolist() if value.is_floating_point() else value.reshape(-1).tolist()
        return {"tensor": data, "dtype": dtype, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"tuple": [_encode(item) for item in value]}
    if isinstance(value, str):
        return {"text": value}
    raise TypeError(f"cannot record a {type(value).__name__}")


def _decode(data, budget: list):
    """The inverse of `_encode`, for data that arrived from the learner's process: checked before it is used."""
    if not isinstance(data, dict) or len(data) not in (1, 3):
        raise ValueError("not a recorded value")
    if "text" in data and isinstance(data["text"], str):
        return data["text"]
    if "tuple" in data and isinstance(data["tuple"], list) and len(data["tuple"]) <= 16:
        return tuple(_decode(item, budget) for item in data["tuple"])
    flat, dtype, shape = data.get("tensor"), data.get("dtype"), data.get("shape")
    if not (isinstance(flat, list) and dtype in _DTYPES and isinstance(shape, list) and len(shape) <= 8
            and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            and math.prod(shape) == len(flat)):
        raise ValueError("not a recorded tensor")
    budget[0] -= len(flat)
    if budget[0] < 0 or not all(isinstance(x, (int, float)) for x in flat):
        raise ValueError("a recorded tensor is too large or holds something other than numbers")
    return torch.tensor(flat, dtype=torch.float64).to(_DTYPES[dtype]).reshape(shape) if flat else \
        torch.zeros(shape, dtype=_DTYPES[dtype])


def answer_record(exercise_id: str, answer, seed: int, time_limit: float = TIME_LIMIT_SECONDS) -> dict:
    """What `answer` did on exercise `exercise_id`'s graded inputs, as JSON-ready data; judged by `judge_record`.

    Function exercises: the function's results on `graded_inputs(exercise_id, seed)`. Predictions: the prediction
    itself (predictions are graded for being made, not for being right, so that peeking earns nothing).
    """
    exercise = REGISTRY[exercise_id]
    if isinstance(exercise, PredictionExercise):
        if answer is ... or answer is None:
            return {"prediction": None}
        value = _prediction_value(exercise, answer)
        if isinstance(value, np.ndarray):
            value = value.tolist()
        return {"prediction": value, "shown": show(answer)[:200]}
    problem = _answer_problem(exercise, answer)
    if problem is not None:
        return {"result": [problem.status, problem.feedback]}
    trial = run_trial(exercise, answer, graded_inputs(exercise_id, seed), float(time_limit))
    return {"outputs": [_encode(output) for output in trial.outputs], "stop": trial.stop,
            "gradients": None if trial.gradients is None else [_encode(g) for g in trial.gradients],
            "gradient_stop": trial.gradient_stop}


def judge_record(exercise_id: str, record, seed: int) -> tuple[str, str]:
    """(status, feedback) for a record made by `answer_record` in the learner's process, judged here.

    Status is "passed", "failed" or "not attempted" for a function, "answered" or "not attempted" for a
    prediction. A record that is not well formed raises ValueError: the caller reports it, it never passes.
    """
    exercise = REGISTRY[exercise_id]
    if not isinstance(record, dict):
        raise ValueError("the record is not a JSON object")
    if isinstance(exercise, PredictionExercise):
        value = record.get("prediction")
        if value is None:
            return "not attempted", "no prediction was written."
        usable = _prediction_value(exercise, value)
        if usable is None or (exercise.kind == "choice" and usable not in exercise.choices):
            expected_form = {"number": "a number", "choice": "one of " + ", ".join(map(repr, exercise.choices)),
                             "distribution": "a list of probabilities"}[exercise.kind]
            return "failed", f"the prediction should be {expected_form}; got {str(record.get('shown'))[:200]}."
        shown = repr(usable) if isinstance(usable, str) else show(torch.as_tensor(usable))
        return "answered", (f"prediction made: {shown} (graded for completion: a prediction written before the "
                            f"experiment earns its points, right or wrong).")
    if "result" in record:
        status, feedback = record["result"]
        if status not in ("not attempted", "failed"):
            raise ValueError("a function record may only say 'not attempted' or 'failed' by itself")
        return status, str(feedback)[:500]
    budget = [_MAX_RECORD_NUMBERS]
    outputs = [_decode(item, budget) for item in record.get("outputs", [])]
    stop, gradients, gradient_stop = record.get("stop"), record.get("gradients"), record.get("gradient_stop")
    cases = graded_inputs(exercise_id, seed)
    if len(outputs) > len(cases) or (stop is not None and not (
            isinstance(stop, (list, tuple)) and len(stop) == 3 and stop[0] == len(outputs) and isinstance(stop[1], str)
            and isinstance(stop[2], bool))):
        raise ValueError("the record's results do not match the inputs")
    if gradient_stop is not None and not (isinstance(gradient_stop, (list, tuple)) and len(gradient_stop) == 2
                                          and isinstance(gradient_stop[0], str)
                                          and isinstance(gradient_stop[1], bool)):
        raise ValueError("the record's gradient problem is not well formed")
    trial = Trial(outputs, None if stop is None else (stop[0], stop[1][:500], stop[2]),
                  None if gradients is None else [_decode(g, budget) for g in gradients],
                  None if gradient_stop is None else (gradient_stop[0][:500], gradient_stop[1]))
    result = judge_trial(exercise, cases, trial)
    return result.status, result.feedback


# ---------------------------------------------------------------------------------------------
# Random inputs, shared by the chapters' exercises.
# ---------------------------------------------------------------------------------------------

def random_probs(generator: torch.Generator, *shape: int, spread: float = 2.0) -> torch.Tensor:
    return torch.softmax(spread * torch.randn(*shape, generator=generator), dim=-1)


def random_logits(generator: torch.Generator, *shape: int) -> torch.Tensor:
    return 2.0 * torch.randn(*shape, generator=generator)


def random_targets(generator: torch.Generator, count: int, vocab_size: int, ignored: int = 0) -> torch.Tensor:
    targets = torch.randint(0, vocab_size, (count,), generator=generator)
    if ignored:
        targets[torch.randperm(count, generator=generator)[:ignored]] = IGNORE_INDEX
    return targets


_WORDS = "the a cat dog sat ran on mat and then it was".split()


def random_corpus(generator: torch.Generator, num_texts: int, min_words: int, max_words: int) -> list[str]:
    texts = []
    for _ in range(num_texts):
        length = int(torch.randint(min_words, max_words + 1, (1,), generator=generator))
        words = torch.randint(0, len(_WORDS), (length,), generator=generator).tolist()
        texts.append(" ".join(_WORDS[w] for w in words))
    return texts


def probs_of(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def near(target: float, tolerance: float) -> Callable[[Any], bool]:
    return lambda value: abs(value - target) <= tolerance


# ---------------------------------------------------------------------------------------------
# The registry: the chapters' exercises, by id.
# ---------------------------------------------------------------------------------------------

REGISTRY: dict[str, FunctionExercise | PredictionExercise] = {}

EXERCISES: dict[str, str] = {}  # exercise id -> what the learner does, in id order


def _describe(exercise: FunctionExercise | PredictionExercise) -> str:
    if isinstance(exercise, FunctionExercise):
        return f"implement `{exercise.signature}`: {exercise.description}"
    return f"predict, then run: {exercise.description}"


def register(*exercises: FunctionExercise | PredictionExercise) -> None:
    """Make `exercises` known to `check` (and listed in `EXERCISES`), keeping both in id order."""
    known = dict(REGISTRY)
    for exercise in exercises:
        if not isinstance(exercise, (FunctionExercise, PredictionExercise)):
            raise TypeError(f"expected a FunctionExercise or a PredictionExercise, got {type(exercise).__name__}.")
        if exercise.exercise_id in known:
            raise ValueError(f"exercise id {exercise.exercise_id!r} is registered twice.")
        known[exercise.exercise_id] = exercise
    REGISTRY.clear()
    REGISTRY.update(sorted(known.items()))
    EXERCISES.clear()
    EXERCISES.update((exercise_id, _describe(exercise)) for exercise_id, exercise in REGISTRY.items())


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
    if not isinstance(exercise_id, str) or exercise_id not in REGISTRY:
        close = difflib.get_close_matches(str(exercise_id), list(REGISTRY), n=1)
        suggestion = f"Did you mean {close[0]!r}? " if close else ""
        return _failed(str(exercise_id), f"unknown exercise id {exercise_id!r}. {suggestion}"
                                         f"Known ids: {', '.join(REGISTRY)}.")
    check_number(time_limit, "time_limit", 0.0, low_open=True, hint="A number of seconds.")
    exercise = REGISTRY[exercise_id]
    if isinstance(exercise, FunctionExercise):
        if measured is not None:
            return _failed(exercise_id, "this exercise checks a function: call `check(exercise_id, your_function)` "
                                        "without `measured=`.")
        return _check_function(exercise, answer, float(time_limit))
    return _check_prediction(exercise, answer, measured)
