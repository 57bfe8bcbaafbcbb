"""The book builds warning-free (`jupyter-book build . -W -n --keep-going`) and every page is there.

The build here renders the stored outputs of the notebooks; nbval (run by the same `make test`) has
already executed each notebook and compared its outputs, so executing them a second time would only
double the time. `make book` executes them, through the execution cache.
"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "test-site"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            files.append(chapter["file"])
            files += [section["file"] for section in chapter.get("sections", [])]
    return files


@pytest.fixture(scope="session")
def built_site():
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "site.py"), "build", "--no-execute",
                             "--output", str(SITE)], capture_output=True, text=True, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, "book build failed:\n" + log[-6000:]
    assert not re.search(r"WARNING|ERROR", log), "the build printed warnings:\n" + log[-6000:]
    return SITE / "_build" / "html"


def test_every_toc_page_is_rendered(built_site):
    for name in toc_files():
        assert (built_site / f"{name}.html").exists(), name


def test_chapter_1_has_its_figures(built_site):
    page = (built_site / "chapters" / "01_token_distributions.html").read_text()
    images = re.findall(r'<img[^>]+src="([^"]+)"', page)
    assert len(images) >= 4
    for src in images:
        assert (built_site / "chapters" / src).resolve().exists(), src


def test_widget_scripts_are_served_from_the_site(built_site):
    page = (built_site / "chapters" / "01_token_distributions.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in page
    for script in ["require.js", "embed-amd.js"]:
        assert f"_widgets/{script}" in page
        assert (built_site / "_widgets" / script).exists()
    assert "unpkg.com" not in page and "cdn.jsdelivr.net" not in page


def test_no_cell_output_is_a_traceback(built_site):
    for page in built_site.rglob("*.html"):
        assert "Traceback (most recent call last)" not in page.read_text(), page
