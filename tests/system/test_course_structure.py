"""The shape every chapter promises a learner: objectives, enough prose, a figure, a summary and exercises beside it."""
import re
from pathlib import Path

import nbformat
import pytest
import yaml

from dftlab.course import checks, exercises

ROOT = Path(__file__).resolve().parents[2]
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
    """Each code cell with solution blocks is followed, in the exercise copy, by exactly one folded hint that holds
    the `# HINT:` text of every block in it, in order; no other cell is a hint."""
    for path in sorted((ROOT / "exercises").glob(exercises.NOTEBOOK_GLOB)):
        cells = nbformat.read(path, as_version=4).cells
        expected = {}  # exercise cell id -> the hint texts of its blocks
        for cell in nbformat.read(ROOT / "solutions" / path.name, as_version=4).cells:
            if cell.cell_type == "code" and exercises.SOLUTION_BEGIN in cell.source:
                blocks = cell.source.split(exercises.SOLUTION_BEGIN)[1:]
                expected[cell.id] = [" ".join(line.strip()[len(exercises.HINT_PREFIX):].strip()
                                              for line in block.split(exercises.SOLUTION_END)[0].split("\n")
                                              if line.strip().startswith(exercises.HINT_PREFIX)) for block in blocks]
        hint_cells = [i for i, cell in enumerate(cells) if cell.cell_type == "markdown" and "<details>" in cell.source]
        hinted = {cells[i - 1].id: cells[i].source for i in hint_cells if i > 0}
        assert len(hint_cells) == len(hinted) == len(expected), \
            f"{path.name}: {len(hint_cells)} folded hints for {len(expected)} cells with solution blocks"
        for cell_id, hints in expected.items():
            assert cell_id in hinted, f"{path.name}: the cell {cell_id} has no folded hint right below it"
            assert all(hints), f"{path.name}: a solution block of cell {cell_id} has no `{exercises.HINT_PREFIX}` line"
            assert hinted[cell_id].startswith("<details>") and hinted[cell_id].count("<details>") == 1, cell_id
            positions = [hinted[cell_id].find(hint) for hint in hints]
            assert -1 not in positions and positions == sorted(positions), \
                f"{path.name}: the hint below cell {cell_id} does not hold its blocks' hints {hints} in order"
