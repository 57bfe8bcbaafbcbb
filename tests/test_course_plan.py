"""The course plan (src/dftlab/assets/course/plan.toml) covers every exercise of the solution notebooks, every written
answer has a rubric, each lab's core fits its 90 minutes, bad input fails with a message that says what to fix, and
the instructor pages show what the plan gives today."""
import json
import re
from pathlib import Path

import pytest

from dftlab.course import exercises, plan as course_plan

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
INSTRUCTOR = ROOT / "instructor"


@pytest.fixture(scope="module")
def catalogue():
    return course_plan.exercise_catalogue(SOLUTIONS)


@pytest.fixture(scope="module")
def plan():
    return course_plan.load_plan()


def test_the_plan_is_in_step_with_the_solutions(catalogue, plan):
    problems = course_plan.validate_plan(catalogue, plan)
    assert not problems, "\n".join(problems)


def test_every_exercise_has_an_entry_and_every_written_answer_a_rubric(catalogue, plan):
    assert len(catalogue) >= 40
    assert {e.number for e in catalogue} == set(plan)
    written = [e for e in catalogue if e.kind == "written"]
    assert written and all(e.model_answer for e in written)
    assert all(plan[e.number].rubric for e in written)
    assert not any(plan[e.number].rubric for e in catalogue if e.kind != "written")


def test_the_catalogue_reads_kinds_and_checks_from_the_notebooks(catalogue):
    by_number = {e.number: e for e in catalogue}
    assert by_number["1.2"].kind == "function" and by_number["1.2"].check_ids == ("ch01.entropy",)
    assert all(e.check_ids and all(c.startswith(f"ch{e.chapter:02d}.") for c in e.check_ids)
               for e in catalogue if e.kind != "written")
    assert {e.kind for e in catalogue} == set(course_plan.KINDS)
    # the exercise copies have the same exercises, without the model answers
    copies = course_plan.exercise_catalogue(ROOT / "exercises")
    assert [(e.number, e.kind, e.check_ids) for e in copies] == [(e.number, e.kind, e.check_ids) for e in catalogue]
    assert all(e.model_answer is None for e in copies)


def test_the_markers_agree_with_dftlab_exercises():
    assert course_plan.ANSWER_MARKER == exercises.ANSWER_MARKER
    assert course_plan.ANSWER_PLACEHOLDER == exercises.ANSWER_PLACEHOLDER
    assert course_plan.NOTEBOOK_GLOB == exercises.NOTEBOOK_GLOB


@pytest.mark.parametrize("lab", course_plan.LABS, ids=lambda lab: f"lab{lab.number}")
def test_each_lab_core_fits_its_minutes(lab, catalogue, plan):
    core = course_plan.core_exercises(lab, catalogue, plan)
    assert len(core) >= 4, "a lab needs a few core exercises"
    assert {e.chapter for e in core} == set(lab.chapters), "every chapter of a lab has a core exercise"
    assert course_plan.lab_core_minutes(lab, catalogue, plan) <= lab.exercise_minutes
    schedule = course_plan.lab_schedule(lab, catalogue, plan)
    assert schedule[0][0] == 0 and schedule[-1][1] == lab.minutes
    assert all(a[1] == b[0] for a, b in zip(schedule, schedule[1:])), "the timetable has no gaps or overlaps"
    assert sum("Exercise" in activity for _, _, activity in schedule) == len(core)


def test_core_exercises_sit_in_a_lab(catalogue, plan):
    outside = [e.number for e in catalogue if plan[e.number].track == "core" and course_plan.lab_of(e) is None]
    assert not outside, f"core exercises outside both labs: {outside}"


def test_each_rubric_runs_from_its_points_down_to_zero(catalogue, plan):
    for exercise in catalogue:
        entry = plan[exercise.number]
        if entry.rubric:
            levels = [points for points, _ in course_plan.rubric_levels(entry.rubric)]
            assert levels[0] == entry.points and levels[-1] == 0 and levels == sorted(levels, reverse=True), \
                (exercise.number, levels)


# --- bad input ---

PLAN_HEAD = '# a plan\n'


def _write(tmp_path, text):
    path = tmp_path / "plan.toml"
    path.write_text(PLAN_HEAD + text)
    return path


@pytest.mark.parametrize("table, message", [
    ('track = "mandatory"\nminutes = 5\npoints = 1', r'track = .mandatory. is not one of .*set it to "core"'),
    ('track = "core"\nminutes = 5', r"points is missing; add `points = "),
    ('track = "core"\nminutes = 5\npoints = -1', r"points = -1 must be zero or more"),
    ('track = "core"\nminutes = 0\npoints = 1', r"minutes = 0 must be positive"),
    ('track = "core"\nminutes = 5\npoints = 1.5', r"points = 1.5 is not a whole number"),
    ('track = "core"\nminutes = 5\npoints = 1\nweight = 2', r"unknown key\(s\) weight"),
    ('track = "core"\nminutes = 5\npoints = 1\nrubric = ""', r"rubric must be text"),
])
def test_bad_entries_are_named_with_their_fix(tmp_path, table, message):
    path = _write(tmp_path, f'[exercises."1.1"]\n{table}\n')
    with pytest.raises(ValueError, match=message) as info:
        course_plan.load_plan(path)
    assert '[exercises."1.1"]' in str(info.value)


def test_a_missing_or_broken_file_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no course plan at .*restore src/dftlab/assets/course/plan.toml"):
        course_plan.load_plan(tmp_path / "nowhere.toml")
    with pytest.raises(ValueError, match="is not valid TOML"):
        course_plan.load_plan(_write(tmp_path, "[exercises.\n"))
    with pytest.raises(ValueError, match="has no \\[exercises"):
        course_plan.load_plan(_write(tmp_path, "title = 'x'\n"))
    with pytest.raises(FileNotFoundError, match="no notebooks named"):
        course_plan.exercise_catalogue(tmp_path)


def test_validate_plan_names_missing_unknown_renumbered_and_rubricless_entries(tmp_path, catalogue):
    written = next(e for e in catalogue if e.kind == "written")
    function = next(e for e in catalogue if e.kind == "function")
    path = _write(tmp_path, f'# {function.number}: an older title\n[exercises."{function.number}"]\n'
                            f'track = "optional"\nminutes = 5\npoints = 2\n\n'
                            f'[exercises."{written.number}"]\ntrack = "optional"\nminutes = 5\npoints = 3\n\n'
                            f'[exercises."99.1"]\ntrack = "optional"\nminutes = 5\npoints = 1\n')
    problems = "\n".join(course_plan.validate_plan(catalogue, course_plan.load_plan(path)))
    third = next(e for e in catalogue if e.number not in (written.number, function.number))
    assert f"exercise {third.number} ({third.title}) has no entry in plan.toml" in problems
    assert f"exercise {written.number} is a written answer without a rubric" in problems
    assert "plan.toml has an entry for exercise 99.1, which no notebook has" in problems
    assert f"was written for 'an older title', but exercise {function.number} is now '{function.title}'" in problems


def test_a_core_exercise_outside_both_labs_is_reported(catalogue, plan):
    outside = next(e for e in catalogue if course_plan.lab_of(e) is None)
    changed = dict(plan, **{outside.number: course_plan.PlanEntry("core", 5, plan[outside.number].points,
                                                                 plan[outside.number].rubric)})
    assert f"exercise {outside.number} is core, but no lab covers chapter {outside.chapter}" in \
        "\n".join(course_plan.validate_plan(catalogue, changed))


def test_a_lab_whose_core_does_not_fit_is_reported(catalogue, plan):
    swollen = {number: course_plan.PlanEntry("core", 30, entry.points, entry.rubric)
               for number, entry in plan.items()}
    problems = course_plan.validate_plan(catalogue, swollen)
    assert any(re.match(r"lab 1's core exercises take \d+ minutes", p) for p in problems)


def test_an_exercise_with_neither_check_nor_answer_is_refused(tmp_path):
    notebook = {"cells": [{"cell_type": "markdown", "source": "## Exercise 1.1: nothing to do", "metadata": {}},
                          {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}],
                "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "01_x.ipynb").write_text(json.dumps(notebook))
    with pytest.raises(ValueError, match="exercise 1.1 has neither a check"):
        course_plan.exercise_catalogue(tmp_path)


def test_the_missing_command_prints_tables_that_load(tmp_path, capsys, catalogue):
    stubs = "\n\n".join(course_plan.plan_stub(e) for e in catalogue)
    plan = course_plan.load_plan(_write(tmp_path, stubs.replace("...;", "criterion;").replace("...", "criterion")))
    assert set(plan) == {e.number for e in catalogue}
    assert course_plan.main(["missing", "--solutions", str(SOLUTIONS)]) == 0
    assert "every exercise has an entry" in capsys.readouterr().out


def test_the_student_plan_lists_each_lab_core_with_its_minutes(catalogue, plan):
    text = course_plan.student_plan_markdown(catalogue, plan)
    for lab in course_plan.LABS:
        assert f"### Lab {lab.number}: " in text
        for exercise in course_plan.core_exercises(lab, catalogue, plan):
            assert f"* Exercise {exercise.number}: {exercise.title} (about {plan[exercise.number].minutes} min)" in text
    assert not any(e.model_answer and e.model_answer[:40] in text for e in catalogue)


# --- the instructor pages show what the plan gives today ---

def _markdown_outputs(path: Path) -> list[str]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    return ["".join(output["data"]["text/markdown"]) for cell in notebook["cells"] if cell["cell_type"] == "code"
            for output in cell.get("outputs", []) if "text/markdown" in output.get("data", {})]


@pytest.mark.parametrize("page, function", [
    ("exercise_plan.ipynb", "exercise_table_markdown"), ("exercise_plan.ipynb", "lab_totals_markdown"),
    ("rubrics.ipynb", "rubrics_markdown"),
])
def test_the_instructor_pages_are_up_to_date(page, function, catalogue, plan):
    """The pages are committed executed; when the solutions or plan.toml change, re-execute them
    (`python tools/execute_notebooks.py instructor/*.ipynb`)."""
    expected = getattr(course_plan, function)(catalogue, plan)
    assert expected in _markdown_outputs(INSTRUCTOR / page), \
        f"instructor/{page} is out of date; run `python tools/execute_notebooks.py instructor/{page}`"


def test_the_lab_plans_page_shows_each_lab_timetable_reading_and_stuck_points(catalogue, plan):
    from dftlab.course import checks

    known = [exercise for name in sorted(vars(checks)) if re.fullmatch(r"ch\d\d", name)
             for exercise in (*getattr(checks, name).FUNCTIONS, *getattr(checks, name).PREDICTIONS)]
    outputs = _markdown_outputs(INSTRUCTOR / "lab_plans.ipynb")
    for lab in course_plan.LABS:
        for expected in (course_plan.schedule_markdown(lab, catalogue, plan),
                         course_plan.reading_table_markdown(lab, ROOT / "chapters"),
                         course_plan.stuck_points_markdown(lab, catalogue, plan, known)):
            assert expected in outputs, ("instructor/lab_plans.ipynb is out of date; run "
                                         "`python tools/execute_notebooks.py instructor/lab_plans.ipynb`")
