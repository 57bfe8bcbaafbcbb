"""Every chapter states its time to read beside its time to run, and the stated time follows the page.

The estimate is `reading_minutes` in tools/dftlab_book.py: prose at 150 words a minute, code at 50, printed output
and tables at 300, and 2 minutes per figure or explorer, rounded to the nearest 5 minutes. A chapter that grows or
shrinks by more than a fifth fails here until its opening states the new time.
"""
import importlib.util
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 0.2  # how far the stated time may drift from the estimate, as a share of the estimate


def load_book_tool():
    spec = importlib.util.spec_from_file_location("dftlab_book", ROOT / "tools" / "dftlab_book.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BOOK = load_book_tool()


def toc_chapter_notebooks() -> list[str]:
    """Every chapter notebook of _toc.yml, the preface included, in reading order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]
            if chapter["file"].startswith("chapters/") and (ROOT / f"{chapter['file']}.ipynb").exists()]


def test_the_rule_counts_what_a_reader_sees():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell(" ".join(["word"] * 1500)),                       # 10 minutes
        nbformat.v4.new_code_cell("x = 1 " * 100, outputs=[                            # 300 tokens: 6 minutes
            nbformat.v4.new_output("stream", name="stdout", text="out " * 600),          # 2 minutes
            nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg/>", "text/plain": "<Figure>"})]),
        nbformat.v4.new_code_cell("hidden " * 1000, metadata={"tags": ["remove-cell"]}),  # not on the page
    ])
    assert BOOK.reading_words(notebook) == {"prose": 1500, "code": 300, "output": 600, "figures": 1}
    assert BOOK.reading_minutes(notebook, exact=True) == pytest.approx(10 + 6 + 2 + 2)
    assert BOOK.reading_minutes(notebook) == 20
    assert BOOK.reading_minutes(nbformat.v4.new_notebook()) == 5  # never less than 5


def test_every_chapter_of_the_toc_is_checked():
    chapters = toc_chapter_notebooks()
    assert "chapters/00_preface" in chapters and len(chapters) >= 10, chapters


@pytest.mark.parametrize("chapter", toc_chapter_notebooks())
def test_each_chapter_states_its_time_to_read_beside_its_time_to_run(chapter):
    notebook = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
    stated = BOOK.stated_reading_minutes(notebook)
    assert stated is not None, f'{chapter}: no "**Time to read:** about N minutes" in its opening'
    opening = next(cell.source for cell in notebook.cells[:4] if "**Time to read:**" in cell.source)
    assert "**Time to run" in opening, f"{chapter}: the time to read is not beside the time to run"
    estimate = BOOK.reading_minutes(notebook, exact=True)
    assert abs(stated - estimate) <= max(TOLERANCE * estimate, 2.5), (
        f"{chapter}: states {stated} minutes to read, the page now takes about {estimate:.0f} "
        f"(write {BOOK.reading_minutes(notebook)})")
