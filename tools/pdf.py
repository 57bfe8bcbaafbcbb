"""The whole course as one PDF, for offline and print readers: `make pdf` -> _build/pdf/dftlab.pdf.

    python tools/pdf.py [--output _build/pdf/dftlab.pdf]

1. jupyter-book's `singlehtml` builder renders every page of _toc.yml into one HTML page, from the notebooks'
   stored outputs (nothing is executed: `make test` has checked that they reproduce), warning-free as the site.
2. Chromium, the browser the tests already drive through Playwright (Debian's /usr/bin/chromium), opens that page
   from a server on localhost, waits for the explorers to draw, and prints it to PDF. Nothing leaves the machine.

The website does not link the PDF (`make book` does not build it: a second whole build); its home page says that
`make pdf` prints it, and tests/system/test_book.py fails on any link of the site that leads to no file.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import importlib.util
import os
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"


def _site_tool():
    spec = importlib.util.spec_from_file_location("site_tool", ROOT / "tools" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_single_page(output: Path) -> Path:
    """Render the book into one HTML page (stored outputs, warnings are errors); returns its index.html."""
    site = _site_tool()
    site.fetch_site_scripts()
    config = (ROOT / "_config.yml").read_text()
    config_path = ROOT / "_build" / "_config.pdf.yml"
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config = config.replace("execute_notebooks: cache", 'execute_notebooks: "off"')
    # myst-nb draws a cell tagged hide-output (a prediction's answer) as a fold for the html builder only; on paper
    # nothing can be unfolded, so the single page shows such outputs as they are (tools/pdf_fold.py).
    extension = "    - sphinx_exercise\n"
    if extension not in config:
        sys.exit("tools/pdf.py: _config.yml no longer lists sphinx_exercise under sphinx.extra_extensions; update "
                 "where tools/pdf.py adds its own extension.")
    config = config.replace(extension, extension + "    - pdf_fold\n", 1)
    config_path.write_text(config)
    command = [sys.executable, "-c", site.JUPYTER_BOOK, "build", str(ROOT), "--builder", "singlehtml", "-W", "-n",
               "--keep-going", "--config", str(config_path), "--path-output", str(output)]
    env = site.build_env()  # tools/ on the path: dftlab_book (as the website) and pdf_fold
    status = subprocess.call(command, env=env, cwd=ROOT)
    if status != 0:
        sys.exit(f"the single-page build failed (exit {status}); see the warnings above")
    page = output / "_build" / "singlehtml" / "index.html"
    if not page.exists():
        sys.exit(f"the single-page build wrote no {page}")
    return page


def print_to_pdf(page: Path, pdf: Path) -> Path:
    """Serve `page`'s folder on localhost, open it in Chromium, and print it to `pdf` (A4, with backgrounds)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing; install Debian's chromium (`python tools/site.py browser-deps`).")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(page.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    pdf.parent.mkdir(parents=True, exist_ok=True)
    partial = pdf.with_suffix(".pdf.tmp")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--no-first-run"])
            tab = browser.new_page()
            tab.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                f"http://127.0.0.1:{server.server_port}") or route.request.url.startswith("data:") else route.abort())
            tab.goto(f"http://127.0.0.1:{server.server_port}/{page.name}", wait_until="networkidle", timeout=120_000)
            tab.wait_for_timeout(2_000)  # the explorers draw after the page has loaded
            tab.emulate_media(media="print")
            tab.pdf(path=str(partial), format="A4", print_background=True,
                    margin={"top": "16mm", "bottom": "16mm", "left": "14mm", "right": "14mm"})
            browser.close()
        os.replace(partial, pdf)  # never a half-written PDF under the real name
    finally:
        server.shutdown()
        if partial.exists():
            partial.unlink()
    return pdf


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=ROOT / "_build" / "pdf" / "dftlab.pdf")
    args = parser.parse_args(argv)
    page = build_single_page(ROOT / "_build" / "pdf-html")
    pdf = print_to_pdf(page, args.output)
    print(f"wrote {pdf} ({pdf.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
