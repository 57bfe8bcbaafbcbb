"""The slide deck (tools/slides.py): one self-contained HTML file, a title slide and one stored chapter figure per
slide, each with its chapter, its heading and its alt text; a snippet that stops naming one figure fails loudly."""
import base64
import html
import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_slides_tool():
    spec = importlib.util.spec_from_file_location("slides_tool", ROOT / "tools" / "slides.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


slides = load_slides_tool()


def test_the_deck_has_a_title_slide_and_one_figure_per_key_figure(tmp_path):
    out = slides.write_deck(tmp_path / "deck" / "slides.html")
    page = out.read_text()
    sections = re.findall(r"<section[^>]*>.*?</section>", page, re.S)
    assert 12 <= len(slides.KEY_FIGURES) <= 20
    assert len(sections) == len(slides.KEY_FIGURES) + 1
    images = re.findall(r'<img src="data:(image/svg\+xml|image/png);base64,([^"]+)" alt="([^"]+)"', page)
    assert len(images) == len(slides.KEY_FIGURES)
    for mime, data, alt in images:
        raw = base64.b64decode(data)
        assert raw.lstrip().startswith(b"<?xml") or b"<svg" in raw[:500] if mime == "image/svg+xml" \
            else raw.startswith(b"\x89PNG")
        assert len(html.unescape(alt).split()) >= 5, alt
    titles = [html.unescape(t) for t in re.findall(r"<h2>(.*?)</h2>", page)]
    chapters = [html.unescape(t) for t in re.findall(r'<p class="chapter">(.*?)</p>', page)]
    assert len(titles) == len(chapters) == len(images) and all(titles)
    assert all(re.match(r"Chapter \d+: \S", chapter) for chapter in chapters), chapters
    assert [int(re.match(r"Chapter (\d+)", c)[1]) for c in chapters] == sorted(int(re.match(r"Chapter (\d+)", c)[1])
                                                                             for c in chapters), "in course order"
    # self-contained: nothing is fetched from anywhere, and it fits a phone's width
    assert not re.search(r'(?:src|href)="(?!data:|#)', page)
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in page
    assert "ArrowRight" in page and "touchstart" in page
    # on a phone a figure keeps its own size (legible text) and pans inside its box, as on the chapter pages
    assert re.search(r"@media \(max-width:700px\)\{figure\{[^}]*overflow:auto", page)


def test_each_slide_is_the_stored_figure_of_its_cell():
    stem, snippet = slides.KEY_FIGURES[0]
    slide = slides.find_slide(ROOT / "chapters" / f"{stem}.ipynb", snippet)
    cells = json.loads((ROOT / "chapters" / f"{stem}.ipynb").read_text())["cells"]
    cell = next(c for c in cells if c["cell_type"] == "code" and snippet in "".join(c["source"]))
    assert slide.alt == cell["metadata"]["mystnb"]["image"]["alt"]
    stored = next(o["data"][slide.mime] for o in cell["outputs"] if slide.mime in o.get("data", {}))
    assert slide.data.decode() == ("".join(stored) if isinstance(stored, list) else stored)


def test_a_snippet_that_names_no_figure_or_a_print_twin_is_refused(tmp_path):
    notebook = {"cells": [
        {"cell_type": "markdown", "source": "# A chapter\n\n## A section", "metadata": {}},
        {"cell_type": "code", "source": "plots.plot_a()", "metadata": {"tags": ["dftlab-print-twin"]},
         "outputs": [{"output_type": "display_data", "data": {"image/svg+xml": "<svg></svg>"}, "metadata": {}}]},
        {"cell_type": "code", "source": "plots.plot_b()", "metadata": {},
         "outputs": [{"output_type": "display_data", "data": {"image/svg+xml": "<svg></svg>"}, "metadata": {}}]},
    ], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "03_topic.ipynb"
    path.write_text(json.dumps(notebook))
    with pytest.raises(ValueError, match="0 figure cells contain 'plot_a"):
        slides.find_slide(path, "plot_a(")
    with pytest.raises(ValueError, match="has no alt text"):
        slides.find_slide(path, "plot_b(")
    notebook["cells"][2]["metadata"] = {"mystnb": {"image": {"alt": "A bar chart of something."}}}
    path.write_text(json.dumps(notebook))
    slide = slides.find_slide(path, "plot_b(")
    assert (slide.chapter, slide.heading, slide.mime) == ("Chapter 3: A chapter", "A section", "image/svg+xml")
