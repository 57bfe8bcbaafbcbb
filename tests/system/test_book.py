"""The book builds warning-free (`jupyter-book build . -W -n --keep-going`) and every page is there.

`built_site` (tests/conftest.py) renders the notebooks' stored outputs; tests/system/test_browser.py opens the
same site in Chromium. These tests read the HTML and the sources, so they need no browser.
"""
import html
import importlib.util
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

pytestmark = pytest.mark.slow  # builds the website: `make test` only, not the fast tier

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
CDN_HOSTS = ("unpkg.com", "cdn.jsdelivr.net", "cdnjs.cloudflare.com")


def load_alt_text_tool():
    spec = importlib.util.spec_from_file_location("figure_alt_text", ROOT / "tools" / "figure_alt_text.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def chapter_notebooks(toc_pages) -> list[Path]:
    return [ROOT / f"{name}.ipynb" for name in toc_pages
            if name.startswith("chapters/") and (ROOT / f"{name}.ipynb").exists()]


def test_every_toc_page_is_rendered(built_site, toc_pages):
    for name in toc_pages:
        assert (built_site / f"{name}.html").exists(), name


class _LinksAndText(HTMLParser):
    """Collects every href/src of a page, and the text of its h1s, h2s, <title> and sidebar (nav.bd-docs-nav) links."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str]] = []   # (tag, address)
        self.texts: dict[str, list[str]] = {"title": [], "h1": [], "h2": [], "sidebar": []}
        self._open: list[list[str]] = []          # [kind, tag, text so far] of the elements being read
        self._in_sidebar = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        self.links += [(tag, attrs[name]) for name in ("href", "src") if attrs.get(name) is not None]
        if tag == "nav":
            self._in_sidebar = "bd-docs-nav" in classes
        if "headerlink" in classes:  # the "#" after a heading is not part of its text
            self._open.append(["skip", tag, ""])
        elif tag in ("title", "h1", "h2") or (tag == "a" and self._in_sidebar):
            self._open.append([tag if tag != "a" else "sidebar", tag, ""])

    def handle_endtag(self, tag):
        if tag == "nav":
            self._in_sidebar = False
        if self._open and self._open[-1][1] == tag:
            kind, _, text = self._open.pop()
            if kind != "skip":
                self.texts[kind].append(" ".join(text.split()))

    def handle_data(self, data):
        if self._open and self._open[-1][0] != "skip":
            for element in self._open:
                element[2] += data


def read_page(path: Path) -> _LinksAndText:
    parser = _LinksAndText()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def chapter_titles(toc_pages) -> dict[str, str]:
    """Each numbered chapter page -> the title it must carry: "Chapter N: <the notebook's own heading>", N from
    the file name (chapters/03_sft -> 3); the preface comes before chapter 0 and has no number."""
    titles = {}
    for name in toc_pages:
        match = re.match(r"chapters/(\d\d)_", name)
        if match and name != "chapters/00_preface":
            heading = next(line for cell in nbformat.read(ROOT / f"{name}.ipynb", as_version=4).cells
                           if cell.cell_type == "markdown" for line in cell.source.splitlines() if line.startswith("# "))
            # the site sets apostrophes typographically (Sphinx's smartquotes): "model's" is shown as "model’s"
            titles[name] = f"Chapter {int(match.group(1))}: {heading.removeprefix('# ').strip()}".replace("'", "\u2019")
    return titles


def test_one_chapter_numbering_on_every_page_title_sidebar_and_the_home_page(built_site, toc_pages):
    """The chapters carry their notebooks' numbers (0-9), as the prose and the checks (`ch03.*`) do: the page's heading,
    its browser title, the sidebar and the home page's route all say "Chapter 3: ..." for chapters/03_sft, the
    exercise pages "Exercises 3: ..." with "Exercise 3.N: ..." under them, and no automatic number ("1.11.") is left."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    assert "numbered" not in str(toc), "Sphinx's own numbering counts toc entries, not the notebooks' numbers"
    titles = chapter_titles(toc_pages)
    assert [title.split(":")[0] for title in titles.values()] == [f"Chapter {n}" for n in range(len(titles))]
    route = read_page(built_site / "index.html").texts["sidebar"]  # the home page's sidebar; every page's is the same
    for name, title in titles.items():
        page = read_page(built_site / f"{name}.html")
        assert title in page.texts["h1"], (name, page.texts["h1"])
        assert page.texts["title"][0].startswith(title + " \u2014 "), (name, page.texts["title"])
    for name in toc_pages:
        page = read_page(built_site / f"{name}.html")
        sidebar = [text for text in page.texts["sidebar"] if text.startswith(("Chapter", "Exercises"))]
        assert sidebar == [text for text in route if text.startswith(("Chapter", "Exercises"))], name
        assert "section-number" not in (built_site / f"{name}.html").read_text(), f"{name}: an automatic number"
        if name not in titles:
            assert not any(text.startswith("Chapter") for text in page.texts["h1"] + page.texts["title"]), name
        exercises = re.match(r"exercises/(\d\d)_", name)
        if exercises:
            number = int(exercises.group(1))
            assert page.texts["h1"][0].startswith(f"Exercises {number}: "), (name, page.texts["h1"])
            assert page.texts["title"][0].startswith(f"Exercises {number}: "), (name, page.texts["title"])
            headings = [text for text in page.texts["h2"] if text.startswith("Exercise ")]
            assert headings and all(text.startswith(f"Exercise {number}.") for text in headings), (name, headings)
    assert [text for text in route if text.startswith("Chapter")] == list(titles.values())
    # the home page's route through the book: every chapter, in toc order, under the same title
    body = (built_site / "index.html").read_text()
    main = body[body.index('<main'):]
    linked = [html.unescape(re.sub(r"<[^>]+>", "", text)) for href, text in
              re.findall(r'<a class="reference internal" href="([^"]+)"[^>]*>(.*?)</a>', main, re.S)
              if href.removesuffix(".html") in titles]
    assert linked == list(titles.values()), linked


def test_every_internal_link_resolves_to_a_file(built_site):
    """Every href and src of every page of the built site that points into the site (a relative address, or one
    that starts with /) names a file that is there: no dead link such as a PDF that only `make pdf` writes."""
    missing = []
    pages = sorted(built_site.rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        if page.relative_to(built_site).parts[0] in ("_static", "_sources"):
            continue  # templates and copies of sources, not pages
        for tag, address in read_page(page).links:
            parts = urlsplit(address)
            if parts.scheme or parts.netloc or not parts.path:  # another site, mailto:, data:, or "#anchor" only
                continue
            path = unquote(parts.path)
            target = (built_site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
            target = target.resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(built_site.resolve()) or not target.is_file():
                missing.append(f"{page.relative_to(built_site)}: <{tag}> {address}")
    assert not missing, f"{len(missing)} internal links lead nowhere:\n" + "\n".join(sorted(set(missing))[:40])


def test_every_page_has_a_favicon_and_a_footer_with_licence_version_and_build_date(site_pages):
    from dftlab import __version__

    for page in site_pages:
        text = page.read_text()
        assert re.search(r'<link rel="icon" href="[^"]*_static/favicon\.svg"', text), page.name
        footer = text[text.index('<footer class="bd-footer-content">'):]
        footer = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", footer[:footer.index("</footer>")])))
        assert "CC BY 4.0" in footer and "MIT" in footer, (page.name, footer)
        assert f"dftlab {__version__}" in footer, (page.name, footer)
        assert re.search(r"on \d{4}-\d{2}-\d{2}\.", footer), (page.name, footer)


def test_every_image_file_exists_and_has_alt_text(site_pages):
    for page in site_pages:
        for tag in re.findall(r"<img [^>]*>", page.read_text()):
            src = re.search(r'src="([^"]+)"', tag).group(1)
            alt = (re.search(r'alt="([^"]*)"', tag) or [None, ""])[1]
            assert (page.parent / src).resolve().exists(), f"{page.name}: missing {src}"
            # docutils falls back to the file name when a cell has no `mystnb: image: alt:` metadata
            has_alt_text = bool(alt.strip()) and Path(alt).name != Path(src).name
            assert has_alt_text, f"{page.name}: the image {src} has no alt text; see `python tools/figure_alt_text.py --check`"


def test_widget_and_maths_scripts_are_served_from_the_site(built_site, site_pages):
    for page in site_pages:
        html = page.read_text()
        for script in re.findall(r'<script[^>]+src="([^"]+)"', html):
            assert not any(host in script for host in CDN_HOSTS), f"{page.name} loads {script} from a CDN"
            local = (page.parent / script.split("?")[0]).resolve()
            assert "://" in script or local.exists(), f"{page.name}: {script} is not on the site"
        assert "application/vnd.jupyter.widget-state+json" not in html, f"{page.name}: ipywidgets cannot redraw on the site"
    assert (built_site / "_mathjax" / "tex-mml-chtml.js").exists()
    for name in ("vega", "vega-lite", "vega-embed"):  # the explorers' scripts, loaded by _static/dftlab.js
        assert (built_site / "_vega" / f"{name}.min.js").exists(), name


def test_widget_scripts_are_linked_relative_to_each_page(built_site, site_pages):
    """A page one folder down (chapters/x.html) must climb back to the site root to reach _widgets/."""
    for page in site_pages:
        depth = len(page.relative_to(built_site).parts) - 1
        for script in re.findall(r'src="([^"]*_(?:widgets|mathjax)/[^"]+)"', page.read_text()):
            resolved = (page.parent / script.split("?")[0]).resolve()
            assert resolved.is_relative_to(built_site.resolve()), f"{page}: {script} leaves the site"
            assert script.count("../") >= depth, f"{page}: {script}"


def test_no_cell_output_is_a_traceback(site_pages):
    for page in site_pages:
        assert "Traceback (most recent call last)" not in page.read_text(), page


def test_launch_buttons_use_the_one_repository_url(built_site, toc_pages):
    """Colab and Binder links are built from `repository.url` in _config.yml, and nothing else names a repository."""
    owner_and_name = CONFIG["repository"]["url"].removeprefix("https://github.com/")
    branch = CONFIG["repository"]["branch"]
    chapter = next(name for name in toc_pages if name.startswith("chapters/0"))
    html = (built_site / f"{chapter}.html").read_text()
    assert f"colab.research.google.com/github/{owner_and_name}/blob/{branch}/{chapter}.ipynb" in html
    assert f"mybinder.org/v2/gh/{owner_and_name}/{branch}?urlpath=lab/tree/{chapter}.ipynb" in html


def load_site_tool():
    spec = importlib.util.spec_from_file_location("site_tool", ROOT / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_colab_install_cells_name_the_configured_repository(toc_pages):
    """Each chapter's hidden Colab cell pip-installs dftlab from a git URL; it must match `repository.url`."""
    url = CONFIG["repository"]["url"]
    for path in chapter_notebooks(toc_pages):
        for found in re.findall(r"git\+(https://[^\s\"'\\@]+)", path.read_text()):
            assert found.removesuffix(".git") == url, f"{path.name} installs from {found}; _config.yml says {url}"


def test_every_install_line_comes_from_config_yml():
    """The one install command (dftlab.course.install, from `repository.url`/`branch`) is what every Colab cell, README.md
    and the student zip's README say; `python tools/site.py sync-install` rewrites them after a change."""
    from dftlab.course import install, exercises

    config = ROOT / "_config.yml"
    command = install.install_command(config)
    assert command == f'pip install "dftlab @ git+{CONFIG["repository"]["url"]}@{CONFIG["repository"]["branch"]}"'
    stale = load_site_tool().sync_install(check=True)
    assert not stale, (f"out of step with _config.yml: {[str(p.relative_to(ROOT)) for p in stale]}; "
                       f"run `python tools/site.py sync-install`")
    notebooks = [path for folder in ("chapters", "solutions", "exercises") for path in (ROOT / folder).glob("*.ipynb")]
    assert len(notebooks) >= 19
    for path in notebooks:
        cell = next(cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")
        assert cell.source == install.colab_cell_source(config), path
        assert "remove-cell" in cell.metadata.get("tags", []), path
        assert install.install_requirement(config) in cell.source
    readme = (ROOT / "README.md").read_text()
    assert install.readme_install_block(config) in readme
    assert not re.search(r"^\s*pip install dftlab\s*$", readme, re.M), "dftlab is not on PyPI"
    student = exercises.student_readme(["* `01_x.ipynb`: X"], "dftlab-0.1.0-py3-none-any.whl", config)
    assert command.removeprefix("pip install ") in student
    assert "pip install torch==2.13.0 && pip install ./dftlab-0.1.0-py3-none-any.whl" in student


def test_a_fork_changes_only_config_yml(tmp_path):
    """After editing `repository` in _config.yml, sync-install rewrites only the Colab cell of each notebook and
    the README's block, and keeps the notebook's JSON layout, so the diff is that one cell's source."""
    site = load_site_tool()
    for folder in ("chapters", "solutions", "exercises"):
        (tmp_path / folder).mkdir()
    chapter = ROOT / "chapters" / "01_token_distributions.ipynb"
    (tmp_path / "chapters" / chapter.name).write_bytes(chapter.read_bytes())
    (tmp_path / "README.md").write_text((ROOT / "README.md").read_text())
    (tmp_path / "_config.yml").write_text((ROOT / "_config.yml").read_text().replace(
        f"url: {CONFIG['repository']['url']}", "url: https://github.com/a-fork/dftlab").replace(
        f"branch: {CONFIG['repository']['branch']}", "branch: course-2027"))
    assert site.sync_install(root=tmp_path) == [tmp_path / "chapters" / chapter.name, tmp_path / "README.md"]
    assert site.sync_install(root=tmp_path, check=True) == []
    old, new = chapter.read_text().splitlines(), (tmp_path / "chapters" / chapter.name).read_text().splitlines()
    assert len(old) == len(new)
    changed = [(a, b) for a, b in zip(old, new) if a != b]
    assert len(changed) == 1 and "git+https://github.com/a-fork/dftlab@course-2027" in changed[0][1]
    assert 'pip install "dftlab @ git+https://github.com/a-fork/dftlab@course-2027"' in (tmp_path / "README.md").read_text()


def test_every_chapter_states_prerequisites_and_time_to_run(toc_pages):
    for path in chapter_notebooks(toc_pages):
        opening = " ".join(cell.source for cell in nbformat.read(path, as_version=4).cells[:4]
                           if cell.cell_type == "markdown")
        assert "Prerequisites" in opening and "Time to run" in opening, path.name


def test_every_widget_has_a_static_figure_beside_it(toc_pages):
    """Sliders cannot redraw on the website, so the code cell before or after a widget draws the same figure."""
    for path in chapter_notebooks(toc_pages):
        code = [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
        for index, source in enumerate(code):
            if re.search(r"^widgets\.\w+\(", source, re.M):
                neighbours = code[max(index - 1, 0):index] + code[index + 1:index + 2]
                assert any("plots.plot_" in other for other in neighbours), f"{path.name}: {source.splitlines()[0]}"


def test_print_twins_are_hidden_on_screen_and_kept_on_paper(built_site, toc_pages):
    """A cell tagged dftlab-print-twin draws an explorer's figure at fixed settings for paper; on screen the reader
    sees the explorer only (the rule is in _static/reading.css), so the built page must carry the tag's class."""
    css = (ROOT / "_static" / "reading.css").read_text()
    assert re.search(r"@media screen\s*\{\s*\.tag_dftlab-print-twin\s*\{\s*display:\s*none", css)
    twins = 0
    for path in chapter_notebooks(toc_pages):
        tagged = [c for c in nbformat.read(path, as_version=4).cells if "dftlab-print-twin" in c.metadata.get("tags", [])]
        if tagged:
            page = (built_site / "chapters" / (path.stem + ".html")).read_text()
            assert page.count("tag_dftlab-print-twin") >= len(tagged), path.name
            twins += len(tagged)
    assert twins >= 4


def test_config_executes_through_the_cache_and_stops_on_errors():
    execute = CONFIG["execute"]
    assert execute["execute_notebooks"] == "cache" and execute["raise_on_error"] and not execute["allow_errors"]
    assert 90 <= execute["timeout"] <= 300  # per cell; a chapter's budget is 90 s
    assert CONFIG["only_build_toc_files"]


def test_alt_text_tool_writes_cell_metadata_and_rejects_ambiguous_snippets():
    tool = load_alt_text_tool()
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("ax = plots.plot_zipf(texts)", metadata={"tags": ["keep"]}),
        nbformat.v4.new_code_cell("print(1)"),
    ])
    notebook.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo="})]
    assert tool.figure_cells_without_alt_text(notebook) == ["ax = plots.plot_zipf(texts)"]
    assert tool.set_alt_text(notebook, {"plot_zipf(": "A log-log plot."}) == 1
    assert notebook.cells[0].metadata == {"tags": ["keep"], "mystnb": {"image": {"alt": "A log-log plot."}}}
    assert tool.figure_cells_without_alt_text(notebook) == []
    assert tool.set_alt_text(notebook, {"plot_zipf(": "A log-log plot."}) == 0  # idempotent
    with pytest.raises(ValueError, match="2 code cells contain"):
        tool.set_alt_text(notebook, {"(": "text"})
    with pytest.raises(ValueError, match="alt text for"):
        tool.set_alt_text(notebook, {"print": " "})


def test_alt_text_tool_names_existing_cells():
    """Every snippet in the mapping finds exactly one cell of its notebook (else the tool would stop)."""
    tool = load_alt_text_tool()
    for path, alt_texts in tool.ALT_TEXT.items():
        if not (ROOT / path).exists():
            continue
        notebook = nbformat.read(ROOT / path, as_version=4)
        for snippet in alt_texts:
            tool.find_cell(notebook, snippet, path)


def test_the_bibliography_lists_every_cited_work(built_site, toc_pages):
    sources = [(ROOT / "index.md").read_text()] + [path.read_text() for path in chapter_notebooks(toc_pages)]
    cited = {key.strip() for text in sources for keys in re.findall(r"\{cite[a-z:]*\}`([^`]+)`", text)
             for key in keys.split(",")}
    bib = (ROOT / "references.bib").read_text()
    page = html.unescape(re.sub(r"<[^>]+>", "", (built_site / "chapters" / "bibliography.html").read_text())).lower()
    assert cited, "no {cite} in the sources: did the citation syntax change?"
    for key in sorted(cited):
        entry = re.search(rf"@\w+\{{{re.escape(key)},(.*?)\n\}}", bib, re.S)
        assert entry, f"{{cite}}`{key}` is not in references.bib"
        title = re.search(r"^\s*title\s*=\s*\{(.+)\},?\s*$", entry.group(1), re.M).group(1)
        first_words = " ".join(title.replace("{", "").replace("}", "").lower().split()[:4])
        assert first_words in page, f"the bibliography page does not list {key} ({first_words}...)"


# Chapters whose exercises are still another chapter's (tests/system/test_course_structure.py names where): no exercises
# page of their own under them, and their closing line links the page that holds their exercises.
EXERCISES_ELSEWHERE: set[str] = set()  # chapters whose exercises live in another chapter's notebook


def test_each_chapter_has_its_exercises_under_it_and_the_student_site_hides_the_solutions(built_site):
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            name = chapter["file"]
            if name in EXERCISES_ELSEWHERE:
                assert not (ROOT / "exercises" / f"{name.removeprefix('chapters/')}.ipynb").exists(), \
                    f"{name} has an exercises notebook now: list it under the chapter and drop it from EXERCISES_ELSEWHERE"
            elif re.match(r"chapters/0[1-9]", name):
                topic = name.removeprefix("chapters/")
                assert [section["file"] for section in chapter.get("sections", [])] == [f"exercises/{topic}"], name
                assert (built_site / f"exercises/{topic}.html").exists()
    assert not (built_site / "solutions").exists()


def test_the_instructor_toc_puts_each_solution_after_its_exercise():
    spec = importlib.util.spec_from_file_location("site_tool", ROOT / "tools" / "site.py")
    site_tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(site_tool)
    pages = []
    for part in yaml.safe_load(site_tool.instructor_toc().read_text())["parts"]:
        for chapter in part["chapters"]:
            pages += [section["file"] for section in chapter.get("sections", [])]
    exercise_pages = [page for page in pages if page.startswith("exercises/")]
    assert exercise_pages and pages == [page for exercise in exercise_pages
                                        for page in (exercise, exercise.replace("exercises/", "solutions/"))]


def test_every_chapter_links_to_its_exercises(toc_pages):
    for path in chapter_notebooks(toc_pages):
        if f"chapters/{path.stem}" in EXERCISES_ELSEWHERE:
            assert "{doc}`../exercises/" in path.read_text(), f"{path.name} does not link the exercises that hold its own"
        elif re.match(r"0[1-9]_", path.name):
            assert f"{{doc}}`../exercises/{path.stem}`" in path.read_text(), f"{path.name} does not link its exercises"
