"""Grading a class's exercise notebooks: `python -m dftlab.course.exercises grade NOTEBOOK... --out grades.csv`.

**Where each thing happens.** The grader (this process) never runs a student's code. Each submission runs in a
child process, in a fresh Python kernel, from a copy in a scratch folder. When its cells have run, the child tries
each of the chapter's answers (the names the solution notebook passes to `check`) on inputs drawn from a random
seed that this process picks for the run, and sends back only *what the answers returned* (`engine.answer_record`:
numbers, as JSON). This process then draws the same inputs, computes the reference answers itself and compares
(`engine.judge_record`). So a submission that replaces `check`, prints a fake result, registers an IPython hook, or
replaces `torch.allclose` changes nothing: no result line is read, and no comparison runs where its code runs. An
answer that returns values remembered from the notebook's own `check` calls fails too, since the graded inputs are
new. A record that is not well formed, or a notebook that sends two, is an error, never a pass.

**Limits on the student's code** (`Limits`): a wall-clock limit per cell and per notebook, an address-space
(memory) limit and a file-size limit (`setrlimit`, inherited by the kernel), a scratch folder as its working
directory, HOME and TMPDIR, and an environment holding nothing of the grader's. Where Linux lets an unprivileged
user make namespaces (`unshare`), the child also runs with no network (a network namespace of its own, the kernel
reached over a local socket file) and in a process namespace of its own, so everything it started dies with it.
`isolation()` says which applied; the run's `-info.json` records it.

**Not isolated** on an instructor's machine: the student's code runs as the instructor's user, so it can read what
that user can read (other submissions included) and use the CPU it is given. It can also import dftlab, whose
reference functions are public; a student who calls them is graded as one who wrote them. For a stronger wall,
run the grader inside a container with no network and only the submissions mounted, e.g.

    docker run --rm --network none -v "$PWD/submissions:/subs:ro" -v "$PWD/out:/out" <image with dftlab> \\
        python -m dftlab.course.exercises grade /subs/*.ipynb --out /out/grades.csv

**What comes out** (all written at the end, atomically): `grades.csv`, one row per submission and check, with the
exercise number, its kind, status, points earned and possible, and feedback; `grades-totals.csv`, one row per
student, ready for a gradebook; `grades-written.csv`, every written answer with its rubric and model answer and an
empty points column to mark; `grades-info.json`, the dftlab version, the checks' hash, the plan's hash, the seed,
the limits and the isolation. Points come from the course plan (`dftlab.course.plan`, one file of weights): a
function exercise earns its points when it passes, a prediction when it was made (completion credit), and a
written answer when the instructor marks it. Student names, IDs and late flags are read from LMS download names
(`submission_from_path`: Canvas and Moodle).
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import nbformat

from dftlab.validation import check_int

NOTEBOOK_TIME_LIMIT_SECONDS = 300
CELL_TIME_LIMIT_SECONDS = 60
MEMORY_LIMIT_MB = 4096        # address space of the kernel (and of the process that drives it)
FILE_SIZE_LIMIT_MB = 256      # the largest file the student's code may write
COLUMNS = ("student", "student_id", "late", "notebook", "exercise", "check", "kind", "status", "points",
           "max_points", "feedback")
TOTAL_COLUMNS = ("student", "student_id", "late", "points", "max_points", "written_to_mark", "written_max_points",
                 "dftlab_version", "checks_hash")
WRITTEN_COLUMNS = ("student", "student_id", "late", "notebook", "exercise", "title", "answer", "points",
                   "max_points", "rubric", "model_answer")
_RECORD_MARKER = "DFTLAB-ANSWER-RECORDS:"
_CHECK_ID = re.compile(r"""check\(\s*\\?["'](ch\d\d)\.""")  # \\? : quotes are escaped in raw JSON


@dataclass(frozen=True)
class Limits:
    """What the student's code may use: seconds per cell and per notebook, megabytes of memory and of any file."""
    cell_seconds: int = CELL_TIME_LIMIT_SECONDS
    notebook_seconds: int = NOTEBOOK_TIME_LIMIT_SECONDS
    memory_mb: int = MEMORY_LIMIT_MB
    file_size_mb: int = FILE_SIZE_LIMIT_MB

    def __post_init__(self):
        for name in ("cell_seconds", "notebook_seconds", "memory_mb", "file_size_mb"):
            check_int(getattr(self, name), name, 1, hint="A positive whole number.")


@dataclass(frozen=True)
class Submission:
    """One submitted notebook, and who it is from (read from the name an LMS gave the download)."""
    path: Path
    student: str
    student_id: str = ""
    late: bool = False
    original_name: str = ""     # the file name the student uploaded
    source: str = ""            # "canvas", "moodle" or "" (a plain name)


@dataclass(frozen=True)
class GradeRow:
    student: str
    student_id: str
    late: bool
    notebook: str
    exercise: str
    check: str
    kind: str
    status: str
    points: float | str
    max_points: float
    feedback: str


@dataclass(frozen=True)
class WrittenRow:
    student: str
    student_id: str
    late: bool
    notebook: str
    exercise: str
    title: str
    answer: str
    points: str
    max_points: float
    rubric: str
    model_answer: str


@dataclass
class _Graded:
    rows: list = field(default_factory=list)
    written: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Who a submission is from.
# ---------------------------------------------------------------------------------------------

# Canvas ("Download Submissions"): sortablename_[LATE_]userid_submissionid_originalname, e.g.
# "smithjane_LATE_12345_6789012_01_token_distributions.ipynb"; a resubmission's original name may end in "-1".
_CANVAS = re.compile(r"^(?P<name>[a-z0-9]+)_(?:(?P<late>late)_)?(?P<id>\d+)_\d+_(?P<file>.+)$", re.I)
# Moodle ("Download all submissions"): "Full Name_participantid_assignsubmission_file_originalname", or the same
# as a folder ("..._assignsubmission_file_/originalname") when downloaded "in folders". Moodle's names carry no
# late flag: late work is read in Moodle's grading table.
_MOODLE = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assignsubmission_(?:file|onlinetext)_(?P<file>.*)$")


def submission_from_path(path: Path | str, others: list | tuple = ()) -> Submission:
    """Who sent `path`: from a Canvas or Moodle download name (file or folder), else the file's stem, or its folder
    when another submission in `others` has the same stem (submissions/alice/01_x.ipynb, submissions/bob/01_x.ipynb)."""
    path = Path(path)
    canvas = _CANVAS.match(path.name)
    if canvas:
        original = re.sub(r"-\d+(\.ipynb)$", r"\1", canvas["file"])
        return Submission(path, canvas["name"], canvas["id"], bool(canvas["late"]), original, "canvas")
    for name, original in ((path.name, None), (path.parent.name, path.name)):
        moodle = _MOODLE.match(name)
        if moodle:
            return Submission(path, moodle["name"].strip(), moodle["id"], False, original or moodle["file"], "moodle")
    same_stem = any(Path(other).stem == path.stem and Path(other) != path for other in others)
    return Submission(path, path.parent.name if same_stem else path.stem, "", False, path.name, "")


# ---------------------------------------------------------------------------------------------
# What to grade: the solution notebooks' check calls, the course plan's points.
# ---------------------------------------------------------------------------------------------

def check_calls(notebook) -> list[tuple[str, str]]:
    """(check id, source of the answer passed) for every `check("chNN.name", answer, ...)` call of a notebook."""
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
                    and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                calls.append((node.args[0].value, ast.unparse(node.args[1])))
    return calls


def reference_calls(solutions_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """{chapter prefix "ch01": the check calls of its solution notebook}: the answers the grader tries."""
    calls = {}
    for path in sorted(Path(solutions_dir).glob("[0-9][0-9]_*.ipynb")):
        for exercise_id, answer in check_calls(nbformat.read(path, as_version=4)):
            calls.setdefault(exercise_id.split(".")[0], []).append((exercise_id, answer))
    if not calls:
        raise FileNotFoundError(f"no solution notebooks with checks in {solutions_dir}; grade from a checkout of the "
                                f"course (its solutions/ folder), or pass --solutions.")
    return calls


@dataclass(frozen=True)
class _Course:
    calls: dict               # chapter prefix -> [(check id, answer source)]
    by_check: dict            # check id -> course_plan.Exercise
    written: dict             # chapter prefix -> [course_plan.Exercise] (written answers)
    plan: dict                # number -> course_plan.PlanEntry
    plan_hash: str
    plan_path: Path
    unplanned: dict           # chapter prefix -> exercise numbers the plan gives no points


def _load_course(solutions_dir: Path, plan_path: Path | None) -> _Course:
    from dftlab.course import plan as course_plan

    calls = reference_calls(solutions_dir)
    catalogue = course_plan.exercise_catalogue(solutions_dir)
    plan = course_plan.load_plan(plan_path)
    unplanned = {}
    for exercise in catalogue:
        if exercise.number not in plan:
            unplanned.setdefault(f"ch{exercise.chapter:02d}", []).append(exercise.number)
    by_check = {check_id: exercise for exercise in catalogue for check_id in exercise.check_ids}
    written = {}
    for exercise in catalogue:
        if exercise.kind == "written":
            written.setdefault(f"ch{exercise.chapter:02d}", []).append(exercise)
    plan_text = Path(plan_path or course_plan.PLAN_PATH).read_bytes()
    return _Course(calls, by_check, written, plan, hashlib.sha256(plan_text).hexdigest()[:12],
                   Path(plan_path or course_plan.PLAN_PATH), unplanned)


@lru_cache(maxsize=1)
def checks_hash() -> str:
    """A hash of the checks' source (dftlab/course/checks/*.py): two gradings with the same hash used the same checks."""
    folder = Path(__file__).resolve().parent / "checks"
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def _chapter_of(name: str, text: str, known: dict) -> str | None:
    """The chapter a submission belongs to: from its check calls, else from a file name such as 01_*.ipynb."""
    found = sorted(set(_CHECK_ID.findall(text)) & set(known))
    if len(found) == 1:
        return found[0]
    match = re.match(r"(\d\d)_", name)
    return f"ch{match.group(1)}" if match and f"ch{match.group(1)}" in known else None


def written_answers(notebook) -> dict[str, str]:
    """{exercise number: the learner's answer}: the markdown cells under `## Exercise N.M: ...` up to the next `## `
    heading, without the question's own cell, and without the untouched placeholder."""
    from dftlab.course.plan import ANSWER_PLACEHOLDER, EXERCISE_HEADING

    answers, current = {}, None
    for cell in notebook.get("cells", []):
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        if cell.get("cell_type") != "markdown":
            continue
        heading = next((EXERCISE_HEADING.match(line) for line in source.split("\n") if EXERCISE_HEADING.match(line)),
                       None)
        if heading:
            current = f"{int(heading[1])}.{int(heading[2])}"
            answers[current] = ""
        elif source.lstrip().startswith("## "):
            current = None
        elif current is not None and source.strip() != ANSWER_PLACEHOLDER:
            answers[current] = (answers[current] + "\n\n" + source.strip()).strip()
    return answers


# ---------------------------------------------------------------------------------------------
# The child: runs the notebook, then records what the answers do. Its only message to the grader is one JSON
# object written to a pipe that the kernel (the student's code) does not hold.
# ---------------------------------------------------------------------------------------------

_RUNNER = r"""
import json, os, re, sys, textwrap
import nbformat
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from traitlets import default
path, calls, cell_limit, marker, seed, result_fd, transport = (
    sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
    sys.argv[7])
os.set_inheritable(result_fd, False)   # the kernel is started without it
notebook = nbformat.read(path, as_version=4)
asked_kernel = notebook.metadata.get("kernelspec", {}).get("name", "python3")
class SocketFileKernelManager(AsyncKernelManager):
    # with no network, not even loopback, the kernel is reached through socket files in the scratch folder
    @default("transport")
    def _default_transport(self):
        return transport

    @default("ip")
    def _default_ip(self):
        return os.path.join(os.getcwd(), "kernel") if transport == "ipc" else "127.0.0.1"


client = NotebookClient(notebook, kernel_name="python3", kernel_manager_class=SocketFileKernelManager,
                        timeout=cell_limit, allow_errors=True, interrupt_on_timeout=True, record_timing=False)
problems = []
if asked_kernel != "python3":
    problems.append(f"the notebook asks for the kernel {asked_kernel!r}; it was graded with Python 3")
def record(eid, answer, on_error):
    return (f"try:\n    _dftlab_records[{eid!r}] = _dftlab_engine.answer_record({eid!r}, {answer}, {seed})\n"
            f"except Exception as _e:\n    {on_error}\n")


# Predictions share variable names from one exercise to the next (`prediction`), so each is recorded right after the
# cell that checks it; functions, and predictions whose check cell is gone, at the end.
setup = "from dftlab.course.checks import engine as _dftlab_engine\n_dftlab_records = {}"
recording = ("import json as _dftlab_json\n"
             + "".join(f"if {eid!r} not in _dftlab_records:\n" + textwrap.indent(record(
                 eid, answer, f"_dftlab_records[{eid!r}] = {{'missing': f'{{type(_e).__name__}}: {{_e}}'[:300]}}"), "    ")
                       for eid, answer, _ in calls)
             + f"print({marker!r} + _dftlab_json.dumps(_dftlab_records))")
records = None


def run_hidden(source):
    cell = nbformat.v4.new_code_cell(source)
    notebook.cells.append(cell)
    client.execute_cell(cell, len(notebook.cells) - 1, store_history=False)
    return cell


submitted = list(notebook.cells)
with client.setup_kernel():
    run_hidden(setup)
    for index, cell in enumerate(submitted):
        if cell.cell_type != "code":
            continue
        checked_here = [(eid, answer) for eid, answer, is_prediction in calls if is_prediction
                        and re.search(r"check\(\s*[\"']" + re.escape(eid) + r"[\"']", cell.source)]
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
        cell.outputs = []   # a flood of output is not kept
        try:
            if checked_here:
                run_hidden("".join(record(eid, answer, "pass") for eid, answer in checked_here))
        except Exception:
            pass   # recorded at the end instead
    try:
        cell = run_hidden(recording)
        lines = [line for output in cell.get("outputs", []) for line in str(output.get("text", "")).splitlines()
                 if line.startswith(marker)]
        if len(lines) == 1:
            records = json.loads(lines[0][len(marker):])
        else:
            problems.append(f"the answers' record came back {len(lines)} times instead of once (something in the "
                            f"notebook prints or intercepts output while it is graded)")
    except Exception as error:
        problems.append(f"the answers could not be tried ({type(error).__name__})")
with os.fdopen(result_fd, "w") as channel:
    channel.write(json.dumps({"records": records, "problems": problems}))
"""


@lru_cache(maxsize=1)
def _namespace_prefix() -> tuple[str, ...]:
    """`unshare` options for no network and a process namespace of its own, when this machine allows them."""
    command = ("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child")
    if shutil.which("unshare") is None:
        return ()
    try:
        ok = subprocess.run([*command, sys.executable, "-c", "pass"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return command if ok else ()


def isolation() -> dict:
    """What this machine isolates a submission from (recorded in the run's info file)."""
    namespaces = bool(_namespace_prefix())
    return {"network": "none (a network namespace of its own)" if namespaces else
            "NOT isolated: this machine does not allow unprivileged namespaces (`unshare`); use a container",
            "processes": "a process namespace of its own" if namespaces else "its own session, stopped as a group",
            "memory_and_files": "setrlimit (address space, file size)",
            "filesystem": "NOT isolated: runs as the grading user in a scratch working folder; use a container"}


def _limit_resources(limits: Limits):
    def apply():
        import resource

        memory = limits.memory_mb * 2 ** 20
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        size = limits.file_size_mb * 2 ** 20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def _sandbox_env(scratch: str) -> dict:
    """The environment the student's code sees: the grader's PATH and locale, a scratch HOME, nothing else."""
    from dftlab.course.install import NOTEBOOK_ENV

    kept = {name: os.environ[name] for name in ("PATH", "LANG", "LC_ALL", "HF_HOME", "HF_HUB_CACHE",
                                                "ATEN_CPU_CAPABILITY") if name in os.environ}
    return {**kept, **NOTEBOOK_ENV, "HOME": scratch, "TMPDIR": scratch, "JUPYTER_RUNTIME_DIR": scratch,
            "IPYTHONDIR": os.path.join(scratch, ".ipython"), "MPLCONFIGDIR": os.path.join(scratch, ".matplotlib"),
            "PYTHONNOUSERSITE": "1"}


def _run_sandboxed(copy: Path, calls: list, seed: int, limits: Limits) -> tuple[dict | None, str]:
    """Run a submission in the child; (its report, or None when it sent none, and the end of its stderr)."""
    from dftlab.course.checks import engine

    prefix = _namespace_prefix()
    calls = [(check_id, answer, isinstance(engine.REGISTRY.get(check_id), engine.PredictionExercise))
             for check_id, answer in calls]
    reader, writer = os.pipe()
    chunks = []
    with tempfile.TemporaryFile() as stderr:
        try:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-c", _RUNNER, str(copy), json.dumps(calls), str(limits.cell_seconds),
                 _RECORD_MARKER, str(seed), str(writer), "ipc" if prefix else "tcp"],
                cwd=copy.parent, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                env=_sandbox_env(str(copy.parent)), pass_fds=(writer,), start_new_session=True,
                preexec_fn=_limit_resources(limits))
        finally:
            os.close(writer)

        def read():
            with os.fdopen(reader, "rb") as channel:
                while chunk := channel.read(1 << 16):
                    chunks.append(chunk)
                    if sum(map(len, chunks)) > 64 << 20:   # no honest record is this large
                        chunks.clear()
                        break

        thread = threading.Thread(target=read, daemon=True)
        thread.start()
        try:
            process.wait(timeout=limits.notebook_seconds)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            thread.join(5)
            raise
        finally:
            _kill_group(process)   # a kernel left behind, if any
        thread.join(30)
        stderr.seek(0)
        tail = stderr.read()[-2000:].decode("utf-8", "replace")
    try:
        return json.loads(b"".join(chunks)), tail
    except ValueError:
        return None, tail


def _kill_group(process: subprocess.Popen):
    import signal

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    process.wait()


# ---------------------------------------------------------------------------------------------
# Grading one submission.
# ---------------------------------------------------------------------------------------------

def _points(course: _Course, check_id: str) -> tuple[float, str, str]:
    """(points the check is worth, its exercise number, its kind)."""
    exercise = course.by_check.get(check_id)
    if exercise is None or exercise.number not in course.plan:
        return 0.0, "", ""
    entry = course.plan[exercise.number]
    return round(entry.points / len(exercise.check_ids), 4), exercise.number, exercise.kind


def grade_submission(submission: Submission, course: _Course, limits: Limits, seed: int) -> _Graded:
    """Grade one submission: a row per check of its chapter and one per written answer. Never raises because of
    the submission."""
    from dftlab.course.checks import engine

    path, graded = submission.path, _Graded()
    who = (submission.student, submission.student_id, submission.late, path.name)

    def add(check_ids, status, feedback, earned=None):
        for check_id in check_ids:
            worth, number, kind = _points(course, check_id)
            points = worth if earned is None and status in ("passed", "answered") else 0.0
            graded.rows.append(GradeRow(*who, number, check_id, kind, status, points, worth, feedback))

    try:
        text = path.read_text(encoding="utf-8")
        notebook = nbformat.reads(text, as_version=4)
    except Exception as error:  # not JSON, not a notebook, unreadable: say so and move on
        try:
            raw = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            raw = ""
        chapter = _chapter_of(submission.original_name or path.name, raw, course.calls)
        feedback = f"not a readable notebook ({type(error).__name__}: {str(error)[:160]})"
        add([e for e, _ in course.calls[chapter]] if chapter else ["(notebook)"], "error", feedback)
        return graded
    sources = "\n".join(cell.get("source", "") for cell in notebook.get("cells", []))
    chapter = _chapter_of(submission.original_name or path.name, sources, course.calls)
    if chapter is None:
        add(["(notebook)"], "error", "cannot tell which chapter this notebook belongs to: it has no check(...) call "
                                     "and its file name does not start with a chapter number such as 01_")
        return graded
    calls = course.calls[chapter]
    check_ids = [check_id for check_id, _ in calls]
    if chapter in course.unplanned:
        add(check_ids, "error", f"the course plan {course.plan_path} gives no points for exercise(s) "
                                f"{', '.join(course.unplanned[chapter])}; add them (`python -m dftlab.course.plan "
                                f"missing` prints the tables to fill in) and grade again.")
        return graded
    answers = written_answers(notebook)
    for exercise in course.written.get(chapter, []):
        entry, answer = course.plan[exercise.number], answers.get(exercise.number, "")
        graded.written.append(WrittenRow(*who, exercise.number, exercise.title, answer, "" if answer else "0",
                                         entry.points, entry.rubric or "", exercise.model_answer or ""))
    with tempfile.TemporaryDirectory(prefix="dftlab-grade-") as scratch:
        copy = Path(scratch) / "submission.ipynb"
        shutil.copyfile(path, copy)
        try:
            report, stderr = _run_sandboxed(copy, calls, seed, limits)
        except subprocess.TimeoutExpired:
            add(check_ids, "error", f"the notebook ran past the {limits.notebook_seconds} s limit for a whole "
                                    f"notebook and was stopped (an infinite loop?)")
            return graded
    if not isinstance(report, dict) or not isinstance(report.get("problems"), list):
        add(check_ids, "error", f"the notebook could not be run: {stderr.strip()[-300:]}")
        return graded
    problems = "; ".join(str(problem)[:300] for problem in report["problems"][:20])
    records = report.get("records") if isinstance(report.get("records"), dict) else {}
    for check_id in check_ids:
        record = records.get(check_id)
        if not records:
            status, feedback = "error", "the answers could not be tried"
        elif isinstance(record, dict) and "missing" in record:
            status, feedback = "missing", str(record["missing"])[:300]
        else:
            try:
                status, feedback = engine.judge_record(check_id, record, seed)
            except Exception as error:  # a record that is not well formed never passes
                status, feedback = "error", f"the answer's record could not be read ({str(error)[:160]})"
        if problems:  # a broken submission says so on every row, even where a check still passed
            feedback = f"{feedback} Notebook problems: {problems}."
        add([check_id], status, feedback)
    return graded


# ---------------------------------------------------------------------------------------------
# Grading a class.
# ---------------------------------------------------------------------------------------------

def grade(notebooks, out: Path, solutions_dir: Path, *, notebook_time_limit: int = NOTEBOOK_TIME_LIMIT_SECONDS,
          cell_time_limit: int = CELL_TIME_LIMIT_SECONDS, memory_limit_mb: int = MEMORY_LIMIT_MB,
          plan_path: Path | None = None, jobs: int = 1, seed: int | None = None, log=print) -> list[GradeRow]:
    """Grade every notebook; write `out` (one row per check), and beside it `-totals.csv`, `-written.csv` and
    `-info.json` (see the module docstring). Returns the rows of `out`."""
    import dftlab
    from dftlab.storage import atomic_write_text

    limits = Limits(cell_seconds=cell_time_limit, notebook_seconds=notebook_time_limit, memory_mb=memory_limit_mb)
    jobs = check_int(jobs, "jobs", 1, hint="How many notebooks to run at once, e.g. --jobs 2.")
    notebooks = [Path(p) for p in notebooks]
    if not notebooks:
        raise ValueError("give at least one notebook to grade, e.g. submissions/*.ipynb")
    out = Path(out)
    if out.suffix != ".csv":
        raise ValueError(f"--out should name a .csv file, got {out}; e.g. --out grades.csv")
    course = _load_course(Path(solutions_dir), plan_path)
    seed = secrets.randbits(62) if seed is None else check_int(seed, "seed", 0)
    submissions = [submission_from_path(path, notebooks) for path in notebooks]
    done = [0]
    lock = threading.Lock()

    def one(submission):
        graded = grade_submission(submission, course, limits, seed)
        with lock:
            done[0] += 1
            passed = sum(row.status in ("passed", "answered") for row in graded.rows)
            log(f"[{done[0]}/{len(submissions)}] {submission.path}: {passed}/{len(graded.rows)} checks passed or "
                f"answered, {len(graded.written)} written answer(s) to mark")
        return graded

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        results = list(pool.map(one, submissions))
    rows = [row for result in results for row in result.rows]
    written = [row for result in results for row in result.written]
    version = dftlab.__version__
    info = {"dftlab_version": version, "checks_hash": checks_hash(), "plan_hash": course.plan_hash, "seed": seed,
            "limits": asdict(limits), "isolation": isolation(), "jobs": jobs, "submissions": len(submissions)}
    atomic_write_text(out, _csv_text(COLUMNS, rows))
    atomic_write_text(out.with_name(out.stem + "-totals.csv"), _csv_text(TOTAL_COLUMNS, totals(rows, written, info)))
    atomic_write_text(out.with_name(out.stem + "-written.csv"), _csv_text(WRITTEN_COLUMNS, written))
    atomic_write_text(out.with_name(out.stem + "-info.json"), json.dumps(info, indent=1) + "\n")
    return rows


def totals(rows: list[GradeRow], written: list[WrittenRow], info: dict) -> list[dict]:
    """One row per student: points earned and possible from the checks, and the written answers' points to mark."""
    students = {}
    for row in [*rows, *written]:
        key = (row.student, row.student_id)
        total = students.setdefault(key, {"student": row.student, "student_id": row.student_id, "late": False,
                                          "points": 0.0, "max_points": 0.0, "written_to_mark": 0,
                                          "written_max_points": 0.0, "dftlab_version": info["dftlab_version"],
                                          "checks_hash": info["checks_hash"]})
        total["late"] = total["late"] or row.late
        if isinstance(row, GradeRow):
            total["points"] = round(total["points"] + float(row.points), 4)
            total["max_points"] = round(total["max_points"] + row.max_points, 4)
        else:
            total["written_to_mark"] += bool(row.answer)
            total["written_max_points"] = round(total["written_max_points"] + row.max_points, 4)
    return list(students.values())


def _csv_text(columns, rows) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(row if isinstance(row, dict) else asdict(row) for row in rows)
    return buffer.getvalue()
