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

Layout: `dftlab.course.checks.engine` holds the machinery (the result, running the learner's code under a
time limit, comparing values, the two kinds of exercise, the registry and `check`); `ch00` ... `ch09`
hold each chapter's exercise definitions, whose reference answers call the dftlab modules the
chapters derive. This module registers every chapter's exercises and re-exports the public names.
"""
from __future__ import annotations

from dftlab.course.checks import ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09
from dftlab.course.checks.ch01 import CH01_ENTROPY, CH01_SOFTMAX, CH01_TOP_K
from dftlab.course.checks.ch02 import CH02_CATEGORICAL_MLE, CH02_KL, CH02_NLL_LOSS
from dftlab.course.checks.ch03 import CH03_MASK_PROMPT, CH03_SHIFT
from dftlab.course.checks.ch04 import CH04_DFT_GRADIENT, CH04_DFT_LOSS, CH04_ECE, DFT_TOY_TARGET
from dftlab.course.checks.ch05 import CH05_DFT_LOGIT_STEP, CH05_POWER_FIXED_POINT, CH05_TEMPERATURE_MATCH
from dftlab.course.checks.ch06 import CH06_DISTINCT_N, CH06_TOKEN_L2
from dftlab.course.checks.ch07 import CH07_DECODING
from dftlab.course.checks.engine import (ATOL, EXERCISES, IGNORE_INDEX, RTOL, TIME_LIMIT_SECONDS, CheckResult,
                                  FunctionExercise, PredictionExercise, check, register)

_CHAPTERS = (ch00, ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09)

PREDICTIONS: tuple[PredictionExercise, ...] = tuple(
    exercise for chapter in _CHAPTERS for exercise in chapter.PREDICTIONS)

register(*(exercise for chapter in _CHAPTERS for exercise in chapter.FUNCTIONS), *PREDICTIONS)

__all__ = [
    "ATOL", "CH01_ENTROPY", "CH01_SOFTMAX", "CH01_TOP_K", "CH02_CATEGORICAL_MLE", "CH02_KL", "CH02_NLL_LOSS",
    "CH03_MASK_PROMPT", "CH03_SHIFT", "CH04_DFT_GRADIENT", "CH04_DFT_LOSS", "CH04_ECE", "CH05_DFT_LOGIT_STEP",
    "CH05_POWER_FIXED_POINT", "CH05_TEMPERATURE_MATCH", "CH06_DISTINCT_N", "CH06_TOKEN_L2",
    "CH07_DECODING", "DFT_TOY_TARGET", "EXERCISES", "IGNORE_INDEX", "PREDICTIONS", "RTOL", "TIME_LIMIT_SECONDS",
    "CheckResult", "FunctionExercise", "PredictionExercise", "check", "register",
]
