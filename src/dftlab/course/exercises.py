"""Exercise notebooks are generated from the solution notebooks, so the two cannot drift apart.

    python -m dftlab.course.exercises build               # solutions/*.ipynb -> exercises/*.ipynb, then execute them
    python -m dftlab.course.exercises build --solutions   # the same, after re-executing the solutions in place
    python -m dftlab.course.exercises check               # exit 1 if exercises/ is out of date with solutions/
    python -m dftlab.course.exercises student --out student/dftlab-exercises.zip   # a zip to hand out (with a wheel)

The single source is `solutions/NN_<topic>.ipynb`. In it, solution code sits between two marker lines,

    ### BEGIN SOLUTION
    # HINT: sum -p log p over the last axis
    ...
    ### END SOLUTION

and a model answer to a written question is a markdown cell whose first line is `<!-- BEGIN ANSWER -->`.
In the exercise copy a block inside a function body becomes `raise NotImplementedError(...)`; a
block at the top level of a cell (a predict-then-run cell) becomes `name = ...` for every variable it
assigns, and the block's hint goes, folded in a <details> block, into a markdown cell right below the cell; which `dftlab.course.checks.check` reports as "not attempted yet", so the notebook still runs from
top to bottom. A model answer becomes "*Your answer here.*", and a title "# Solutions N: ..." becomes
"# Exercises N: ...". Every block needs a `# HINT:` line.

Generated notebooks are committed executed (nbval compares their outputs), and `check` compares only
cell sources and tags, so re-running a notebook never makes the copies look out of date.

A prediction's answer stays hidden until the learner runs it. The cells after a predict-then-run cell (its hint
aside) up to the next markdown cell run the experiment and check the prediction: `prediction_answers` finds them.
The exercise copy tags them `hide-output` (the website folds their output, which the reader opens with a click)
and `nbval-ignore-output`, and `build` stores them without outputs: the committed notebook, which the website's
download button and Colab open, shows no answer before the learner runs the cell. nbval still executes those
cells (an exception fails the test); it only does not compare their outputs, since none are stored.
"""
from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import os
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import nbformat

from dftlab.course.install import NOTEBOOK_ENV

SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"
HINT_PREFIX = "# HINT:"
ANSWER_MARKER = "<!-- BEGIN ANSWER -->"
ANSWER_PLACEHOLDER = "*Your answer here.*"
PREDICTION_LINE = "  # your answer"  # how a top-level stub line ends: `prediction = ...  # your answer`
SOLUTION_TITLE, EXERCISE_TITLE = "# Solutions ", "# Exercises "  # "# Solutions 4: ..." -> "# Exercises 4: ..."
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
EXECUTION_TIMEOUT_SECONDS = 600  # per cell, as `make test` gives nbval: a guard against hangs, not a budget
# A fixed timestamp for every zip entry, so the same notebooks always give the same zip, byte for byte.
ZIP_TIMESTAMP = (2026, 1, 1, 0, 0, 0)


# ---------------------------------------------------------------------------------------------
# From a solution cell to an exercise cell.
# ---------------------------------------------------------------------------------------------

def _assigned_names(block: str, where: str) -> list[str]:
    """The variables a top-level solution block assigns, in order (`prediction = 0.3` -> ["prediction"])."""
    try:
        tree = ast.parse(textwrap.dedent(block))
    except SyntaxError as exc:
        raise ValueError(f"{where}: the solution block is not valid Python ({exc.msg}, line {exc.lineno}).") from None
    names = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name) and name.id not in names:
                    names.append(name.id)
    if not names:
        raise ValueError(f"{where}: a solution block at the top level of a cell must assign a variable "
                         f"(e.g. `prediction = 0.3`), which the exercise copy sets to `...`. Put solution code "
                         f"that assigns nothing inside a function.")
    return names


STUB_MESSAGE = "your code here (a hint is folded up below this cell)"


def _block_hint(block_lines: list[str], where: str) -> str:
    hints = [line.strip()[len(HINT_PREFIX):].strip() for line in block_lines if line.strip().startswith(HINT_PREFIX)]
    if not hints or not hints[0]:
        raise ValueError(f"{where}: every solution block needs a `{HINT_PREFIX} ...` line; the exercise copy shows "
                         f"it in a folded hint below the cell.")
    return " ".join(hints)


def _stub(block_lines: list[str], indent: str, where: str) -> list[str]:
    _block_hint(block_lines, where)
    if indent:
        return [f"{indent}raise NotImplementedError({json.dumps(STUB_MESSAGE)})"]
    names = _assigned_names("\n".join(block_lines), where)
    return [f"{name} = ...{PREDICTION_LINE}" for name in names]


def solution_hints(source: str, where: str = "cell") -> list[str]:
    """The `# HINT:` text of every solution block in a code cell's source, in order."""
    exercise_source(source, where)  # the same checks of the markers
    lines, hints = source.split("\n"), []
    for index, line in enumerate(lines):
        if line.strip() == SOLUTION_BEGIN:
            end = next(i for i in range(index + 1, len(lines)) if lines[i].strip() == SOLUTION_END)
            hints.append(_block_hint(lines[index + 1:end], where))
    return hints


def hint_cell_source(hints: list[str]) -> str:
    """A markdown cell that folds the hints away until the learner opens them: an HTML <details> block, which
    JupyterLab, Colab and the website all show folded."""
    body = "\n\n".join(hints) if len(hints) == 1 else "\n".join(f"{i}. {h}" for i, h in enumerate(hints, start=1))
    return f"<details>\n<summary>Hint</summary>\n\n{body}\n\n</details>"


def exercise_source(source: str, where: str = "cell") -> str:
    """The exercise version of a code cell's source: every solution block replaced by its stub."""
    lines, output = source.split("\n"), []
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.strip() == SOLUTION_END:
            raise ValueError(f"{where}: `{SOLUTION_END}` on line {index + 1} has no `{SOLUTION_BEGIN}` before it.")
        if line.strip() != SOLUTION_BEGIN:
            output.append(line)
            index += 1
            continue
        indent = line[:len(line) - len(line.lstrip())]
        end = next((i for i in range(index + 1, len(lines)) if lines[i].strip() in (SOLUTION_BEGIN, SOLUTION_END)),
                   None)
        if end is None or lines[end].strip() != SOLUTION_END:
            raise ValueError(f"{where}: `{SOLUTION_BEGIN}` on line {index + 1} is not closed by `{SOLUTION_END}`.")
        output += _stub(lines[index + 1:end], indent, f"{where}, line {index + 1}")
        index = end + 1
    return "\n".join(output)


def is_answer_cell(cell) -> bool:
    return cell.cell_type == "markdown" and cell.source.lstrip().split("\n", 1)[0].strip() == ANSWER_MARKER


ANSWER_TAGS = ("hide-output", "nbval-ignore-output")  # see the module's docstring


def is_prediction_cell(cell) -> bool:
    """A predict-then-run cell of an exercise copy: a code cell whose solution block became `name = ...`."""
    return cell.cell_type == "code" and any(
        line.endswith(" = ..." + PREDICTION_LINE) for line in cell.source.split("\n"))


def is_hint_cell(cell) -> bool:
    return cell.cell_type == "markdown" and cell.source.startswith("<details>\n<summary>Hint</summary>")


def prediction_answers(notebook) -> list[tuple[int, list[int]]]:
    """Each predict-then-run cell of an exercise notebook and the cells that reveal its answer: (the index of the
    prediction cell, the indices of the code cells after it, its folded hint aside, up to the next markdown cell
    or the next prediction)."""
    found = []
    for index, cell in enumerate(notebook.cells):
        if not is_prediction_cell(cell):
            continue
        answers = []
        for later in range(index + 1, len(notebook.cells)):
            following = notebook.cells[later]
            if is_hint_cell(following):
                continue
            if following.cell_type != "code" or is_prediction_cell(following):
                break
            answers.append(later)
        found.append((index, answers))
    return found


def hide_answers(notebook, keep_outputs: bool = False):
    """Tag every prediction's answer cells `ANSWER_TAGS` and (unless `keep_outputs`) drop their outputs. In place."""
    for _, answers in prediction_answers(notebook):
        for index in answers:
            cell = notebook.cells[index]
            tags = list(cell.metadata.get("tags", []))
            cell.metadata["tags"] = tags + [tag for tag in ANSWER_TAGS if tag not in tags]
            if not keep_outputs:
                cell.outputs, cell.execution_count = [], None
    return notebook


def exercise_notebook(solution, name: str = "notebook"):
    """The exercise copy of a solution notebook: stubs for solution blocks, placeholders for model answers,
    no outputs, every prediction's answer cells tagged to stay hidden (`hide_answers`). Cell ids and metadata
    are kept, so a regenerated copy differs only where the solution did."""
    notebook = copy.deepcopy(solution)
    cells = []
    for number, cell in enumerate(notebook.cells):
        where = f"{name}, cell {number}"
        cells.append(cell)
        if cell.cell_type == "code":
            hints = solution_hints(cell.source, where)
            cell.source = exercise_source(cell.source, where)
            cell.outputs, cell.execution_count = [], None
            if hints:  # the hint, folded, right below the cell it helps with
                hint = nbformat.v4.new_markdown_cell(hint_cell_source(hints))
                hint.id = f"{cell.get('id', number)}-hint"[:64]
                cells.append(hint)
        elif is_answer_cell(cell):
            cell.source = ANSWER_PLACEHOLDER
        elif cell.cell_type == "markdown" and cell.source.startswith(SOLUTION_TITLE):
            cell.source = EXERCISE_TITLE + cell.source[len(SOLUTION_TITLE):]
        elif SOLUTION_BEGIN in cell.source or ANSWER_MARKER in cell.source:
            raise ValueError(f"{where}: solution markers are only understood in code cells, and "
                             f"`{ANSWER_MARKER}` only as the first line of a markdown cell.")
    notebook.cells = cells
    return hide_answers(notebook)


# ---------------------------------------------------------------------------------------------
# Whole folders.
# ---------------------------------------------------------------------------------------------

def find_root(start: Path | None = None) -> Path:
    """The repository root: the first folder, from `start` (default: the working directory) upwards, that
    holds `solutions/`; else the checkout this module lives in."""
    start = Path.cwd() if start is None else Path(start)
    for folder in [start.resolve(), *start.resolve().parents]:
        if (folder / "solutions").is_dir():
            return folder
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "solutions").is_dir():
        return checkout
    raise FileNotFoundError(f"no solutions/ folder in {start} or above it, nor in {checkout}. "
                            f"Run this from the dftlab repository, or pass --root.")


def _cell_signature(cell) -> tuple:
    """What makes two cells the same for `outdated`: type, source and tags; never outputs."""
    return cell.cell_type, cell.source, tuple(cell.get("metadata", {}).get("tags", []))


def solution_paths(solutions_dir: Path) -> list[Path]:
    paths = sorted(Path(solutions_dir).glob(NOTEBOOK_GLOB))
    if not paths:
        raise FileNotFoundError(f"no solution notebooks ({NOTEBOOK_GLOB}) in {solutions_dir}.")
    return paths


def outdated(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """Names of the exercise notebooks that are missing, stale or different from what the solutions give."""
    problems = []
    expected_names = set()
    for path in solution_paths(solutions_dir):
        expected_names.add(path.name)
        target = Path(exercises_dir) / path.name
        if not target.exists():
            problems.append(f"{path.name} (missing)")
            continue
        generated = exercise_notebook(nbformat.read(path, as_version=4), path.name)
        existing = nbformat.read(target, as_version=4)
        if [_cell_signature(c) for c in generated.cells] != [_cell_signature(c) for c in existing.cells]:
            problems.append(f"{path.name} (differs from the solution)")
    for path in sorted(Path(exercises_dir).glob(NOTEBOOK_GLOB)):
        if path.name not in expected_names:
            problems.append(f"{path.name} (no solution notebook)")
    return problems


def execute_notebook(notebook, folder: Path, timeout: int = EXECUTION_TIMEOUT_SECONDS):
    """Run a notebook in place exactly as nbval runs it in `make test`: offline, seeded, no progress bars, and
    every cell with `store_history=False` (under which IPython's trailing `;` does not silence a value).

    `tools/execute_notebooks.py` uses it for the chapters too, so every stored output comes from one executor.
    """
    from nbclient import NotebookClient  # only executing needs a kernel

    # The kernel gets its own environment; this process's os.environ is left as it was.
    env = {**os.environ, **NOTEBOOK_ENV}
    # record_timing=False: per-cell timestamps would make every run a new diff.
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", record_timing=False,
                            store_widget_state=True, resources={"metadata": {"path": str(folder)}})
    with client.setup_kernel(env=env):
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index, store_history=False)
        client.set_widgets_metadata()
    return notebook


def execute_solutions(solutions_dir: Path, log=print) -> list[Path]:
    """Re-run every solution notebook in place, so its stored outputs (all checks passing) are fresh."""
    paths = solution_paths(solutions_dir)
    for path in paths:
        log(f"executing {path} ...")
        nbformat.write(execute_notebook(nbformat.read(path, as_version=4), Path(solutions_dir).resolve()), path)
    return paths


def build(solutions_dir: Path, exercises_dir: Path, execute: bool = True, force: bool = False,
          log=print) -> list[Path]:
    """Write `exercises_dir/NN_<topic>.ipynb` for every solution notebook whose copy is out of date
    (every one with `force`), executed unless `execute=False`. Returns the paths written."""
    exercises_dir = Path(exercises_dir)
    exercises_dir.mkdir(parents=True, exist_ok=True)
    stale = {problem.split(" ")[0] for problem in outdated(solutions_dir, exercises_dir)}
    written = []
    for path in solution_paths(solutions_dir):
        if not force and path.name not in stale:
            continue
        notebook = exercise_notebook(nbformat.read(path, as_version=4), path.name)
        if execute:
            log(f"executing {path.name} ...")
            execute_notebook(notebook, exercises_dir.resolve())
            hide_answers(notebook)  # executed, so that every cell ran; stored without the answers' outputs
        target = exercises_dir / path.name
        nbformat.write(notebook, target)
        written.append(target)
        log(f"wrote {target}")
    expected = {path.name for path in solution_paths(solutions_dir)}
    for path in sorted(exercises_dir.glob(NOTEBOOK_GLOB)):
        if path.name not in expected:
            path.unlink()
            log(f"removed {path} (its solution notebook is gone)")
    return written


# ---------------------------------------------------------------------------------------------
# The student hand-out.
# ---------------------------------------------------------------------------------------------

STUDENT_README = """# dftlab exercises

Exercises for the course "Why fine-tuned language models write formulaically". There is one notebook
per chapter:

{contents}

## Set-up

You need Python 3.11. This folder holds the course package as a wheel,
`{wheel}`, which ships everything the notebooks use: its data, the tiny GPT-2
models, the cached study results and the exercise checks. In a fresh environment (for example
`python3.11 -m venv .venv && source .venv/bin/activate`), run this one command in this folder:

```bash
{wheel_command}
```

It installs the pinned torch first (the CPU build is all you need), then dftlab from the wheel; pip fetches
the other dependencies (transformers, pandas, JupyterLab, ...) from your package index. dftlab is not on
PyPI, so `pip install dftlab` finds nothing. Without this folder, install it from the course repository
with `{git_command}`; in Google Colab the first cell of each notebook does that for you.

Then start Jupyter (`jupyter lab`) in this folder and open a notebook.

## How the exercises work

* **Implement a function.** Replace `raise NotImplementedError(...)` with your code, then run the
  `check(...)` cell below it. A green tick means it passed; a red cross comes with a hint about what
  is most likely wrong.
* **Predict, then run.** Write your prediction in the variable (it starts as `...`) *before* running
  the experiment cell. The check compares it with the measured value and explains the result.
* **Written answers.** Replace "*Your answer here.*" with a few sentences. These are not checked
  automatically; discuss them with your instructor.

`check` never changes your work. If one of your functions loops forever, it is stopped after a few
seconds.
"""


def _title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.split("\n", 1)[0][2:].strip()
    return ""


LAB_PLAN_SECTION = """
## The lab sessions

{lab_plan}"""


def student_readme(contents: list[str], wheel_name: str, config_path: Path | None = None, lab_plan: str = "") -> str:
    """The student zip's README; both install commands come from `dftlab.course.install`, the one source, and the lab
    plan (`dftlab.course.plan.student_plan_markdown`) from the course plan."""
    from dftlab.course import install

    return STUDENT_README.format(contents="\n".join(contents), wheel=wheel_name,
                                 wheel_command=install.wheel_install_command(wheel_name),
                                 git_command=install.install_command(config_path)) + (
        LAB_PLAN_SECTION.format(lab_plan=lab_plan) if lab_plan else "")


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, ZIP_TIMESTAMP)
    info.external_attr = 0o644 << 16  # rw-r--r-- once unzipped
    return info


def write_student_zip(exercises_dir: Path, out: Path, wheel: Path, folder_name: str = "dftlab-exercises",
                      config_path: Path | None = None) -> Path:
    """A zip that works on its own: the exercise notebooks (outputs cleared, so students start clean), a wheel of
    dftlab (`wheel`, from `dftlab.course.install.build_wheel`) and a README with the one command that installs it.
    `config_path` is the `_config.yml` the README's git install line is built from (default: the checkout's)."""
    paths = sorted(Path(exercises_dir).glob(NOTEBOOK_GLOB))
    if not paths:
        raise FileNotFoundError(f"no exercise notebooks in {exercises_dir}; run `python -m dftlab.course.exercises build`.")
    wheel = Path(wheel)
    if not wheel.is_file() or not wheel.name.startswith("dftlab-") or wheel.suffix != ".whl":
        raise FileNotFoundError(f"{wheel} is not a dftlab wheel; build one with `dftlab.course.install.build_wheel`.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    contents = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.outputs, cell.execution_count = [], None
            buffer = io.StringIO()
            nbformat.write(notebook, buffer)
            archive.writestr(_entry(f"{folder_name}/{path.name}"), buffer.getvalue(),
                             compress_type=zipfile.ZIP_DEFLATED)
            contents.append(f"* `{path.name}`: {_title(notebook)}")
        from dftlab.course import plan as course_plan

        lab_plan = course_plan.student_plan_markdown(course_plan.exercise_catalogue(exercises_dir),
                                                     course_plan.load_plan())
        readme = student_readme(contents, wheel.name, config_path, lab_plan)
        archive.writestr(_entry(f"{folder_name}/README.md"), readme,
                         compress_type=zipfile.ZIP_DEFLATED)
        # A wheel is a zip already: stored as it is.
        archive.writestr(_entry(f"{folder_name}/{wheel.name}"), wheel.read_bytes())
    return out


# ---------------------------------------------------------------------------------------------
# The command line.
# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dftlab.course.exercises",
                                     description="Generate, check and hand out the exercise notebooks.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--root", type=Path, default=None,
                        help="repository root holding solutions/ and exercises/ (default: found from here)")
    commands = parser.add_subparsers(dest="command", required=True)
    build_parser = commands.add_parser("build", parents=[common],
                                       help="regenerate exercises/ from solutions/ and execute them")
    build_parser.add_argument("--no-execute", action="store_true", help="write the notebooks without running them")
    build_parser.add_argument("--force", action="store_true", help="rewrite every notebook, even up-to-date ones")
    build_parser.add_argument("--solutions", action="store_true",
                              help="first re-execute the solution notebooks in place too")
    commands.add_parser("check", parents=[common], help="exit 1 if exercises/ is out of date with solutions/")
    student_parser = commands.add_parser("student", parents=[common],
                                         help="write a zip of the exercise notebooks and a dftlab wheel for students")
    student_parser.add_argument("--out", type=Path, default=Path("student/dftlab-exercises.zip"),
                                help="where to write the zip (default: student/dftlab-exercises.zip)")
    grade_parser = commands.add_parser(
        "grade", parents=[common], help="run a class's submitted notebooks and write every check's result to a CSV")
    grade_parser.add_argument("notebooks", nargs="+", type=Path, help="the submitted notebooks (e.g. submissions/*/*.ipynb)")
    grade_parser.add_argument("--out", type=Path, default=Path("grades.csv"), help="the CSV to write (default: grades.csv)")
    grade_parser.add_argument("--notebook-timeout", type=int, default=300,
                              help="seconds one whole notebook may run (default: 300)")
    grade_parser.add_argument("--cell-timeout", type=int, default=60, help="seconds one cell may run (default: 60)")
    grade_parser.add_argument("--memory-limit", type=int, default=4096,
                              help="megabytes of memory a notebook's kernel may address (default: 4096)")
    grade_parser.add_argument("--jobs", type=int, default=1, help="notebooks run at once (default: 1; at most one per "
                                                                  "CPU core, e.g. --jobs 2 on two cores)")
    grade_parser.add_argument("--plan", type=Path, default=None,
                              help="the course plan with each exercise's points (default: dftlab's plan.toml)")
    grade_parser.add_argument("--seed", type=int, default=None,
                              help="the seed of the graded inputs (default: a new random one, recorded in the info "
                                   "file; pass it again to regrade exactly)")
    args = parser.parse_args(argv)

    root = find_root(args.root)
    if args.command == "grade":
        from dftlab.course import grading

        rows = grading.grade(args.notebooks, args.out, root / "solutions", notebook_time_limit=args.notebook_timeout,
                             cell_time_limit=args.cell_timeout, memory_limit_mb=args.memory_limit,
                             plan_path=args.plan, jobs=args.jobs, seed=args.seed)
        stem = args.out.with_suffix("")
        print(f"wrote {args.out}: {len(rows)} rows, {sum(r.status in ('passed', 'answered') for r in rows)} passed "
              f"or answered; totals in {stem}-totals.csv, written answers to mark in {stem}-written.csv, the run's "
              f"versions and limits in {stem}-info.json")
        return 0
    solutions_dir, exercises_dir = root / "solutions", root / "exercises"
    if args.command == "build":
        if args.solutions:
            execute_solutions(solutions_dir)
        written = build(solutions_dir, exercises_dir, execute=not args.no_execute, force=args.force)
        if not written:
            print("exercises/ is already up to date")
        return 0
    problems = outdated(solutions_dir, exercises_dir)
    if problems:
        print("exercises/ is out of date with solutions/:\n  " + "\n  ".join(problems)
              + "\nRun `python -m dftlab.course.exercises build` and commit the result.", file=sys.stderr)
        return 1
    if args.command == "check":
        print(f"exercises/ is up to date ({len(solution_paths(solutions_dir))} notebooks)")
        return 0
    from dftlab.course import install

    with tempfile.TemporaryDirectory(prefix="dftlab-student-") as tmp:
        wheel = install.build_wheel(root, tmp)
        out = write_student_zip(exercises_dir, args.out, wheel, config_path=root / "_config.yml")
        print(f"wrote {out} (with {wheel.name}, {wheel.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
