"""dftlab.course.checks is a package: an engine, one module per chapter, and reference answers that call the package.

(What the checks say about answers is tested in tests/test_checks.py.)
"""
import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import dftlab.course.checks as checks
from dftlab import metrics, objectives, toy
from dftlab.course.checks import ch03, ch04, ch06, engine
from dftlab.course.checks.engine import FunctionExercise

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dftlab"
CHECKS = PACKAGE / "course" / "checks"
CHAPTER_MODULES = ["ch00", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09"]


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_layout_is_an_engine_and_one_module_per_chapter():
    assert not (PACKAGE / "checks.py").exists()
    assert sorted(p.stem for p in CHECKS.glob("*.py")) == sorted(["__init__", "engine", *CHAPTER_MODULES])
    too_long = {p.name: n for p in CHECKS.glob("*.py") if (n := len(p.read_text().splitlines())) > 800}
    assert not too_long


def test_each_exercise_is_defined_in_its_chapters_module():
    for chapter in CHAPTER_MODULES:
        module = getattr(checks, chapter)
        for exercise in module.FUNCTIONS + module.PREDICTIONS:
            assert exercise.exercise_id.startswith(f"{chapter}.")
    registered = [exercise.exercise_id for chapter in CHAPTER_MODULES
                  for exercise in getattr(checks, chapter).FUNCTIONS + getattr(checks, chapter).PREDICTIONS]
    assert sorted(registered) == list(checks.EXERCISES) == list(engine.REGISTRY)


def test_registering_an_id_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        checks.register(checks.CH01_ENTROPY)
    assert list(checks.EXERCISES) == sorted(checks.EXERCISES)


def test_the_import_graph_is_one_way():
    """dftlab.course.checks may import the modules the chapters derive; none of them imports dftlab.course.checks. Only the
    rest of the course machinery (the grader, which judges the answers' records) sits above the checks and imports them."""
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "course" in path.parents:
            continue
        assert not any(name == "dftlab.course.checks" or name.startswith("dftlab.course.checks.")
                       for name in _imported_modules(path)), path
    # The engine knows no chapter; a chapter may build on an earlier one, never on a later one.
    assert not any(name.startswith("dftlab.course.checks.ch") for name in _imported_modules(CHECKS / "engine.py"))
    for index, chapter in enumerate(CHAPTER_MODULES):
        later = {f"dftlab.course.checks.{c}" for c in CHAPTER_MODULES[index:]}
        assert not _imported_modules(CHECKS / f"{chapter}.py") & later, chapter


# The function exercises whose answer the package has no function for: the exercise's answer is the definition
# itself, so its reference is written out in the checks.
DEFINED_IN_THE_EXERCISE = {
    "ch02.categorical_mle": "the maximum-likelihood categorical is the frequency count the chapter derives",
    "ch09.step_loss": "the mean over a step's supervised tokens is what the chapter asks for; the Trainer does it",
}


def _package_calls(function) -> set[str]:
    """The dftlab functions and modules outside dftlab.course that `function` reaches: itself if it is one, else the
    names its code (and the checks' own helpers it calls, and the modules it imports) resolve to."""
    import dis
    import inspect

    def is_package(obj) -> bool:
        name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None) or ""
        return name.startswith("dftlab.") and not name.startswith("dftlab.course")

    found, seen, todo = set(), set(), [function]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if is_package(current):
            found.add(f"{current.__module__}.{current.__qualname__}")
            continue
        codes = [current.__code__]
        while codes:
            code = codes.pop()
            codes += [const for const in code.co_consts if inspect.iscode(const)]
            for name in code.co_names:
                obj = current.__globals__.get(name)
                if inspect.ismodule(obj) and is_package(obj):
                    found.add(obj.__name__)
                elif inspect.isfunction(obj):
                    todo.append(obj)
            found |= {f"dftlab.{i.argval}" for i in dis.get_instructions(code)
                      if i.opname == "IMPORT_FROM" and i.argval != "dftlab"}
    return found


def test_reference_answers_call_the_package_instead_of_copying_it():
    function_exercises = [exercise for exercise in engine.REGISTRY.values() if isinstance(exercise, FunctionExercise)]
    assert len(function_exercises) >= 25
    for exercise in function_exercises:
        calls = _package_calls(exercise.reference)
        if exercise.exercise_id in DEFINED_IN_THE_EXERCISE:
            assert not calls, f"{exercise.exercise_id} calls {calls}: take it off DEFINED_IN_THE_EXERCISE"
        else:
            assert calls, f"{exercise.exercise_id}'s reference calls no dftlab function: call the package's instead"
    assert set(DEFINED_IN_THE_EXERCISE) <= set(checks.EXERCISES)
    # No package function is copied into the checks: no function body of the checks is one of the package's.
    def bodies(paths):
        return {ast.dump(ast.Module(body=node.body[1:] if ast.get_docstring(node) else node.body, type_ignores=[])):
                node.name for path in paths for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef)}
    package = bodies(path for path in PACKAGE.rglob("*.py") if PACKAGE / "course" not in path.parents)
    copies = {name: package[body] for body, name in bodies(CHECKS.glob("*.py")).items() if body in package}
    assert not copies, f"functions of dftlab.course.checks that copy the package's: {copies}"
    assert ch03.CH03_SHIFT.reference is objectives.causal_shift
    assert ch06.ngrams is metrics.text.ngrams
    probs = torch.tensor([0.5, 0.25, 0.25])
    expected = toy.logit_gradient(probs, [0.0, 1.0, 0.0], "dft")
    np.testing.assert_allclose(ch04.CH04_DFT_GRADIENT.reference(probs, 1), expected)
    np.testing.assert_allclose(expected, 0.25 * (probs.numpy() - np.array([0.0, 1.0, 0.0])), rtol=1e-6)


def test_a_reference_that_copies_the_package_is_found():
    def copied_entropy(probs):
        return -(probs * probs.log()).sum(-1)

    assert not _package_calls(copied_entropy)
    assert _package_calls(lambda probs: metrics.distinct_n(probs, 2)) == {"dftlab.metrics"}



def test_causal_shift_drops_the_last_prediction_and_the_first_label():
    logits, labels = torch.arange(24.0).reshape(2, 4, 3), torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    shifted_logits, shifted_labels = objectives.causal_shift(logits, labels)
    assert torch.equal(shifted_logits, logits[:, :-1]) and torch.equal(shifted_labels, labels[:, 1:])
    one_logits, one_labels = objectives.causal_shift(logits[0], labels[0])  # one sequence [T, V], [T]
    assert torch.equal(one_logits, logits[0, :-1]) and torch.equal(one_labels, labels[0, 1:])
