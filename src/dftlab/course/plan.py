"""The instructor's plan of the exercises: which are core in a 90-minute lab, how long each takes, what it is worth,
and how a written answer is marked. The book's "For instructors" pages and the student zip's README are made from it.

Two sources, so that nothing is typed twice:

- **The exercises** are read from the solution notebooks (`exercise_catalogue`): each sits under a heading
  `## Exercise N.M: title`; a checked one calls `check("chNN.name", ...)` (with `measured=` for a prediction), and a
  written one has a markdown cell that starts `<!-- BEGIN ANSWER -->`, its model answer.
- **The decisions** sit in one file, `assets/course/plan.toml` (`load_plan`), one table per exercise number:

      # 2.4: predict, then run — the loss of a model that knows nothing
      [exercises."2.4"]
      track = "core"     # or "optional"
      minutes = 5        # a learner's time for it, in a lab
      points = 1         # its grade weight
      rubric = \"\"\"...\"\"\"  # written answers only: "3 pts: ...; 2 pts: ...; 1 pt: ...; 0: ..."

  The comment line above each table names the exercise it was written for; when the notebooks renumber their
  exercises, `validate_plan` reports the entries whose title no longer matches.

The two labs (`LABS`) and their fixed parts (opening, a short framing per chapter, closing) are here; everything
else in a lab's timetable (`lab_schedule`) is the plan's minutes of its core exercises.

    python -m dftlab.course.plan check      # exit 1, listing what is out of step between plan.toml and solutions/
    python -m dftlab.course.plan missing    # print plan.toml tables to fill in for exercises without an entry
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

PLAN_PATH = Path(__file__).resolve().parents[1] / "assets" / "course" / "plan.toml"
# The markers of dftlab.course.exercises (which imports this module for the student zip, so it cannot import it back);
# tests/test_course_plan.py checks that the two agree.
ANSWER_MARKER = "<!-- BEGIN ANSWER -->"
ANSWER_PLACEHOLDER = "*Your answer here.*"
NOTEBOOK_GLOB = "[0-9][0-9]_*.ipynb"
TRACKS = ("core", "optional")
KINDS = ("function", "prediction", "written")
EXERCISE_HEADING = re.compile(r"^## Exercise (\d+)\.(\d+):\s*(.+?)\s*$")
RUBRIC_LEVEL = re.compile(r"(?:^|;)\s*(\d+)\s*(?:pts?)?\s*:", re.M)


@dataclass(frozen=True)
class Exercise:
    """One exercise of a solution (or exercise) notebook."""
    number: str                 # "3.2"
    chapter: int                # 3
    title: str                  # "the causal shift and the SFT loss"
    kind: str                   # "function", "prediction" or "written"
    check_ids: tuple[str, ...]  # ("ch03.shift_for_causal_lm", "ch03.completion_nll")
    model_answer: str | None    # the model answer's markdown (solutions only), without its marker line
    question: str = ""          # the markdown between the heading and the first code or answer cell


@dataclass(frozen=True)
class PlanEntry:
    """The instructor's decisions for one exercise (a table of plan.toml)."""
    track: str                  # "core" or "optional"
    minutes: int                # a learner's time for it, in a lab
    points: int                 # its grade weight
    rubric: str | None = None   # written answers only
    noted_title: str | None = None  # the title in the comment line above the table, if any


@dataclass(frozen=True)
class Lab:
    """A 90-minute lab session: its chapters and the fixed parts of its timetable (minutes)."""
    number: int
    title: str
    chapters: tuple[int, ...]
    minutes: int = 90
    opening: int = 5     # set-up check: everyone has the notebooks open and the first cell ran
    framing: int = 4     # per chapter: the instructor shows the chapter's key figure and states the question
    closing: int = 8     # discussion of what was measured, and what to finish at home

    @property
    def exercise_minutes(self) -> int:
        """The minutes left for core exercises once the fixed parts are taken out."""
        return self.minutes - self.opening - self.closing - self.framing * len(self.chapters)


LABS = (
    Lab(1, "From token distributions to supervised fine-tuning", (1, 2, 3)),
    Lab(2, "Dynamic Fine-Tuning, distribution matching and the verdict", (4, 5, 6, 7)),
)


# ---------------------------------------------------------------------------------------------
# The exercises, read from the notebooks.
# ---------------------------------------------------------------------------------------------

def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _checks(source: str) -> list[tuple[str, bool]]:
    """Every `check("chNN.name", ...)` call of a code cell: (its id, whether it passes `measured=`)."""
    python = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n"))
    try:
        tree = ast.parse(python)
    except SyntaxError:  # not plain Python: fall back on the text
        return [(match.group(1), "measured=" in source[match.end():match.end() + 400])
                for match in re.finditer(r"\bcheck\(\s*[\"']([^\"']+)[\"']", source)]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and (getattr(node.func, "id", None) == "check"
                                           or getattr(node.func, "attr", None) == "check"):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.args[0].value, any(k.arg == "measured" for k in node.keywords)))
    return sorted(found, key=lambda item: source.find(item[0]))


def _notebook_exercises(path: Path) -> list[Exercise]:
    cells = json.loads(Path(path).read_text(encoding="utf-8"))["cells"]
    found, current = [], None

    def close():
        if current is None:
            return
        checks, answer, placeholder = current["checks"], current["answer"], current["placeholder"]
        if checks:
            kind = "prediction" if any(measured for _, measured in checks) else "function"
        elif answer is not None or placeholder:
            kind = "written"
        else:
            raise ValueError(f"{path.name}: exercise {current['number']} has neither a check(...) call nor a "
                             f"written answer cell ({ANSWER_MARKER}); give it one, or make its heading something "
                             f"other than '## Exercise N.M: ...'")
        found.append(Exercise(current["number"], current["chapter"], current["title"], kind,
                              tuple(dict.fromkeys(check_id for check_id, _ in checks)), answer,
                              "\n\n".join(current["question"]).strip()))

    for cell in cells:
        source = _source(cell)
        if cell.get("cell_type") == "markdown":
            heading = next((EXERCISE_HEADING.match(line) for line in source.split("\n")
                            if EXERCISE_HEADING.match(line)), None)
            if heading:
                close()
                current = {"number": f"{int(heading[1])}.{int(heading[2])}", "chapter": int(heading[1]),
                           "title": heading[3], "checks": [], "answer": None, "placeholder": False,
                           "question": [source.split("\n", 1)[1].strip()] if "\n" in source.strip() else [],
                           "asking": True}
                continue
            if current is None:
                continue
            if source.lstrip().startswith("## "):  # another section ends the exercise
                close()
                current = None
                continue
            if current["asking"] and not source.lstrip().startswith((ANSWER_MARKER, ANSWER_PLACEHOLDER, "<details>")):
                current["question"].append(source.strip())
            if source.lstrip().split("\n", 1)[0].strip() == ANSWER_MARKER:
                current["asking"] = False
                current["answer"] = source.lstrip().split("\n", 1)[1].strip() if "\n" in source.strip() else ""
            elif source.strip() == ANSWER_PLACEHOLDER:
                current["placeholder"] = True
        elif cell.get("cell_type") == "code" and current is not None:
            current["asking"] = False
            current["checks"] += _checks(source)
    close()
    return found


def _number_key(number: str) -> tuple[int, int]:
    chapter, index = number.split(".")
    return int(chapter), int(index)


def exercise_catalogue(solutions_dir: Path | str) -> list[Exercise]:
    """Every exercise of the notebooks `NN_<topic>.ipynb` in `solutions_dir`, in chapter and exercise order.

    An exercise copy (exercises/) gives the same list, with `model_answer` None."""
    paths = sorted(Path(solutions_dir).glob(NOTEBOOK_GLOB))
    if not paths:
        raise FileNotFoundError(f"no notebooks named {NOTEBOOK_GLOB} in {solutions_dir}; pass the repository's "
                                f"solutions/ folder")
    catalogue = [exercise for path in paths for exercise in _notebook_exercises(path)]
    numbers = [exercise.number for exercise in catalogue]
    repeated = sorted({number for number in numbers if numbers.count(number) > 1}, key=_number_key)
    if repeated:
        raise ValueError(f"exercise numbers used twice in {solutions_dir}: {', '.join(repeated)}; renumber them")
    return sorted(catalogue, key=lambda exercise: _number_key(exercise.number))


# ---------------------------------------------------------------------------------------------
# The plan.
# ---------------------------------------------------------------------------------------------

def _noted_titles(text: str) -> dict[str, str]:
    """number -> the title in a comment line `# N.M: title` right above the table `[exercises."N.M"]`."""
    titles, previous = {}, ""
    for line in text.splitlines():
        table = re.match(r'^\s*\[exercises\."([^"]+)"\]', line)
        comment = re.match(r"^#\s*(\d+\.\d+):\s*(.+?)\s*$", previous)
        if table and comment and comment[1] == table[1]:
            titles[table[1]] = comment[2]
        previous = line
    return titles


def load_plan(path: Path | str | None = None) -> dict[str, PlanEntry]:
    """Exercise number -> its `PlanEntry`, from plan.toml (default: the one shipped in dftlab/assets/course/).

    Raises FileNotFoundError or ValueError naming the entry, the problem and the fix."""
    path = PLAN_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no course plan at {path}; pass the path of a plan.toml, or restore "
                                f"src/dftlab/assets/course/plan.toml from the repository")
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML ({exc}); fix that line") from None
    tables = data.get("exercises")
    if not isinstance(tables, dict) or not tables:
        raise ValueError(f"{path} has no [exercises.\"N.M\"] tables; add one per exercise "
                         f"(`python -m dftlab.course.plan missing` prints them)")
    noted = _noted_titles(text)
    plan = {}
    for number, table in tables.items():
        where = f'{path.name}, [exercises."{number}"]'
        if not re.fullmatch(r"\d+\.\d+", number):
            raise ValueError(f'{where}: an exercise number looks like "3.2"; rename the table')
        unknown = sorted(set(table) - {"track", "minutes", "points", "rubric"})
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; the keys are track, minutes, points "
                             f"and (for a written answer) rubric")
        track = table.get("track")
        if track not in TRACKS:
            raise ValueError(f"{where}: track = {track!r} is not one of {', '.join(map(repr, TRACKS))}; set it to "
                             f"\"core\" (done in the lab) or \"optional\"")
        for key in ("minutes", "points"):
            if key not in table:
                raise ValueError(f"{where}: {key} is missing; add `{key} = <a whole number>`")
            value = table[key]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"{where}: {key} = {value!r} is not a whole number; write e.g. `{key} = 2`")
            if value < 0 or (key == "minutes" and value == 0):
                raise ValueError(f"{where}: {key} = {value} must be {'positive' if key == 'minutes' else 'zero or more'}; "
                                 f"fix the number")
        rubric = table.get("rubric")
        if rubric is not None and (not isinstance(rubric, str) or not rubric.strip()):
            raise ValueError(f"{where}: rubric must be text such as \"2 pts: ...; 1 pt: ...; 0: ...\"; fill it in "
                             f"or remove the key")
        plan[number] = PlanEntry(track, table["minutes"], table["points"],
                                 rubric.strip() if rubric else None, noted.get(number))
    return plan


def rubric_levels(rubric: str) -> list[tuple[int, str]]:
    """The levels of a rubric "3 pts: ...; 1 pt: ...; 0: ...", as (points, criterion), in the order written."""
    parts = re.split(r";\s*(?=\d+\s*(?:pts?)?\s*:)", rubric.strip())
    levels = []
    for part in parts:
        match = re.match(r"\s*(\d+)\s*(?:pts?)?\s*:\s*(.*)", part, re.S)
        if match:
            levels.append((int(match[1]), " ".join(match[2].split()).rstrip(";")))
    return levels


def validate_plan(catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> list[str]:
    """What is out of step between the notebooks and the plan, one sentence each (empty when all is well)."""
    problems = []
    known = {exercise.number: exercise for exercise in catalogue}
    for exercise in catalogue:
        entry = plan.get(exercise.number)
        if entry is None:
            problems.append(f"exercise {exercise.number} ({exercise.title}) has no entry in plan.toml; add "
                            f"[exercises.\"{exercise.number}\"] (`python -m dftlab.course.plan missing` prints it)")
            continue
        if entry.noted_title is not None and entry.noted_title != exercise.title:
            problems.append(f"plan.toml's entry {exercise.number} was written for '{entry.noted_title}', but exercise "
                            f"{exercise.number} is now '{exercise.title}'; move the entry to the exercise's new "
                            f"number and update its comment line")
        if entry.track == "core" and lab_of(exercise) is None:
            problems.append(f"exercise {exercise.number} is core, but no lab covers chapter {exercise.chapter} "
                            f"(dftlab.course.plan.LABS); make it optional")
        needs_rubric = exercise.kind == "written" or exercise.model_answer is not None
        if needs_rubric and not entry.rubric:
            problems.append(f"exercise {exercise.number} is a written answer without a rubric; add rubric = "
                            f"\"\"\"{entry.points} pts: ...; ...; 0: ...\"\"\" to its entry")
        if entry.rubric:
            if not needs_rubric:
                problems.append(f"exercise {exercise.number} is checked automatically ({exercise.kind}), so its "
                                f"rubric is never used; remove it")
            levels = rubric_levels(entry.rubric)
            if not levels or levels[0][0] != entry.points or levels[-1][0] != 0:
                problems.append(f"exercise {exercise.number}: its rubric must run from {entry.points} pts (its "
                                f"points) down to 0, written '{entry.points} pts: ...; ...; 0: ...'")
    for number in sorted(set(plan) - set(known), key=_number_key):
        problems.append(f"plan.toml has an entry for exercise {number}, which no notebook has; remove it, or move "
                        f"it to the exercise's new number")
    for lab in LABS:
        core = lab_core_minutes(lab, catalogue, plan)
        if core > lab.exercise_minutes:
            problems.append(f"lab {lab.number}'s core exercises take {core} minutes, but its {lab.minutes} minutes "
                            f"leave {lab.exercise_minutes} for exercises; make some optional")
    return problems


# ---------------------------------------------------------------------------------------------
# Labs and tables (the instructor pages and the student zip).
# ---------------------------------------------------------------------------------------------

def lab_of(exercise: Exercise) -> Lab | None:
    return next((lab for lab in LABS if exercise.chapter in lab.chapters), None)


def core_exercises(lab: Lab, catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> list[Exercise]:
    return [e for e in catalogue if e.chapter in lab.chapters and e.number in plan and plan[e.number].track == "core"]


def lab_core_minutes(lab: Lab, catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> int:
    return sum(plan[e.number].minutes for e in core_exercises(lab, catalogue, plan))


def _clock(minute: int) -> str:
    return f"{minute // 60}:{minute % 60:02d}"


def lab_schedule(lab: Lab, catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> list[tuple[int, int, str]]:
    """The lab's timetable, (start minute, end minute, activity): the opening, then per chapter a framing and its
    core exercises, then the closing, with any minutes left over as a buffer before the closing."""
    rows, now = [], 0

    def add(minutes: int, activity: str):
        nonlocal now
        rows.append((now, now + minutes, activity))
        now += minutes

    add(lab.opening, "Opening: everyone has the notebooks open (student zip or Colab) and has run the first cell")
    for chapter in lab.chapters:
        add(lab.framing, f"Chapter {chapter}: show its key figure (slides) and state the question the exercises answer")
        for exercise in core_exercises(lab, catalogue, plan):
            if exercise.chapter == chapter:
                add(plan[exercise.number].minutes, f"Exercise {exercise.number}: {exercise.title} ({exercise.kind})")
    spare = lab.minutes - lab.closing - now
    if spare > 0:
        add(spare, "Buffer: help whoever is stuck, or start an optional exercise")
    add(lab.closing, "Closing: what the checks measured, and the optional exercises to finish at home")
    return rows


def schedule_markdown(lab: Lab, catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> str:
    lines = ["| time | minutes | activity |", "|---|---:|---|"]
    lines += [f"| {_clock(start)}–{_clock(end)} | {end - start} | {activity} |"
              for start, end, activity in lab_schedule(lab, catalogue, plan)]
    return "\n".join(lines)


def _track_label(exercise: Exercise, plan: dict[str, PlanEntry]) -> str:
    lab = lab_of(exercise)
    entry = plan[exercise.number]
    return f"core, lab {lab.number}" if entry.track == "core" and lab else entry.track


def exercise_table_markdown(catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> str:
    """Every exercise with its kind, track, minutes and points, one table per chapter, each with its totals (four
    columns, so that a table fits a phone)."""
    blocks = []
    for chapter in sorted({exercise.chapter for exercise in catalogue}):
        rows = [e for e in catalogue if e.chapter == chapter]
        lab = lab_of(rows[0])
        heading = f"**Chapter {chapter}** ({f'lab {lab.number}' if lab else 'outside the labs: reading and homework'})"
        lines = [heading, "", "| exercise (kind) | track | min | pts |", "|---|---|---:|---:|"]
        for exercise in rows:
            entry = plan[exercise.number]
            lines.append(f"| {exercise.number}: {exercise.title} (*{exercise.kind}*) | {_track_label(exercise, plan)} "
                         f"| {entry.minutes} | {entry.points} |")
        core = [e for e in rows if plan[e.number].track == "core"]
        lines.append(f"| **total**: {len(rows)} exercises, {len(core)} core | core: "
                     f"{sum(plan[e.number].minutes for e in core)} min | {sum(plan[e.number].minutes for e in rows)} "
                     f"| {sum(plan[e.number].points for e in rows)} |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def lab_totals_markdown(catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> str:
    """One row per lab (and one for the chapters outside them): its exercises (core ones in brackets), the core's
    minutes against the minutes the lab's timetable leaves for exercises, every exercise's minutes, and points."""
    lines = ["| | chapters | exercises (core) | core min (room) | all min | pts |", "|---|---|---:|---:|---:|---:|"]
    groups = [(f"Lab {lab.number}", lab.chapters, lab.exercise_minutes) for lab in LABS]
    outside = tuple(sorted({e.chapter for e in catalogue if lab_of(e) is None}))
    if outside:
        groups.append(("Outside the labs", outside, None))
    for name, chapters, room in groups:
        rows = [e for e in catalogue if e.chapter in chapters]
        core = [e for e in rows if plan[e.number].track == "core"]
        lines.append(f"| {name} | {', '.join(map(str, chapters))} | {len(rows)} ({len(core)}) "
                     f"| {sum(plan[e.number].minutes for e in core)}{f' ({room})' if room is not None else ''} "
                     f"| {sum(plan[e.number].minutes for e in rows)} | {sum(plan[e.number].points for e in rows)} |")
    return "\n".join(lines)


def rubrics_markdown(catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> str:
    """For every written answer: its points, the rubric's levels and the model answer (quoted)."""
    blocks = []
    for exercise in catalogue:
        entry = plan.get(exercise.number)
        if exercise.kind != "written" and exercise.model_answer is None or entry is None:
            continue
        lines = [f"**Exercise {exercise.number}: {exercise.title}** ({entry.points} points, about "
                 f"{entry.minutes} minutes, {_track_label(exercise, plan)})", ""]
        if exercise.question:
            lines += ["The question:", ""] + [f"> {line}" if line.strip() else ">"
                                              for line in exercise.question.split("\n")] + [""]
        lines += ["Rubric:", ""]
        lines += [f"- **{points} {'pt' if points == 1 else 'pts'}**: {criterion}"
                  for points, criterion in rubric_levels(entry.rubric or "")]
        answer = (exercise.model_answer or "").removeprefix("**Model answer.**").strip()
        lines += ["", "Model answer:", ""] + [f"> {line}" if line.strip() else ">" for line in answer.split("\n")]
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks)


def student_plan_markdown(catalogue: list[Exercise], plan: dict[str, PlanEntry]) -> str:
    """The learner's part of the lab plan: per lab, the core exercises with their minutes, then the rest."""
    lines = [f"The course has {len(LABS)} lab sessions of {' and '.join(sorted({str(lab.minutes) for lab in LABS}))} "
             f"minutes. Do a lab's core exercises in the lab, in this order; the optional ones are for afterwards. "
             f"The minutes are a guide from the course plan, not a limit.", ""]
    for lab in LABS:
        core = core_exercises(lab, catalogue, plan)
        lines += [f"### Lab {lab.number}: {lab.title} (chapters {', '.join(map(str, lab.chapters))})", "",
                  f"Core, done in the lab ({sum(plan[e.number].minutes for e in core)} minutes):", ""]
        lines += [f"* Exercise {e.number}: {e.title} (about {plan[e.number].minutes} min)" for e in core]
        optional = [e for e in catalogue if e.chapter in lab.chapters and e not in core and e.number in plan]
        lines += ["", "Optional, after the lab: " + ", ".join(
            f"{e.number} ({plan[e.number].minutes} min)" for e in optional) + ".", ""]
    outside = [e for e in catalogue if lab_of(e) is None and e.number in plan]
    if outside:
        chapters = sorted({e.chapter for e in outside})
        lines += [f"Chapters {' and '.join(map(str, chapters))} are read at home; their exercises are optional: "
                  + ", ".join(f"{e.number} ({plan[e.number].minutes} min)" for e in outside) + "."]
    return "\n".join(lines).strip() + "\n"


READING_TIME = re.compile(r"\*\*Time to read:\*\*\s*about (\d+) minutes")


def reading_table_markdown(lab: Lab, chapters_dir: Path | str) -> str:
    """What learners read before the lab: each chapter's title and the reading time its opening states (each
    chapter notebook says "**Time to read:** about N minutes" beside its time to run), with the total."""
    lines, total, missing = ["| chapter | time to read |", "|---|---:|"], 0, False
    for chapter in lab.chapters:
        path = next(iter(sorted(Path(chapters_dir).glob(f"{chapter:02d}_*.ipynb"))), None)
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"] if path else []
        text = "\n".join(_source(cell) for cell in cells if cell.get("cell_type") == "markdown")
        title = next((line[2:].strip() for line in text.split("\n") if line.startswith("# ")), "(no notebook)")
        minutes = READING_TIME.search(text)
        total += int(minutes[1]) if minutes else 0
        missing = missing or minutes is None
        lines.append(f"| {chapter}: {title} | {f'about {minutes[1]} min' if minutes else 'not stated'} |")
    lines.append(f"| **total** | {'at least ' if missing else 'about '}{total} min |")
    return "\n".join(lines)


def _label(exercise: Exercise) -> str:
    """The exercise's number and title, ended with a full stop unless the title ends with a question mark."""
    text = f"Exercise {exercise.number}: {exercise.title}"
    return text if text[-1] in ".?!" else text + "."


def stuck_points_markdown(lab: Lab, catalogue: list[Exercise], plan: dict[str, PlanEntry], known_checks,
                          per_check: int = 3) -> str:
    """Where learners get stuck on a lab's core exercises: the wrong answers each check recognises and names
    (`known_checks`: the exercise objects of dftlab.course.checks, passed in so that this module stays free of torch)."""
    by_id = {check.exercise_id: check for check in known_checks}
    lines = []
    for exercise in core_exercises(lab, catalogue, plan):
        feedback = []
        for check_id in exercise.check_ids:
            check = by_id.get(check_id)
            feedback += [getattr(item, "feedback", None) or item[1]
                         for item in (getattr(check, "mistakes", ()) or getattr(check, "misconceptions", ()))][:per_check]
        if feedback:
            lines.append(f"- **{_label(exercise)}**")
            lines += [f"  - {' '.join(text.split())}" for text in feedback]
        elif exercise.kind == "written":
            lines.append(f"- **{_label(exercise)}** No check: mark it with its rubric (the rubrics page), and read "
                         f"a few answers aloud in the closing.")
    return "\n".join(lines)


def plan_stub(exercise: Exercise) -> str:
    """A plan.toml table to fill in for an exercise that has none."""
    minutes, points = {"function": (10, 2), "prediction": (5, 1), "written": (10, 3)}[exercise.kind]
    lines = [f"# {exercise.number}: {exercise.title}", f'[exercises."{exercise.number}"]', 'track = "optional"',
             f"minutes = {minutes}", f"points = {points}"]
    if exercise.kind == "written" or exercise.model_answer is not None:
        lines.append(f'rubric = """{points} pts: ...; 2 pts: ...; 1 pt: ...; 0: ..."""')
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dftlab.course.plan", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["check", "missing"])
    parser.add_argument("--solutions", type=Path, default=Path("solutions"), help="the solutions/ folder")
    parser.add_argument("--plan", type=Path, default=None, help="plan.toml (default: the shipped one)")
    args = parser.parse_args(argv)
    catalogue = exercise_catalogue(args.solutions)
    plan = load_plan(args.plan)
    if args.command == "missing":
        stubs = [plan_stub(e) for e in catalogue if e.number not in plan]
        print("\n\n".join(stubs) if stubs else "# every exercise has an entry")
        return 0
    problems = validate_plan(catalogue, plan)
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print(f"plan.toml covers all {len(catalogue)} exercises")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
