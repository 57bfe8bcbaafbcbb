"""The website works in a real browser: every page loads cleanly, offline, and reads as intended.

Headless Chromium (Debian's, installed by `python tools/site.py browser-deps`) opens the site that
`built_site` (tests/conftest.py) built, served by a local http.server. Every request that leaves
127.0.0.1 is blocked and reported, so the site must bring its own scripts (widgets, MathJax).
A screenshot of each page lands in _build/screenshots/ for a human to look at.
"""
import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'

# JavaScript run in the page once it has loaded. A widget counts as drawn when the html-manager has put a
# populated div.widget-subarea just before its view script (that is where it draws, see @jupyter-widgets/html-manager).
IS_DRAWN = """view => {
    const area = view.previousElementSibling;
    return area !== null && area.classList.contains('widget-subarea') && area.querySelector('.lm-Widget') !== null;
}"""
WIDGETS_DRAWN = f"() => [...document.querySelectorAll('{WIDGET_VIEW}')].every({IS_DRAWN})"
PAGE_REPORT = f"""() => ({{
    views: document.querySelectorAll('{WIDGET_VIEW}').length,
    undrawnWidgets: [...document.querySelectorAll('{WIDGET_VIEW}')].filter(view => !({IS_DRAWN})(view)).length,
    brokenImages: [...document.images].filter(img => !(img.complete && img.naturalWidth > 0))
                                      .map(img => img.getAttribute('src').slice(0, 80)),
    mathElements: document.querySelectorAll('.math').length,
    unrenderedMath: [...document.querySelectorAll('.math')].filter(el => !el.querySelector('mjx-container'))
                                                          .map(el => el.textContent.slice(0, 60)),
    mathErrors: [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
                    .map(el => el.getAttribute('data-mjx-error') || el.textContent.slice(0, 60)),
    tracebacks: [...document.querySelectorAll('.cell_output')].filter(out =>
        out.querySelector('.traceback, .output.error') || out.innerText.includes('Traceback (most recent call last)')).length,
}})"""


@pytest.fixture(scope="module")
def site_url(built_site):
    handler = functools.partial(QuietHandler, directory=str(built_site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # one line per request would bury pytest's report
        pass


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `python tools/site.py browser-deps` (as root)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


class WatchedPage:
    """A browser tab that records console errors, uncaught exceptions, failed loads and any off-site request."""

    def __init__(self, browser, site_url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.context.route("**/*", self._only_this_site)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda message: message.type == "error" and self.problems.append(
            f"console error: {message.text[:300]}"))
        self.page.on("pageerror", lambda error: self.problems.append(f"uncaught exception: {str(error)[:300]}"))
        self.page.on("response", lambda response: response.status >= 400 and self.problems.append(
            f"HTTP {response.status} for {response.url}"))
        self.site_host = urlsplit(site_url).netloc

    def _only_this_site(self, route):
        url = urlsplit(route.request.url)
        if url.scheme in ("http", "https") and url.netloc != self.site_host:
            self.problems.append(f"off-site request (the site must work offline): {route.request.url[:200]}")
            route.abort()
        else:
            route.continue_()

    def take_problems(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser, site_url):
    watched = WatchedPage(browser, site_url)
    yield watched
    watched.close()


def settle(page) -> dict:
    """Wait for MathJax, the widgets and the images, then report what the page shows."""
    page.evaluate("() => window.MathJax?.startup?.promise ? MathJax.startup.promise.then(() => true) : true")
    try:
        page.wait_for_function(WIDGETS_DRAWN, timeout=20_000)
        page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=10_000)
    except Exception:  # a timeout here is reported below, with the details of what is missing
        pass
    return page.evaluate(PAGE_REPORT)


def test_every_page_loads_cleanly_and_renders_its_maths_widgets_and_images(built_site, site_pages, site_url, tab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, math_elements = [], 0
    for name in [page.relative_to(built_site).as_posix() for page in site_pages]:
        tab.page.goto(site_url + name, wait_until="load")
        report = settle(tab.page)
        tab.page.screenshot(path=str(SCREENSHOTS / (name.replace("/", "__").removesuffix(".html") + ".png")),
                            full_page=True)
        math_elements += report["mathElements"]
        found = tab.take_problems()
        if report["undrawnWidgets"]:
            found.append(f"{report['undrawnWidgets']} of {report['views']} widgets were not drawn")
        if report["brokenImages"]:
            found.append(f"images that did not load: {report['brokenImages']}")
        if report["unrenderedMath"]:
            found.append(f"maths MathJax did not typeset: {report['unrenderedMath'][:5]}")
        if report["mathErrors"]:
            found.append(f"TeX errors: {report['mathErrors'][:5]}")
        if report["tracebacks"]:
            found.append(f"{report['tracebacks']} cell outputs show a traceback")
        problems += [f"{name}: {problem}" for problem in found]
    assert not problems, "\n".join(problems)
    assert math_elements > 0, "no page has maths: did the math markup (class 'math') change?"


def test_previous_and_next_links_walk_the_book_in_toc_order(site_url, tab, toc_pages):
    expected = [f"{name}.html" for name in toc_pages]

    def walk(start: str, link: str) -> list[str]:
        tab.page.goto(site_url + start, wait_until="domcontentloaded")
        visited = [start]
        while tab.page.locator(f"a.{link}").count() and len(visited) <= len(expected):
            with tab.page.expect_navigation(wait_until="domcontentloaded"):
                tab.page.locator(f"a.{link}").first.click()
            visited.append(urlsplit(tab.page.url).path.removeprefix("/"))
        return visited

    assert walk(expected[0], "right-next") == expected
    assert walk(expected[-1], "left-prev") == expected[::-1]


def test_search_finds_the_chapter_on_entropy(site_url, tab):
    tab.page.goto(site_url + "search.html?q=entropy", wait_until="load")
    tab.page.wait_for_selector("#search-results li", timeout=20_000)
    results = tab.page.eval_on_selector_all("#search-results li a", "links => links.map(a => a.getAttribute('href'))")
    assert any("01_token_distributions" in href for href in results), results
    assert not tab.take_problems()
