"""Grading a class's exercise notebooks: `python -m dftlab.exercises grade NOTEBOOK... --out grades.csv`.

Each submitted notebook runs in a fresh Python kernel, in its own process with a wall-clock limit, from a copy in
a temporary folder (the submission is never modified). Every cell runs, even after one fails, and each cell has
its own time limit, so one infinite loop costs only that cell. Then the grader itself calls every check of the
chapter, exactly as the solution notebook calls them (`check("ch01.entropy", entropy)`), in the kernel where the
student's code ran. So a result cannot be faked by printing a tick, and a check the student deleted is still
graded: the answer it needs is missing.

The output has one row per submission and exercise: student, notebook, exercise, status (passed, failed,
not attempted, missing, error) and feedback. A submission that cannot be run at all (not a notebook, timed out,
kernel died) gets a row per exercise, or one row when its chapter cannot be told, saying what went wrong. The
run never stops on a broken submission.
"""
from __future__ import annotations

import ast
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat

from dftlab.validation import check_int

NOTEBOOK_TIME_LIMIT_SECONDS = 300
CELL_TIME_LIMIT_SECONDS = 60
COLUMNS = ("student", "notebook", "exercise", "status", "feedback")
_RESULT_MARKER = "DFTLAB-GRADE-RESULTS:"
_CHECK_ID = re.compile(r"""check\(\s*\\?["'](ch\d\d)\.""")  # \\? : quotes are escaped in raw JSON


@dataclass(frozen=True)
class GradeRow:
    student: str
    notebook: str
    exercise: str
    status: str
    feedback: str


def check_calls(notebook) -> list[tuple[str, str]]:
    """(exercise id, source of the call) for every `check("chNN.name", ...)` call of a notebook's code cells."""
    calls = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "check" \
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                calls.append((node.args[0].value, "check(" + ", ".join(
                    [ast.unparse(arg) for arg in node.args] + [ast.unparse(kw) for kw in node.keywords]) + ")"))
    return calls


def reference_calls(solutions_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{chapter prefix "ch01": the check calls of its solution notebook}, the calls the grader makes."""
    calls = {}
    for path in sorted(Path(solutions_dir).glob("[0-9][0-9]_*.ipynb")):
        for exercise_id, call in check_calls(nbformat.read(path, as_version=4)):
            calls.setdefault(exercise_id.split(".")[0], []).append((exercise_id, call))
    if not calls:
        raise FileNotFoundError(f"no solution notebooks with checks in {solutions_dir}; grade from a checkout of the "
                                f"course (its solutions/ folder), or pass --solutions.")
    return calls


def _chapter_of(path: Path, text: str, known: dict) -> str | None:
    """The chapter a submission belongs to: from its check calls, else from a file name such as 01_*.ipynb."""
    found = sorted(set(_CHECK_ID.findall(text)) & set(known))
    if len(found) == 1:
        return found[0]
    match = re.match(r"(\d\d)_", path.name)
    return f"ch{match.group(1)}" if match and f"ch{match.group(1)}" in known else None


# Runs in the child process: execute the notebook cell by cell (errors and timeouts recorded, never fatal), then
# call every reference check in the same kernel and print the results as one JSON line.
_RUNNER = r"""
import json, sys
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
path, calls, cell_limit, marker = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
notebook = nbformat.read(path, as_version=4)
asked_kernel = notebook.metadata.get("kernelspec", {}).get("name", "python3")
client = NotebookClient(notebook, timeout=cell_limit, kernel_name="python3", allow_errors=True,
                        interrupt_on_timeout=True, record_timing=False)
problems = []
if asked_kernel != "python3":
    problems.append(f"the notebook asks for the kernel {asked_kernel!r}; it was graded with Python 3")
grading = ("import json as _json\nfrom dftlab.checks import check\n_grades = {}\n"
           + "".join(f"try:\n    _r = {call}\n    _grades[{eid!r}] = [_r.status, _r.feedback]\n"
                     f"except Exception as _e:\n    _grades[{eid!r}] = ['missing', f'{{type(_e).__name__}}: {{_e}}']\n"
                     for eid, call in calls)
           + f"print({marker!r} + _json.dumps(_grades))")
grades = None
with client.setup_kernel():
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        try:
            client.execute_cell(cell, index, store_history=False)
        except CellTimeoutError:
            problems.append(f"cell {index + 1} ran past its {cell_limit} s limit and was interrupted")
        except DeadKernelError:
            problems.append(f"the kernel died in cell {index + 1}")
            break
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if errors and errors[0]["ename"] == "KeyboardInterrupt":  # what interrupt_on_timeout leaves behind
            problems.append(f"cell {index + 1} ran past its {cell_limit} s limit and was interrupted")
        elif errors:
            problems.append(f"cell {index + 1} raised {errors[0]['ename']}: {errors[0]['evalue'][:120]}")
    cell = nbformat.v4.new_code_cell(grading)
    notebook.cells.append(cell)
    try:
        client.execute_cell(cell, len(notebook.cells) - 1, store_history=False)
        for output in cell.get("outputs", []):
            for line in output.get("text", "").splitlines():
                if line.startswith(marker):
                    grades = json.loads(line[len(marker):])
    except Exception as error:
        problems.append(f"the checks could not run ({type(error).__name__})")
print(marker + json.dumps({"grades": grades, "problems": problems}))
"""


def grade_notebook(path: Path, calls_by_chapter: dict, *, notebook_time_limit: int = NOTEBOOK_TIME_LIMIT_SECONDS,
                   cell_time_limit: int = CELL_TIME_LIMIT_SECONDS, student: str | None = None) -> list[GradeRow]:
    """Grade one submission: a row per exercise of its chapter (never raises because of the submission)."""
    path = Path(path)
    student = student or path.stem
    name = path.name

    def rows_for(exercises, status, feedback):
        return [GradeRow(student, name, exercise, status, feedback) for exercise in exercises]

    try:
        text = path.read_text(encoding="utf-8")
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable: say so and move on
        chapter = None
        try:
            chapter = _chapter_of(path, path.read_text(encoding="utf-8", errors="replace"), calls_by_chapter)
        except OSError:
            pass
        feedback = f"not a readable notebook ({type(error).__name__}: {str(error)[:160]})"
        exercises = [e for e, _ in calls_by_chapter[chapter]] if chapter else ["(notebook)"]
        return rows_for(exercises, "error", feedback)
    sources = "\n".join(cell.get("source", "") for cell in notebook.get("cells", []))
    chapter = _chapter_of(path, sources, calls_by_chapter)
    if chapter is None:
        return rows_for(["(notebook)"], "error", "cannot tell which chapter this notebook belongs to: it has no "
                        "check(...) call and its file name does not start with a chapter number such as 01_")
    calls = calls_by_chapter[chapter]
    exercises = [exercise for exercise, _ in calls]
    with tempfile.TemporaryDirectory(prefix="dftlab-grade-") as scratch:
        copy = Path(scratch) / name
        shutil.copyfile(path, copy)
        from dftlab._install import NOTEBOOK_ENV

        try:
            result = subprocess.run([sys.executable, "-c", _RUNNER, str(copy), json.dumps(calls), str(cell_time_limit),
                                     _RESULT_MARKER], cwd=scratch, capture_output=True, text=True,
                                    timeout=notebook_time_limit, env={**os.environ, **NOTEBOOK_ENV},
                                    start_new_session=True)
        except subprocess.TimeoutExpired:
            return rows_for(exercises, "error", f"the notebook ran past the {notebook_time_limit} s limit for a "
                                                f"whole notebook and was stopped (an infinite loop?)")
    lines = [line for line in result.stdout.splitlines() if line.startswith(_RESULT_MARKER)]
    if not lines:
        return rows_for(exercises, "error", f"the notebook could not be run: {result.stderr.strip()[-300:]}")
    report = json.loads(lines[-1][len(_RESULT_MARKER):])
    problems = "; ".join(report["problems"])
    grades = report["grades"] or {}
    rows = []
    for exercise in exercises:
        status, feedback = grades.get(exercise, ["error", "the checks could not run"])
        if problems:  # a broken submission says so on every row, even where a check still passed
            feedback = f"{feedback} Notebook problems: {problems}."
        rows.append(GradeRow(student, name, exercise, status, feedback))
    return rows


def grade(notebooks, out: Path, solutions_dir: Path, *, notebook_time_limit: int = NOTEBOOK_TIME_LIMIT_SECONDS,
          cell_time_limit: int = CELL_TIME_LIMIT_SECONDS, log=print) -> list[GradeRow]:
    """Grade every notebook and write the rows to the CSV `out` (written atomically, at the end)."""
    from dftlab.storage import atomic_write_text

    notebook_time_limit = check_int(notebook_time_limit, "notebook_time_limit")
    cell_time_limit = check_int(cell_time_limit, "cell_time_limit")
    notebooks = [Path(p) for p in notebooks]
    if not notebooks:
        raise ValueError("give at least one notebook to grade, e.g. submissions/*.ipynb")
    calls = reference_calls(solutions_dir)
    rows = []
    for index, path in enumerate(notebooks, start=1):
        student = path.parent.name if path.stem in {p.stem for p in notebooks if p != path} else path.stem
        graded = grade_notebook(path, calls, notebook_time_limit=notebook_time_limit,
                                cell_time_limit=cell_time_limit, student=student)
        passed = sum(row.status == "passed" for row in graded)
        log(f"[{index}/{len(notebooks)}] {path}: {passed}/{len(graded)} passed")
        rows += graded
    buffer = _csv_text(rows)
    atomic_write_text(out, buffer)
    return rows


def _csv_text(rows: list[GradeRow]) -> str:
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows(asdict(row) for row in rows)
    return buffer.getvalue()
