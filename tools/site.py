"""Build the course website and set up its browser check (called by `make book` and `make test`).

    python tools/site.py build [--no-execute] [--output DIR]   # fetch site scripts, then jupyter-book build -W -n --keep-going
    python tools/site.py build --instructor                     # the same, with each chapter's solutions after its
                                                                # exercises and the rubrics page (instructor/rubrics)
    python tools/site.py fetch-scripts                          # only fetch the scripts the site serves itself
    python tools/site.py browser-deps                           # install Debian's chromium if it is missing (tests need it)
    python tools/site.py sync-install [--check]                 # rewrite every install line from _config.yml's repository

The build puts tools/ on the Python path for the course's Sphinx extension, tools/dftlab_book.py (listed in
_config.yml): it writes "Chapter N: " before each chapter's title (the notebooks' numbers, 0 to 9) and gives the
footer (_templates/extra-footer.html) dftlab's version and the build date. After a build that succeeds, it writes
the instructors' slide deck (tools/slides.py: the chapters' key figures, one per slide) into the site, at
`_slides/dftlab-slides.html`, which the page instructor/slides links to.

`sync-install` writes the one install command (`dftlab.course.install`, built from `repository.url` and `branch` in
_config.yml) into the hidden Colab cell of every chapter, solution and exercise notebook and into README.md's
install block; the student zip's README is generated from the same function. `--check` only lists what is out
of step (exit 1), as tests/system/test_book.py does.

The website works offline: it loads no script from a CDN. Pinned npm packages supply what myst-nb, Sphinx
and the explorers would otherwise take from cdn.jsdelivr.net and cdnjs:

- vega, vega-lite and vega-embed (their UMD builds, 0.8 MB together) draw the explorers (`dftlab.widgets`):
  Vega-Lite charts whose sliders recompute the figure in the page, with no kernel. They go to `_vega/`, and
  `_static/dftlab.js` loads them only on a page that has an explorer. (The ipywidgets html-manager, 3.5 MB on
  every page with a widget, is gone: the chapters show no ipywidgets, whose Python callbacks never ran here.)
- MathJax 3 (`tex-mml-chtml.js`, its fonts and the TeX extensions it loads on demand) goes to `_mathjax/`.

`npm pack` fetches each tarball into `_build/site_extra/`, which Sphinx copies to the site root through
`html_extra_path` (see `_config.yml`, which also points `nb_ipywidgets_js` and `mathjax_path` there).
They are deliberately not in `_static/`: Jupyter Book would add every `_static/*.js` to every page and
the widgets would be drawn twice.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_EXTRA = ROOT / "_build" / "site_extra"


def _vega_build(name: str):
    """The minified UMD bundle `build/<name>.min.js` of a Vega package (it sets window.vega, vegaLite, vegaEmbed)."""
    def destination(member: str) -> str | None:
        return f"_vega/{name}.min.js" if member == f"package/build/{name}.min.js" else None
    return destination


def _mathjax(member: str) -> str | None:
    # tex-mml-chtml.js is what Sphinx loads; it fetches fonts and rarer TeX extensions from its own folder later.
    path = member.removeprefix("package/es5/")
    if path == member:
        return None
    if path == "tex-mml-chtml.js" or path.startswith(("output/chtml", "input/tex/extensions/", "ui/", "a11y/", "sre/")):
        return f"_mathjax/{path}"
    return None


# npm package spec -> which files of its tarball the site serves, and where (None: leave it out)
NPM_PACKAGES = {
    "vega@5.33.0": _vega_build("vega"),
    "vega-lite@5.23.0": _vega_build("vega-lite"),
    "vega-embed@6.29.0": _vega_build("vega-embed"),
    "mathjax@3.2.2": _mathjax,
}
STAMP = ROOT / "_build" / "site_extra.npm-packages.txt"  # beside the folder, so the site does not serve it


def fetch_site_scripts() -> None:
    """Fill `_build/site_extra/` from the pinned npm packages, unless it already holds exactly these versions."""
    wanted = "\n".join(NPM_PACKAGES) + "\n"
    if SITE_EXTRA.is_dir() and STAMP.exists() and STAMP.read_text() == wanted:
        return
    if shutil.which("npm") is None:
        sys.exit("npm is needed to fetch the website's scripts (Vega for the explorers, MathJax); install Node.js "
                 "(apt-get install nodejs npm) and rerun")
    (ROOT / "_build").mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=ROOT / "_build"))
    try:
        files = staging / "files"
        for spec, destination_of in NPM_PACKAGES.items():
            result = subprocess.run(["npm", "pack", spec, "--silent", "--pack-destination", str(staging)],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"`npm pack {spec}` failed (is the npm registry reachable?):\n{result.stderr}")
            with tarfile.open(staging / result.stdout.strip().splitlines()[-1]) as tar:
                for member in tar.getmembers():
                    destination = destination_of(member.name) if member.isfile() else None
                    if destination is not None:
                        member.name = destination
                        tar.extract(member, files, filter="data")
        shutil.rmtree(SITE_EXTRA, ignore_errors=True)
        files.rename(SITE_EXTRA)
        STAMP.write_text(wanted)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# jupyter-book in a fresh interpreter, with one fix to Sphinx 7.4 (the newest that jupyter-book 1.x allows): it
# writes every inline script that an extension adds after the builder starts twice, and the second copy of
# sphinx-thebe's `const THEBE_JS_URL` throws on every page. Sphinx 8.2 fixed it the same way
# (sphinx-doc/sphinx#13402): an inline script's missing file name becomes "" on both paths, so they match.
JUPYTER_BOOK = """
from sphinx.builders.html import StandaloneHTMLBuilder
add_js_file = StandaloneHTMLBuilder.add_js_file
StandaloneHTMLBuilder.add_js_file = lambda self, filename, **kwargs: add_js_file(self, filename or "", **kwargs)
from jupyter_book.cli.main import main
main()
"""


# Pages of the "For instructors" part that only the instructor edition shows, after the page named here.
INSTRUCTOR_ONLY_AFTER = "instructor/exercise_plan"
INSTRUCTOR_ONLY = ("instructor/rubrics",)


def instructor_toc() -> Path:
    """Write `_build/_toc.instructor.yml`: _toc.yml with `solutions/NN_x` placed right after each `exercises/NN_x`,
    and the rubrics and model answers (INSTRUCTOR_ONLY) after the exercise plan."""
    lines = []
    for line in (ROOT / "_toc.yml").read_text().splitlines():
        lines.append(line)
        if line.strip().startswith("- file: exercises/"):
            lines.append(line.replace("exercises/", "solutions/"))
        if line.strip() == f"- file: {INSTRUCTOR_ONLY_AFTER}":  # the rubrics give the written answers away
            lines += [line.replace(INSTRUCTOR_ONLY_AFTER, page) for page in INSTRUCTOR_ONLY]
    if not any("solutions/" in line for line in lines):
        sys.exit("_toc.yml lists no exercises/ page, so the instructor edition would have no solutions; "
                 "add each chapter's exercises page under it in _toc.yml")
    toc_path = ROOT / "_build" / "_toc.instructor.yml"
    toc_path.parent.mkdir(exist_ok=True)
    toc_path.write_text("\n".join(lines) + "\n")
    return toc_path


def build(execute: bool = True, output: Path | None = None, instructor: bool = False) -> int:
    """`jupyter-book build . -W -n --keep-going`; warnings are errors.

    With execute=False the stored notebook outputs are rendered as they are (the tests do this, since
    nbval has already executed every notebook); `make book` executes them through the cache.
    With instructor=True the site also holds the solutions (the student site, the default, hides them).
    """
    fetch_site_scripts()
    command = [sys.executable, "-c", JUPYTER_BOOK, "build", str(ROOT), "-W", "-n", "--keep-going"]
    if instructor:
        command += ["--toc", str(instructor_toc())]
    if not execute:
        config = (ROOT / "_config.yml").read_text()
        if "execute_notebooks: cache" not in config:
            sys.exit("--no-execute expects `execute_notebooks: cache` in _config.yml; update tools/site.py to match")
        config_path = ROOT / "_build" / "_config.no-execute.yml"
        config_path.write_text(config.replace("execute_notebooks: cache", 'execute_notebooks: "off"'))
        command += ["--config", str(config_path)]
    if output is not None:
        command += ["--path-output", str(output)]
    status = subprocess.call(command, env=build_env(), cwd=ROOT)
    if status == 0:  # the instructors' slide deck, from the chapters' stored figures (tools/slides.py)
        slides = _tool("slides")
        slides.write_deck((output or ROOT) / "_build" / "html" / slides.SITE_PATH)
    return status


def _tool(name: str):
    """A module of tools/, loaded from its file (tools/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"dftlab_tools_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def build_env() -> dict[str, str]:
    """The environment of a book build: the notebooks' (PYTHONHASHSEED, ...), and tools/ on the path for the
    course's own Sphinx extension, tools/dftlab_book.py (listed in _config.yml), which tools/pdf.py's build uses too."""
    env = dict(os.environ, **install_module().NOTEBOOK_ENV)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tools"), env.get("PYTHONPATH")]))
    return env


def install_module():
    """`src/dftlab/course/install.py`, loaded from its file: it needs only PyYAML, not torch (which `import dftlab` loads)."""
    spec = importlib.util.spec_from_file_location("dftlab_install", ROOT / "src" / "dftlab" / "course" / "install.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def colab_cell(notebook: dict, path: Path) -> dict:
    """The hidden Colab cell: the first code cell of a chapter, tagged remove-cell."""
    cell = next((c for c in notebook["cells"] if c["cell_type"] == "code"), None)
    if cell is None or "remove-cell" not in cell.get("metadata", {}).get("tags", []):
        raise ValueError(f"{path}: the first code cell must be the Colab install cell, tagged remove-cell")
    return cell


# Every notebook a learner may open in Colab starts with the install cell; exercises/ is generated from solutions/,
# so both are rewritten together (`python -m dftlab.course.exercises check` compares their sources).
NOTEBOOK_FOLDERS = ("chapters", "solutions", "exercises")


def sync_install(check: bool = False, root: Path = ROOT) -> list[Path]:
    """Rewrite the Colab cell of every notebook in NOTEBOOK_FOLDERS and README.md's install block from _config.yml.

    Only the Colab cell's `source` changes; the notebook is written back in Jupyter's own JSON layout (indent 1,
    UTF-8 unescaped, a final newline), so the diff is that one cell. Returns the files that were (with
    `check`: that would be) rewritten.
    """
    install = install_module()
    config = root / "_config.yml"
    source = install.colab_cell_source(config)
    changed = []
    for path in sorted(path for folder in NOTEBOOK_FOLDERS for path in (root / folder).glob("*.ipynb")):
        notebook = json.loads(path.read_text(encoding="utf-8"))
        cell = colab_cell(notebook, path)
        if "".join(cell["source"]) != source:
            cell["source"] = source.splitlines(keepends=True)
            changed.append(path)
            if not check:
                path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    readme = root / "README.md"
    text = readme.read_text(encoding="utf-8")
    updated = install.replace_readme_block(text, config)
    if updated != text:
        changed.append(readme)
        if not check:
            readme.write_text(updated, encoding="utf-8")
    return changed


def browser_deps() -> None:
    if Path("/usr/bin/chromium").exists():
        return
    if os.geteuid() != 0:
        sys.exit("Debian's chromium is missing; install it with `sudo apt-get install -y chromium` and rerun")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True,
                   env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "browser-deps", "fetch-scripts", "sync-install"])
    parser.add_argument("--no-execute", action="store_true", help="render the stored outputs without executing")
    parser.add_argument("--output", type=Path, default=None, help="output folder (default: _build)")
    parser.add_argument("--instructor", action="store_true", help="include the solutions after each exercise page")
    parser.add_argument("--check", action="store_true", help="sync-install: only list what is out of step (exit 1)")
    args = parser.parse_args()
    if args.command == "build":
        sys.exit(build(execute=not args.no_execute, output=args.output, instructor=args.instructor))
    elif args.command == "browser-deps":
        browser_deps()
    elif args.command == "sync-install":
        stale = sync_install(check=args.check)
        for path in stale:
            print(f"{'out of step' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
        if not stale:
            print("every install line matches _config.yml")
        sys.exit(1 if args.check and stale else 0)
    else:
        fetch_site_scripts()
