"""The grader for lab sessions: `python -m dftlab.course.exercises grade NOTEBOOK... --out grades.csv`.

Three groups of submissions of chapter 1 (whose notebooks run in a few seconds), graded in one run with --jobs 2:
- honest ones: the solutions, and the untouched exercises;
- broken ones (a syntax error, an infinite loop, a deleted cell, the wrong kernel, a file that is not a notebook, a
  notebook past its whole limit, a kernel that dies, a flood of output, a cell that asks for too much memory), which
  each get rows that say what went wrong and never stop the run;
- hostile ones, all on the untouched exercises (nothing answered): each tries to make the grader report a pass, and
  none may. Plus the names that Canvas and Moodle give downloads, points, totals and the written answers' export.
"""
import csv
import json
from pathlib import Path

import nbformat
import pytest

from dftlab.course import exercises, grading, plan as course_plan
from dftlab.course.checks import engine

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "01_token_distributions.ipynb"
EXERCISE = ROOT / "exercises" / "01_token_distributions.ipynb"
NAME = SOLUTION.name
CHECK_IDS = [check_id for check_id, _ in grading.check_calls(nbformat.read(SOLUTION, as_version=4))]
FUNCTION_IDS = [c for c in CHECK_IDS if isinstance(engine.REGISTRY[c], engine.FunctionExercise)]

# Each hostile submission adds one code cell to the untouched exercise notebook: right after its imports, or at its
# end for the answers that must not be replaced by the notebook's own stubs.
FAKE_RECORDS = {check_id: {"result": ["passed", "correct"]} for check_id in CHECK_IDS}
HOSTILE = {
    # The check itself replaced in the student's kernel, so that every check in the notebook reports a pass.
    "replaces_check": """
import dftlab.course.checks
from dftlab.course.checks.engine import CheckResult
def check(exercise_id, *args, **kwargs):
    return CheckResult(exercise_id, True, "correct")
dftlab.course.checks.check = check
dftlab.course.checks.engine.check = check
""",
    # An IPython hook that prints a fake result line (old and new formats) after every cell, the grader's included.
    "hook_prints_results": f"""
import json
def fake(result):
    print("DFTLAB-GRADE-RESULTS:" + json.dumps({{"grades": {{c: ["passed", "ok"] for c in {CHECK_IDS!r}}},
                                                 "problems": []}}))
    print({grading._RECORD_MARKER!r} + json.dumps({json.dumps(FAKE_RECORDS)}))
get_ipython().events.register("post_run_cell", fake)
""",
    # Comparisons that always agree: torch.allclose and equal, and the engine's own comparison.
    "replaces_allclose": """
import torch
import dftlab.course.checks.engine as engine
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
engine._same = lambda *args, **kwargs: True
engine._same_result = lambda *args, **kwargs: True
engine.judge_trial = lambda exercise, cases, trial: engine._passed(exercise.exercise_id, "correct")
""",
    # The recording replaced, so that it reports "passed" for every check.
    "replaces_the_record": """
import dftlab.course.checks.engine as engine
engine.answer_record = lambda exercise_id, answer, seed, time_limit=3.0: {"result": ["passed", "correct"]}
""",
    # A report written straight to every file descriptor the kernel holds, hoping one reaches the grader.
    "writes_to_every_descriptor": """
import json, os
fake = json.dumps({"records": %s, "problems": []}).encode()
for fd in range(3, 64):
    try:
        if not os.isatty(fd) and os.fstat(fd).st_mode & 0o170000 == 0o010000:  # pipes only: not the kernel's sockets
            os.write(fd, fake)
    except OSError:
        pass
os.write(1, b"DFTLAB-ANSWER-RECORDS:" + json.dumps(%s).encode() + b"\\n")
""" % (json.dumps(FAKE_RECORDS), json.dumps(FAKE_RECORDS)),
    # Answers that return what the notebook's own checks expect (remembered), and nonsense on any other input.
    "remembers_the_notebook_inputs": """
import torch
from dftlab.course.checks import engine as _engine
def _remembering(check_id):
    exercise = _engine.REGISTRY[check_id]
    known = [(case.args, exercise.reference(*case.args)) for case in exercise.cases(_engine._seed(check_id))]
    def answer(*args):
        for known_args, result in known:
            if all(type(a) is type(b) and (torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b)
                   for a, b in zip(known_args, args)):
                return result
        return torch.zeros(1)
    return answer
softmax_with_temperature = _remembering("ch01.softmax_with_temperature")
entropy = _remembering("ch01.entropy")
top_k_filter = _remembering("ch01.top_k_filter")
min_p_filter = _remembering("ch01.min_p_filter")
repetition_penalty = _remembering("ch01.repetition_penalty")
""",
}


def _cell_index(notebook, text: str) -> int:
    return next(i for i, c in enumerate(notebook.cells) if c.cell_type == "code" and text in c.source)


def _with_cell(path: Path, source: str, *, after: str = "from dftlab.course.checks import", before: str | None = None,
               at_end: bool = False):
    notebook = nbformat.read(path, as_version=4)
    index = len(notebook.cells) if at_end else _cell_index(notebook, before) if before else \
        _cell_index(notebook, after) + 1
    notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    return notebook


def _write(folder: Path, student: str, notebook, name: str = NAME) -> Path:
    path = folder / student / name
    path.parent.mkdir(parents=True)
    nbformat.write(notebook, path)
    return path


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("submissions")
    read = lambda path: nbformat.read(path, as_version=4)  # noqa: E731
    paths = [_write(folder, "alice", read(SOLUTION)), _write(folder, "bob", read(EXERCISE))]

    syntax = read(SOLUTION)
    syntax.cells[_cell_index(syntax, "def entropy(")].source = "def entropy(probs:\n    pass"
    paths.append(_write(folder, "carol_syntax", syntax))
    paths.append(_write(folder, "dave_loop", _with_cell(SOLUTION, "while True:\n    pass", before="def entropy(")))
    deleted = read(SOLUTION)
    del deleted.cells[_cell_index(deleted, "def top_k_filter(")]
    paths.append(_write(folder, "erin_deleted", deleted))
    kernel = read(SOLUTION)
    kernel.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    paths.append(_write(folder, "frank_kernel", kernel))
    garbage = folder / "grace_garbage" / NAME
    garbage.parent.mkdir()
    garbage.write_text("{ this is not a notebook")
    paths.append(garbage)
    slow = read(SOLUTION)
    slow.cells[2:2] = [nbformat.v4.new_code_cell("import time\ntime.sleep(7)") for _ in range(6)]
    paths.append(_write(folder, "heidi_slow", slow))
    paths.append(_write(folder, "ivan_dies", _with_cell(SOLUTION, "import os, signal\nos.kill(os.getpid(), "
                                                                  "signal.SIGKILL)", before="def top_k_filter(")))
    paths.append(_write(folder, "judy_flood", _with_cell(SOLUTION, "for _ in range(200):\n    print('x' * 100_000)")))
    paths.append(_write(folder, "ken_memory", _with_cell(SOLUTION, "hog = bytearray(8 * 2 ** 30)")))
    paths.append(_write(folder, "lena_writes", _with_cell(SOLUTION, "open('left_behind.txt', 'w').write('x')")))
    for name, source in HOSTILE.items():
        paths.append(_write(folder, f"hostile_{name}", _with_cell(EXERCISE, source, at_end=name.startswith("remembers"))))

    lms = folder / "lms"
    lms.mkdir()
    (lms / f"smithjane_LATE_12345_6789012_{NAME.replace('.ipynb', '-1.ipynb')}").write_text(SOLUTION.read_text())
    moodle = lms / "Max Mustermann_77_assignsubmission_file_"
    moodle.mkdir()
    (moodle / NAME).write_text(EXERCISE.read_text())
    paths += [next(lms.glob("smithjane*")), moodle / NAME]

    out = folder / "grades.csv"
    assert exercises.main(["grade", *map(str, paths), "--out", str(out), "--notebook-timeout", "30",
                           "--cell-timeout", "8", "--jobs", "2"]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return {(row["student"], row["check"]): row for row in rows}, rows, out, folder


def test_one_row_per_student_and_check(graded):
    by_key, rows, _, _ = graded
    assert list(rows[0]) == list(grading.COLUMNS)
    students = {row["student"] for row in rows}
    assert len(students) == 12 + len(HOSTILE) + 2
    assert sorted(by_key) == sorted((s, c) for s in students for c in CHECK_IDS)


def test_solutions_pass_and_untouched_exercises_are_not_attempted(graded):
    by_key, _, _, _ = graded
    assert all(by_key["alice", c]["status"] in ("passed", "answered") for c in CHECK_IDS)
    assert all(by_key["bob", c]["status"] == "not attempted" for c in CHECK_IDS)


@pytest.mark.parametrize("trick", sorted(HOSTILE))
def test_a_hostile_submission_passes_nothing(graded, trick):
    by_key, _, _, _ = graded
    statuses = {c: by_key[f"hostile_{trick}", c]["status"] for c in CHECK_IDS}
    assert not any(status in ("passed", "answered") for status in statuses.values()), statuses
    assert all(float(by_key[f"hostile_{trick}", c]["points"]) == 0 for c in CHECK_IDS)


def test_remembered_answers_fail_on_the_graders_inputs(graded):
    by_key, _, _, _ = graded
    assert all(by_key["hostile_remembers_the_notebook_inputs", c]["status"] == "failed" for c in FUNCTION_IDS)


def test_a_second_record_is_reported_not_trusted(graded):
    by_key, _, _, _ = graded
    assert "came back 2 times" in by_key["hostile_hook_prints_results", CHECK_IDS[0]]["feedback"]


def test_a_syntax_error_fails_only_what_it_breaks_and_says_why(graded):
    by_key, _, _, _ = graded
    row = by_key["carol_syntax", "ch01.entropy"]
    assert row["status"] == "missing" and "SyntaxError" in row["feedback"] and "NameError" in row["feedback"]
    assert by_key["carol_syntax", "ch01.top_k_filter"]["status"] == "passed"


def test_an_infinite_loop_is_interrupted_and_the_rest_still_graded(graded):
    by_key, _, _, _ = graded
    assert by_key["dave_loop", "ch01.top_k_filter"]["status"] == "passed"
    assert "ran past its 8 s limit" in by_key["dave_loop", "ch01.entropy"]["feedback"]


def test_a_deleted_cell_leaves_its_exercise_missing(graded):
    by_key, _, _, _ = graded
    row = by_key["erin_deleted", "ch01.top_k_filter"]
    assert row["status"] == "missing" and "top_k_filter" in row["feedback"]
    assert by_key["erin_deleted", "ch01.entropy"]["status"] == "passed"


def test_the_wrong_kernel_is_named_and_graded_with_python(graded):
    by_key, _, _, _ = graded
    row = by_key["frank_kernel", "ch01.entropy"]
    assert row["status"] == "passed" and "asks for the kernel 'ir'" in row["feedback"]


def test_a_file_that_is_not_a_notebook_gets_error_rows(graded):
    by_key, _, _, _ = graded
    assert all(by_key["grace_garbage", c]["status"] == "error" for c in CHECK_IDS)
    assert "not a readable notebook" in by_key["grace_garbage", CHECK_IDS[0]]["feedback"]


def test_a_notebook_past_its_whole_limit_is_stopped(graded):
    by_key, _, _, _ = graded
    row = by_key["heidi_slow", CHECK_IDS[0]]
    assert row["status"] == "error" and "30 s limit for a whole notebook" in row["feedback"]


def test_a_dying_kernel_is_reported_and_passes_nothing_after_it(graded):
    by_key, _, _, _ = graded
    rows = [by_key["ivan_dies", c] for c in CHECK_IDS]
    assert all(row["status"] not in ("passed", "answered") for row in rows)
    assert all("kernel died" in row["feedback"] for row in rows)


def test_a_flood_of_output_does_not_stop_grading(graded):
    by_key, _, _, _ = graded
    assert all(by_key["judy_flood", c]["status"] in ("passed", "answered") for c in CHECK_IDS)


def test_the_memory_limit_stops_a_cell_not_the_grading(graded):
    by_key, _, _, _ = graded
    row = by_key["ken_memory", "ch01.entropy"]
    assert row["status"] == "passed" and "MemoryError" in row["feedback"]


def test_the_students_code_runs_in_a_scratch_folder(graded):
    by_key, _, _, folder = graded
    assert by_key["lena_writes", "ch01.entropy"]["status"] == "passed"
    assert not list(folder.rglob("left_behind.txt")) and not (ROOT / "left_behind.txt").exists()


def test_lms_names_give_student_id_and_late_flag(graded):
    by_key, _, _, _ = graded
    canvas = by_key["smithjane", "ch01.entropy"]
    assert (canvas["student_id"], canvas["late"], canvas["status"]) == ("12345", "True", "passed")
    moodle = by_key["Max Mustermann", "ch01.entropy"]
    assert (moodle["student_id"], moodle["late"], moodle["status"]) == ("77", "False", "not attempted")


@pytest.mark.parametrize("path, expected", [
    ("subs/smithjane_12345_6789012_01_token_distributions.ipynb",
     ("smithjane", "12345", False, "01_token_distributions.ipynb", "canvas")),
    ("subs/smithjane_LATE_12345_6789012_01_token_distributions-2.ipynb",
     ("smithjane", "12345", True, "01_token_distributions.ipynb", "canvas")),
    ("subs/doejohn_late_9_10_02_maximum_likelihood.ipynb",
     ("doejohn", "9", True, "02_maximum_likelihood.ipynb", "canvas")),
    ("subs/Jane Smith_1234_assignsubmission_file_01_token_distributions.ipynb",
     ("Jane Smith", "1234", False, "01_token_distributions.ipynb", "moodle")),
    ("subs/Jane Smith_1234_assignsubmission_file_/my notebook.ipynb",
     ("Jane Smith", "1234", False, "my notebook.ipynb", "moodle")),
    ("subs/alice.ipynb", ("alice", "", False, "alice.ipynb", "")),
])
def test_submission_names(path, expected):
    submission = grading.submission_from_path(path)
    assert (submission.student, submission.student_id, submission.late, submission.original_name,
            submission.source) == expected


def test_same_file_names_are_told_apart_by_folder():
    paths = ["subs/alice/01_x.ipynb", "subs/bob/01_x.ipynb"]
    assert [grading.submission_from_path(p, paths).student for p in paths] == ["alice", "bob"]


def test_points_totals_written_answers_and_versions(graded):
    by_key, rows, out, _ = graded
    plan = course_plan.load_plan()
    catalogue = {e.number: e for e in course_plan.exercise_catalogue(ROOT / "solutions") if e.chapter == 1}
    checked = [e for e in catalogue.values() if e.kind != "written"]
    possible = sum(plan[e.number].points for e in checked)
    with open(out.with_name("grades-totals.csv"), newline="") as f:
        totals = {row["student"]: row for row in csv.DictReader(f)}
    assert float(totals["alice"]["max_points"]) == pytest.approx(possible)
    assert float(totals["alice"]["points"]) == pytest.approx(possible)
    assert float(totals["bob"]["points"]) == 0
    info = json.loads(out.with_name("grades-info.json").read_text())
    assert info["checks_hash"] == grading.checks_hash() == totals["alice"]["checks_hash"]
    assert info["dftlab_version"] and info["limits"]["cell_seconds"] == 8 and info["jobs"] == 2
    with open(out.with_name("grades-written.csv"), newline="") as f:
        written = [row for row in csv.DictReader(f)]
    numbers = {e.number for e in catalogue.values() if e.kind == "written"}
    assert {row["exercise"] for row in written} == numbers
    alice = next(row for row in written if row["student"] == "alice")
    assert alice["answer"] and alice["rubric"] and alice["model_answer"] and alice["points"] == ""
    bob = next(row for row in written if row["student"] == "bob")
    assert bob["answer"] == "" and bob["points"] == "0"
    prediction = next(c for c in CHECK_IDS if isinstance(engine.REGISTRY[c], engine.PredictionExercise))
    assert by_key["alice", prediction]["status"] == "answered"
    assert "completion" in by_key["alice", prediction]["feedback"]


def test_grading_needs_notebooks_solutions_and_a_csv(tmp_path):
    with pytest.raises(ValueError, match="at least one notebook"):
        grading.grade([], tmp_path / "g.csv", ROOT / "solutions")
    with pytest.raises(FileNotFoundError, match="no solution notebooks"):
        grading.grade([SOLUTION], tmp_path / "g.csv", tmp_path)
    with pytest.raises(ValueError, match="should name a .csv"):
        grading.grade([SOLUTION], tmp_path / "g.txt", ROOT / "solutions")
    with pytest.raises(ValueError, match="jobs"):
        grading.grade([SOLUTION], tmp_path / "g.csv", ROOT / "solutions", jobs=0)


def test_predictions_that_share_a_variable_are_each_graded(tmp_path):
    """Chapters 0 and 8 name every prediction `prediction`: each is recorded right after the cell that checks it,
    not from the variable's last value."""
    paths = [ROOT / "solutions" / "00_formulaic_writing.ipynb", ROOT / "solutions" / "08_real_model_writing.ipynb"]
    rows = grading.grade(paths, tmp_path / "grades.csv", ROOT / "solutions", jobs=2, log=lambda *_: None)
    predictions = [row for row in rows if row.kind == "prediction"]
    assert len(predictions) >= 4
    assert all(row.status in ("passed", "answered") for row in rows), [(r.check, r.status) for r in rows]
