"""The shape every chapter promises a learner: objectives, enough prose, a figure, a summary and exercises beside it."""
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from dftlab.course import checks, exercises

ROOT = Path(__file__).resolve().parents[1]
MIN_PROSE_WORDS = 1500
MIN_EXERCISES_PER_CHAPTER = 4


def toc_chapters() -> list[str]:
    """The chapters of _toc.yml after the preface, appendix and instructors' pages left out:
    ['chapters/00_formulaic_writing', ...]."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [chapter["file"] for part in toc["parts"] if part["caption"] not in ("Appendix", "For instructors")
             for chapter in part["chapters"]]
    return [name for name in files if not name.endswith("00_preface")]


def prose_words(notebook) -> int:
    """Words of markdown, fenced code left out."""
    return sum(len(re.sub(r"```.*?```", "", cell.source, flags=re.S).split())
               for cell in notebook.cells if cell.cell_type == "markdown")


def has_figure(notebook) -> bool:
    """A stored image, or a Vega-Lite explorer (which the site draws in the page)."""
    kinds = {kind for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])
             for kind in output.get("data", {})}
    return bool(kinds & {"image/png", "image/svg+xml"}) or any("vega" in kind for kind in kinds)


def exercise_count(solution) -> int:
    """Solution blocks and written model answers: what the exercise copy asks the learner to do."""
    blocks = sum(cell.source.count(exercises.SOLUTION_BEGIN) for cell in solution.cells if cell.cell_type == "code")
    return blocks + sum(exercises.is_answer_cell(cell) for cell in solution.cells)


CHAPTERS = toc_chapters()
# A chapter whose exercises still live in another chapter's notebook, and where: its exercise test is expected to fail
# (strictly: once solutions/ has its notebook, the test passes, fails as an XPASS, and the entry must go).
EXERCISES_ELSEWHERE: dict[str, str] = {}  # chapter -> where its exercises live instead


def test_the_course_has_at_least_eight_chapters_after_the_preface():
    assert len(CHAPTERS) >= 8, CHAPTERS


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_teaches_with_objectives_prose_a_figure_and_a_summary(chapter):
    notebook = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    markdown = [cell.source for cell in notebook.cells if cell.cell_type == "markdown"]
    assert any("**Learning objectives.**" in source for source in markdown[:4]), f"{chapter}: no learning objectives"
    assert any(re.search(r"^## Summary", source, re.M) for source in markdown), f"{chapter}: no summary"
    assert prose_words(notebook) >= MIN_PROSE_WORDS, f"{chapter}: {prose_words(notebook)} words of prose"
    assert has_figure(notebook), f"{chapter}: no figure"


@pytest.mark.parametrize("chapter", [
    pytest.param(chapter, marks=pytest.mark.xfail(strict=True, reason=EXERCISES_ELSEWHERE[chapter]))
    if chapter in EXERCISES_ELSEWHERE else chapter for chapter in CHAPTERS])
def test_each_chapter_has_exercises_beside_it(chapter):
    solution = ROOT / "solutions" / f"{Path(chapter).name}.ipynb"
    assert solution.exists(), f"{chapter} has no solutions notebook"
    count = exercise_count(nbformat.read(solution, as_version=4))
    assert count >= MIN_EXERCISES_PER_CHAPTER, f"{solution.name}: {count} exercises"


def test_at_least_thirty_exercises_are_checked_automatically():
    assert len(checks.EXERCISES) >= 30, sorted(checks.EXERCISES)


def test_every_solution_block_has_a_folded_hint_in_the_exercise_copy():
    for path in sorted((ROOT / "exercises").glob(exercises.NOTEBOOK_GLOB)):
        cells = nbformat.read(path, as_version=4).cells
        solution = nbformat.read(ROOT / "solutions" / path.name, as_version=4)
        blocks = sum(cell.source.count(exercises.SOLUTION_BEGIN) for cell in solution.cells if cell.cell_type == "code")
        hints = sum(cell.cell_type == "markdown" and cell.source.startswith("<details>") for cell in cells)
        assert hints >= 1 and hints <= blocks, f"{path.name}: {hints} folded hints for {blocks} solution blocks"
