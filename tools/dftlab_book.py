"""A Sphinx extension for the course website (and the PDF): one chapter numbering, and what the footer says.

Listed in _config.yml (sphinx.extra_extensions); tools/site.py and tools/pdf.py put tools/ on the build's path.

- **Chapter numbers.** The course numbers its chapters by their notebooks, 0 to 9 (`chapters/03_sft.ipynb` is
  chapter 3): the prose says "chapter 4", the checks are named `ch03.*`, the exercise pages are "Exercises 3: ..."
  with "Exercise 3.2: ..." under them. Sphinx's own numbering (`numbered` in _toc.yml) would count the toc's
  entries instead (1, 2, ... with the preface left out, and "1.11." before an exercise page), so it is off, and
  this extension writes "Chapter N: " before the title of each `chapters/NN_<topic>` page (the preface excepted).
  It does so in the document itself, before Sphinx collects the titles, so the page's heading, its browser
  title, the sidebar, the previous/next links, every {doc} link and the search index all say the same.
- **Reading time.** `reading_minutes` estimates how long a chapter takes to read with care, from what a reader sees
  on its page; each chapter states it beside its time to run ("**Time to read:** about N minutes"), and
  tests/system/test_reading_time.py fails when a stated time is missing or drifts from the estimate by more than 20%.
- **The footer** (_templates/extra-footer.html) gets `dftlab_version` (dftlab.__version__, read from the source
  without importing torch), `dftlab_build_date` (UTC, or SOURCE_DATE_EPOCH for a reproducible build) and
  `dftlab_licence_url` (the LICENSE file in the repository that _config.yml names).
"""
from __future__ import annotations

import datetime
import os
import re
from pathlib import Path

from docutils import nodes
from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_PAGE = re.compile(r"^chapters/(\d\d)_")
UNNUMBERED = {"chapters/00_preface"}  # the preface comes before chapter 0


def chapter_number(docname: str) -> int | None:
    """The chapter number of a page (`chapters/03_sft` -> 3), or None for a page that is not a numbered chapter."""
    match = CHAPTER_PAGE.match(docname)
    return None if match is None or docname in UNNUMBERED else int(match.group(1))


def chapter_prefix(number: int) -> str:
    return f"Chapter {number}: "


class ChapterTitle(SphinxTransform):
    """Writes "Chapter N: " before the first heading of a numbered chapter's page."""

    default_priority = 500  # after parsing, before the doctree-read event at which Sphinx collects the titles

    def apply(self, **kwargs) -> None:
        number = chapter_number(self.env.docname)
        section = next(iter(self.document.findall(nodes.section)), None)
        if number is None or section is None or not isinstance(section[0], nodes.title):
            return
        title = section[0]
        if not title.astext().startswith(chapter_prefix(number)):
            title.insert(0, nodes.Text(chapter_prefix(number)))


# How fast a careful learner reads each part of a chapter page. Technical prose is read at about half the speed of
# a novel; code is read token by token; printed output and tables are skimmed; a figure takes a while to study.
PROSE_WORDS_PER_MINUTE = 150    # markdown, maths and fenced commands included
CODE_WORDS_PER_MINUTE = 50      # whitespace-separated tokens of the code cells a reader sees
OUTPUT_WORDS_PER_MINUTE = 300   # printed text and the text of tables
MINUTES_PER_FIGURE = 2          # an image, or an explorer (Vega-Lite)
HIDDEN_CELL_TAGS = {"remove-cell", "dftlab-print-twin"}  # the Colab install cell; a figure shown only on paper
READING_TIME = re.compile(r"\*\*Time to read:\*\*\s*about (\d+) minutes")


def reading_words(notebook: dict) -> dict[str, int]:
    """What a reader reads on a chapter's page: words of prose, code and output, and the number of figures.

    `notebook` is the notebook's JSON (a dict, or an nbformat node). Cells tagged remove-cell or dftlab-print-twin
    are left out (the site does not show them); an output with an image or a Vega-Lite view counts as a figure,
    any other output by the words of its text (a table by its text/plain form).
    """
    counts = {"prose": 0, "code": 0, "output": 0, "figures": 0}
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            counts["prose"] += len(source.split())
        elif cell["cell_type"] == "code" and not HIDDEN_CELL_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            counts["code"] += len(source.split())
            for output in cell.get("outputs", []):
                data = output.get("data", {})
                if any(kind.startswith("image/") or "vega" in kind for kind in data):
                    counts["figures"] += 1
                else:
                    text = output.get("text", data.get("text/plain", ""))
                    counts["output"] += len("".join(text).split())
    return counts


def reading_minutes(notebook: dict, exact: bool = False) -> float:
    """The time to read a chapter with care, in minutes, rounded to the nearest 5 (at least 5); unrounded if `exact`.

    Prose at 150 words a minute, code at 50, printed output and tables at 300, and 2 minutes per figure.
    """
    counts = reading_words(notebook)
    minutes = (counts["prose"] / PROSE_WORDS_PER_MINUTE + counts["code"] / CODE_WORDS_PER_MINUTE
               + counts["output"] / OUTPUT_WORDS_PER_MINUTE + counts["figures"] * MINUTES_PER_FIGURE)
    return minutes if exact else max(5, 5 * round(minutes / 5))


def stated_reading_minutes(notebook: dict) -> int | None:
    """N from "**Time to read:** about N minutes" in the chapter's opening cells, or None if it is not there."""
    opening = " ".join("".join(cell["source"]) for cell in notebook["cells"][:4] if cell["cell_type"] == "markdown")
    match = READING_TIME.search(opening)
    return None if match is None else int(match.group(1))


def dftlab_version(root: Path = ROOT) -> str:
    """dftlab.__version__, read from src/dftlab/__init__.py (importing dftlab would import torch)."""
    source = (root / "src" / "dftlab" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__\s*=\s*"([^"]+)"', source, re.M).group(1)


def build_date() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    moment = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
              else datetime.datetime.now(datetime.timezone.utc))
    return moment.strftime("%Y-%m-%d")


def _footer_context(app, pagename, templatename, context, doctree) -> None:
    options = app.config.html_theme_options or {}
    repository = str(options.get("repository_url", "")).rstrip("/")
    branch = options.get("repository_branch") or "main"
    context["dftlab_version"] = app.config.dftlab_version
    context["dftlab_build_date"] = app.config.dftlab_build_date
    context["dftlab_licence_url"] = f"{repository}/blob/{branch}/LICENSE" if repository else ""


def setup(app):
    app.add_transform(ChapterTitle)
    app.add_config_value("dftlab_version", dftlab_version(), "html")
    app.add_config_value("dftlab_build_date", build_date(), "")  # "": a new date does not make Sphinx reread pages
    app.connect("html-page-context", _footer_context)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
