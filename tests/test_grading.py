"""The grader for lab sessions: `python -m dftlab.exercises grade NOTEBOOK... --out grades.csv`.

Broken submissions (a syntax error, an infinite loop, a deleted cell, the wrong kernel, a file that is not a
notebook, a notebook that runs past its limit) each get rows that say what went wrong, and never stop the run.
Uses chapter 2, whose notebooks run in a few seconds.
"""
import csv
from pathlib import Path

import nbformat
import pytest

from dftlab import exercises, grading

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "02_maximum_likelihood.ipynb"
EXERCISE = ROOT / "exercises" / "02_maximum_likelihood.ipynb"
NAME = SOLUTION.name


def _write(folder: Path, student: str, notebook) -> Path:
    path = folder / student / NAME
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


def _cell_defining(notebook, name: str) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and f"def {name}(" in c.source)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    solution = nbformat.read(SOLUTION, as_version=4)
    paths = [_write(folder, "alice", solution), _write(folder, "bob", nbformat.read(EXERCISE, as_version=4))]

    syntax = nbformat.read(SOLUTION, as_version=4)
    syntax.cells[_cell_defining(syntax, "categorical_mle")].source = "def categorical_mle(samples, vocab_size:\n    pass"
    paths.append(_write(folder, "carol_syntax", syntax))

    loop = nbformat.read(SOLUTION, as_version=4)
    loop.cells.insert(_cell_defining(loop, "kl_divergence"), nbformat.v4.new_code_cell("while True:\n    pass"))
    paths.append(_write(folder, "dave_loop", loop))

    deleted = nbformat.read(SOLUTION, as_version=4)
    del deleted.cells[_cell_defining(deleted, "kl_divergence")]
    paths.append(_write(folder, "erin_deleted", deleted))

    kernel = nbformat.read(SOLUTION, as_version=4)
    kernel.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    paths.append(_write(folder, "frank_kernel", kernel))

    garbage = folder / "grace_garbage" / NAME
    garbage.parent.mkdir()
    garbage.write_text("{ this is not a notebook")
    paths.append(garbage)

    forever = nbformat.read(SOLUTION, as_version=4)
    forever.cells[1:1] = [nbformat.v4.new_code_cell("import time\ntime.sleep(6)") for _ in range(6)]
    paths.append(_write(folder, "heidi_slow", forever))

    out = folder / "grades.csv"
    assert exercises.main(["grade", *map(str, paths), "--out", str(out), "--notebook-timeout", "30",
                           "--cell-timeout", "8"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return {(row["student"], row["exercise"]): row for row in rows}, rows


EXERCISE_IDS = [exercise for exercise, _ in grading.check_calls(nbformat.read(SOLUTION, as_version=4))]


def test_one_row_per_student_and_exercise(graded):
    by_key, rows = graded
    students = ["alice", "bob", "carol_syntax", "dave_loop", "erin_deleted", "frank_kernel", "grace_garbage",
                "heidi_slow"]
    assert list(rows[0]) == list(grading.COLUMNS)
    assert sorted(by_key) == sorted((s, e) for s in students for e in EXERCISE_IDS)


def test_solutions_pass_and_untouched_exercises_are_not_attempted(graded):
    by_key, _ = graded
    assert all(by_key["alice", e]["status"] == "passed" for e in EXERCISE_IDS)
    assert all(by_key["bob", e]["status"] == "not attempted" for e in EXERCISE_IDS)
    assert "hint" in by_key["bob", "ch02.categorical_mle"]["feedback"]


def test_a_syntax_error_fails_only_what_it_breaks_and_says_why(graded):
    by_key, _ = graded
    row = by_key["carol_syntax", "ch02.categorical_mle"]
    assert row["status"] == "missing" and "SyntaxError" in row["feedback"] and "NameError" in row["feedback"]
    assert by_key["carol_syntax", "ch02.kl_divergence"]["status"] == "passed"


def test_an_infinite_loop_is_interrupted_and_the_rest_still_graded(graded):
    by_key, _ = graded
    assert by_key["dave_loop", "ch02.kl_divergence"]["status"] == "passed"
    assert "ran past its 8 s limit" in by_key["dave_loop", "ch02.categorical_mle"]["feedback"]


def test_a_deleted_cell_leaves_its_exercise_missing(graded):
    by_key, _ = graded
    row = by_key["erin_deleted", "ch02.kl_divergence"]
    assert row["status"] == "missing" and "kl_divergence" in row["feedback"]
    assert by_key["erin_deleted", "ch02.nll_loss"]["status"] == "passed"


def test_the_wrong_kernel_is_named_and_graded_with_python(graded):
    by_key, _ = graded
    row = by_key["frank_kernel", "ch02.nll_loss"]
    assert row["status"] == "passed" and "asks for the kernel 'ir'" in row["feedback"]


def test_a_file_that_is_not_a_notebook_gets_error_rows(graded):
    by_key, _ = graded
    assert all(by_key["grace_garbage", e]["status"] == "error" for e in EXERCISE_IDS)
    assert "not a readable notebook" in by_key["grace_garbage", EXERCISE_IDS[0]]["feedback"]


def test_a_notebook_past_its_whole_limit_is_stopped(graded):
    by_key, _ = graded
    row = by_key["heidi_slow", EXERCISE_IDS[0]]
    assert row["status"] == "error" and "30 s limit for a whole notebook" in row["feedback"]


def test_grading_needs_notebooks_and_solutions(tmp_path):
    with pytest.raises(ValueError, match="at least one notebook"):
        grading.grade([], tmp_path / "g.csv", ROOT / "solutions")
    with pytest.raises(FileNotFoundError, match="no solution notebooks"):
        grading.grade([SOLUTION], tmp_path / "g.csv", tmp_path)
