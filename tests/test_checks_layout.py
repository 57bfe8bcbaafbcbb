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
from dftlab.course.checks import ch03, ch04, ch05, ch06, engine

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
    assert sorted(registered) == list(checks.EXERCISES) == list(engine._REGISTRY)


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


def test_reference_answers_call_the_package_instead_of_copying_it():
    assert ch03.CH03_SHIFT.reference is objectives.causal_shift
    assert ch06._ngrams is metrics.text._ngrams
    # k-NN coverage and the preference-tuning optimum are package functions that chapters 5 and 6 call too
    assert ch06.CH06_COVERAGE.reference is metrics.knn_coverage
    assert ch05.CH05_PREFERENCE_OPTIMUM.reference is toy.preference_optimum
    for name in ["_causal_shift", "_dft_logit_gradient", "_ngrams", "_coverage", "_preference_optimum"]:
        assert f"def {name}(" not in "".join(p.read_text() for p in CHECKS.glob("*.py"))
    probs = torch.tensor([0.5, 0.25, 0.25])
    expected = toy.logit_gradient(probs, [0.0, 1.0, 0.0], "dft")
    np.testing.assert_allclose(ch04.CH04_DFT_GRADIENT.reference(probs, 1), expected)
    np.testing.assert_allclose(expected, 0.25 * (probs.numpy() - np.array([0.0, 1.0, 0.0])), rtol=1e-6)


def test_causal_shift_drops_the_last_prediction_and_the_first_label():
    logits, labels = torch.arange(24.0).reshape(2, 4, 3), torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    shifted_logits, shifted_labels = objectives.causal_shift(logits, labels)
    assert torch.equal(shifted_logits, logits[:, :-1]) and torch.equal(shifted_labels, labels[:, 1:])
    one_logits, one_labels = objectives.causal_shift(logits[0], labels[0])  # one sequence [T, V], [T]
    assert torch.equal(one_logits, logits[0, :-1]) and torch.equal(one_labels, labels[0, 1:])
