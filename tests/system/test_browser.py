"""The website works in a real browser: every page loads cleanly, offline, and reads as intended.

Headless Chromium (Debian's, installed by `python tools/site.py browser-deps`) opens the site that
`built_site` (tests/conftest.py) built, served by a local http.server. Every request that leaves
127.0.0.1 is blocked and reported, so the site must bring its own scripts (Vega, MathJax).
Every explorer (dftlab.widgets) is driven: each control is moved and the figure must change, and the
decoding explorer's entropy readout must agree with dftlab's own computation. Every chapter page must fit a
390 px phone screen and weigh at most 3 MB. On a phone (390 px, touch) and on a desktop (1280 px), in light and
dark mode, the menu button opens and closes the chapter list and the page-contents button its drawer, on every
page. Screenshots land in _build/screenshots/ for a human to look at: each page, each explorer before and after its
controls move, and the drawers open.
At 390 px (touch) and 1280 px, in light and dark mode: no "predict, then run" exercise shows its answer before the
reader opens it; every figure's text is at least 9 px as shown; chapter 7's study explorer keeps to what each
measure can take, names its metric and overlaps nothing. In print, as `make pdf` prints, no code or output is cut
at the page's edge and no scroll hint shows. Screenshots of each of these land in _build/screenshots/ too.
"""
import functools
import http.server
import json
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.slow  # drives the built website in a browser: `make test` only, not the fast tier

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]'
PHONE = {"width": 390, "height": 844}
PAGE_WEIGHT_LIMIT = 3_000_000  # bytes, uncompressed, of a chapter page with everything it loads
# ...plus, on a page with an explorer, Vega itself (vega, vega-lite, vega-embed: 0.8 MB, loaded only there): the
# price of figures that redraw in the page with no kernel. The theme's CSS and MathJax take most of the rest.
VEGA_SCRIPTS = ROOT / "_build" / "site_extra" / "_vega"

EXPLORERS_DRAWN = "() => [...document.querySelectorAll('.dftlab-explorer')].every(e => e.dataset.ready === 'true')"
PAGE_REPORT = f"""() => ({{
    widgetViews: document.querySelectorAll('{WIDGET_VIEW}').length,
    explorers: document.querySelectorAll('.dftlab-explorer').length,
    undrawnExplorers: [...document.querySelectorAll('.dftlab-explorer')].filter(e => e.dataset.ready !== 'true')
                                                                       .map(e => e.dataset.explorer),
    brokenImages: [...document.images].filter(img => img.getAttribute('src') && !(img.complete && img.naturalWidth > 0))
                                      .map(img => img.getAttribute('src').slice(0, 80)),
    mathElements: document.querySelectorAll('.math').length,
    unrenderedMath: [...document.querySelectorAll('.math')].filter(el => !el.querySelector('mjx-container'))
                                                          .map(el => el.textContent.slice(0, 60)),
    mathErrors: [...document.querySelectorAll('mjx-merror, [data-mjx-error]')]
                    .map(el => el.getAttribute('data-mjx-error') || el.textContent.slice(0, 60)),
    tracebacks: [...document.querySelectorAll('.cell_output')].filter(out =>
        out.querySelector('.traceback, .output.error') || out.innerText.includes('Traceback (most recent call last)')).length,
    bytes: [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
               .reduce((total, entry) => total + (entry.decodedBodySize || 0), 0),
}})"""
# The elements that stick out past the right edge of the screen (for the 390 px check's message).
TOO_WIDE = """width => [...document.querySelectorAll('.bd-article *')]
    .filter(el => el.getBoundingClientRect().right > width + 1 && el.offsetParent !== null
                  && !el.closest('.dftlab-scrolls, .dftlab-explorer, mjx-container, .table-wrapper, pre, .output'))
    .slice(0, 5).map(el => el.tagName.toLowerCase() + '.' + [...el.classList].join('.') + ': '
                     + (el.textContent || '').trim().slice(0, 60))"""
# Legibility of the figures: each notebook figure is SVG (or a bitmap of at least twice its shown size), and its
# smallest text, scaled to the size it is shown at, is at least 9 px.
# Figures as the reader sees them: an image with no layout box (a print twin, hidden on screen by reading.css) is
# not shown, so it is not measured here; on paper it is (test_on_paper_...).
FIGURES = """async () => Promise.all([...document.querySelectorAll('.cell_output img')]
    .filter(img => img.getClientRects().length > 0).map(async img => {
    const src = img.getAttribute('src');
    const shown = img.getBoundingClientRect().width;
    if (!src.endsWith('.svg')) return {src, svg: false, ratio: img.naturalWidth / shown};
    const text = await (await fetch(img.src)).text();
    const width = parseFloat(text.match(/<svg[^>]*width="([\\d.]+)pt"/)[1]);  // user units, as font sizes are
    const sizes = [...text.matchAll(/font(?:-size)?:[^;"]*?([\\d.]+)px/g)].map(m => parseFloat(m[1]));
    return {src, svg: true, smallest: sizes.length ? Math.min(...sizes) * shown / width : null};
}))"""


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

    def __init__(self, browser, site_url: str, mode: str | None = None, **context_options):
        context_options.setdefault("viewport", {"width": 1280, "height": 900})
        self.context = browser.new_context(**context_options)
        if mode:  # the reader's choice of light or dark, as pydata-sphinx-theme stores it
            self.context.add_init_script(f"localStorage.setItem('mode', '{mode}')")
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
    """Wait for MathJax, the explorers and the images, then report what the page shows."""
    page.evaluate("() => window.MathJax?.startup?.promise ? MathJax.startup.promise.then(() => true) : true")
    try:
        page.wait_for_function(EXPLORERS_DRAWN, timeout=30_000)
        page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=10_000)
    except Exception:  # a timeout here is reported below, with the details of what is missing
        pass
    return page.evaluate(PAGE_REPORT)


def screenshot_name(name: str) -> str:
    return name.replace("/", "__").removesuffix(".html")


def test_every_page_loads_cleanly_and_renders_its_maths_explorers_and_images(built_site, site_pages, site_url, tab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, math_elements, weights = [], 0, {}
    for name in [page.relative_to(built_site).as_posix() for page in site_pages]:
        tab.page.goto(site_url + name, wait_until="load")
        report = settle(tab.page)
        tab.page.screenshot(path=str(SCREENSHOTS / (screenshot_name(name) + ".png")), full_page=True)
        math_elements += report["mathElements"]
        weights[name] = report["bytes"]
        found = tab.take_problems()
        if report["widgetViews"]:
            found.append(f"{report['widgetViews']} ipywidgets views: the site cannot run their callbacks; "
                         "use an explorer from dftlab.widgets")
        if report["undrawnExplorers"]:
            found.append(f"explorers not drawn: {report['undrawnExplorers']}")
        if report["brokenImages"]:
            found.append(f"images that did not load: {report['brokenImages']}")
        if report["unrenderedMath"]:
            found.append(f"maths MathJax did not typeset: {report['unrenderedMath'][:5]}")
        if report["mathErrors"]:
            found.append(f"TeX errors: {report['mathErrors'][:5]}")
        if report["tracebacks"]:
            found.append(f"{report['tracebacks']} cell outputs show a traceback")
        limit = PAGE_WEIGHT_LIMIT + (sum(f.stat().st_size for f in VEGA_SCRIPTS.glob("*.js")) if report["explorers"] else 0)
        if name.startswith("chapters/") and report["bytes"] > limit:
            found.append(f"weighs {report['bytes'] / 1e6:.2f} MB uncompressed (limit {limit / 1e6:.2f} MB)")
        for figure in tab.page.evaluate(FIGURES):
            if not figure["svg"] and figure["ratio"] < 2:
                found.append(f"{figure['src']}: a bitmap at {figure['ratio']:.1f}x; figures are SVG or at least 2x")
            if figure["svg"] and figure["smallest"] is not None and figure["smallest"] < 9:
                found.append(f"{figure['src']}: text {figure['smallest']:.1f} px as shown (at least 9)")
        problems += [f"{name}: {problem}" for problem in found]
    (SCREENSHOTS / "page-weights.json").write_text(json.dumps(weights, indent=1))
    assert not problems, "\n".join(problems)
    assert math_elements > 0, "no page has maths: did the math markup (class 'math') change?"


def test_no_chapter_page_scrolls_sideways_on_a_phone(built_site, site_pages, site_url, tab):
    tab.page.set_viewport_size(PHONE)
    problems = []
    for name in [page.relative_to(built_site).as_posix() for page in site_pages]:
        tab.page.goto(site_url + name, wait_until="load")
        settle(tab.page)
        width = tab.page.evaluate("() => document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            tab.page.screenshot(path=str(SCREENSHOTS / (screenshot_name(name) + "-390px.png")))
            problems.append(f"{name}: {width} px wide on a {PHONE['width']} px screen; "
                            f"sticking out: {tab.page.evaluate(TOO_WIDE, PHONE['width'])}")
        problems += [f"{name} (390 px): {problem}" for problem in tab.take_problems()]
    assert not problems, "\n".join(problems)


# --- The explorers: every control redraws its figure, in the page, with no kernel --------------------------------

EXPLORER_PAGES = ["chapters/01_token_distributions.html", "chapters/02_maximum_likelihood.html",
                  "chapters/03_sft.html", "chapters/04_dft.html", "chapters/06_distribution_matching.html",
                  "chapters/07_back_to_mle.html"]
CONTROLS = ".vega-bind input[type=range], .vega-bind select, .vega-bind-radio"
FIGURE_OF = "(explorer) => explorer.querySelector('svg.marks').outerHTML"


def move(control) -> str:
    """Move one control to another setting, as a reader would; returns what it was set to."""
    kind = control.evaluate("el => el.tagName === 'SELECT' ? 'select' : el.type || 'radio-group'")
    if kind == "range":
        low, high, value = (float(v) for v in control.evaluate("el => [el.min, el.max, el.value]"))
        target = high if value < (low + high) / 2 else low
        control.fill(f"{target:g}")
        return f"{target:g}"
    if kind == "select":
        options = control.evaluate("el => [...el.options].map(o => o.value)")
        current = control.evaluate("el => el.value")
        target = next(o for o in options if o != current)
        control.select_option(target)
        return target
    radios = control.locator("input[type=radio]")
    for index in range(radios.count()):
        if not radios.nth(index).is_checked():
            radios.nth(index).check()
            return radios.nth(index).get_attribute("value")
    raise AssertionError("a radio group with a single choice")


def test_every_explorer_redraws_when_each_control_moves(site_url, tab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems, explorers_driven = [], 0
    for name in EXPLORER_PAGES:
        tab.page.goto(site_url + name, wait_until="load")
        report = settle(tab.page)
        if report["undrawnExplorers"] or not report["explorers"]:
            problems.append(f"{name}: explorers {report['explorers']}, not drawn {report['undrawnExplorers']}")
            continue
        for index in range(report["explorers"]):
            explorer = tab.page.locator(".dftlab-explorer").nth(index)
            kind = explorer.get_attribute("data-explorer")
            label = f"{screenshot_name(name)}-{index}-{kind}"
            explorer.scroll_into_view_if_needed()
            explorer.screenshot(path=str(SCREENSHOTS / f"explorer-{label}-before.png"))
            controls = explorer.locator(CONTROLS)
            if controls.count() < 2:
                problems.append(f"{label}: {controls.count()} controls")
            for number in range(controls.count()):
                before = explorer.evaluate(FIGURE_OF)
                setting = move(controls.nth(number))
                try:
                    explorer.page.wait_for_function(f"([e, before]) => ({FIGURE_OF})(e) !== before",
                                                    arg=[explorer.element_handle(), before], timeout=5_000)
                except Exception:
                    problems.append(f"{label}: control {number} set to {setting}, the figure did not change")
            explorer.screenshot(path=str(SCREENSHOTS / f"explorer-{label}-after.png"))
            explorers_driven += 1
        problems += [f"{name}: {problem}" for problem in tab.take_problems()]
    assert not problems, "\n".join(problems)
    assert explorers_driven >= 6, f"only {explorers_driven} explorers on the site"


def test_decoding_explorer_readout_agrees_with_dftlab(site_url, tab):
    """At T = 2 with top-k and top-p off, the page's entropy equals dftlab's, from the same log-probabilities."""
    import torch

    from dftlab.distributions import decoding_distribution, entropy

    tab.page.goto(site_url + "chapters/01_token_distributions.html", wait_until="load")
    settle(tab.page)
    explorer = tab.page.locator(".dftlab-explorer[data-explorer=decoding]").first
    spec = json.loads(explorer.locator("script.dftlab-explorer-spec").text_content())
    log_probs = torch.zeros(len(spec["data"]["values"]), dtype=torch.float64)
    for row in spec["data"]["values"]:
        log_probs[row["r"] - 1] = row["l"]
    expected = entropy(decoding_distribution(log_probs, 2.0, None, None)).item()
    for control, value in (("temperature", "2"), ("top-k", "0"), ("top-p", "1")):
        explorer.locator(".vega-bind", has_text=control).locator("input[type=range]").fill(value)
    readout = r"T = 2\.00, top-k off, top-p 1\.00:\s*entropy ([\d.]+) nats"
    tab.page.wait_for_function("([e, pattern]) => new RegExp(pattern).test(e.querySelector('svg.marks').textContent)",
                               arg=[explorer.element_handle(), readout], timeout=5_000)
    shown = float(re.search(readout, explorer.locator("svg.marks").text_content()).group(1))
    assert shown == pytest.approx(expected, abs=0.0005), (shown, expected)
    assert not tab.take_problems()


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
    # from a chapter's search button (the page carries no search index: search.html loads it, see _templates/layout.html)
    tab.page.goto(site_url + "chapters/03_sft.html", wait_until="load")
    tab.page.locator(".search-button-field:visible, .search-button:visible").first.click()
    tab.page.locator("#pst-search-dialog input[name=q]").fill("entropy")
    with tab.page.expect_navigation(wait_until="load"):
        tab.page.keyboard.press("Enter")
    assert urlsplit(tab.page.url).path.endswith("/search.html") and "q=entropy" in tab.page.url, tab.page.url
    tab.page.wait_for_selector("#search-results li", timeout=20_000)
    results = tab.page.eval_on_selector_all("#search-results li a", "links => links.map(a => a.getAttribute('href'))")
    assert any("01_token_distributions" in href for href in results), results
    # each excerpt shows the text that matched, not the page header's launch buttons
    tab.page.wait_for_function("() => document.querySelectorAll('#search-results li p.context').length > 0",
                               timeout=20_000)
    excerpts = tab.page.eval_on_selector_all("#search-results li p.context", "ps => ps.map(p => p.textContent)")
    assert excerpts and all("entrop" in text.lower() for text in excerpts[:5]), excerpts[:5]
    assert not any("Binder" in text or "Colab" in text for text in excerpts), excerpts[:5]
    # nor the print-only copy of the title and its "Contents" heading
    assert not any(re.search(r"\bContents\b", text) for text in excerpts), excerpts[:5]
    # the magnifying glass sits before the query, not on its first letter
    tab.page.locator("form.bd-search input[name=q]:visible").first.fill("entropy")
    overlap = tab.page.evaluate("""() => {
        const form = [...document.querySelectorAll('form.bd-search')].find(f => f.checkVisibility());
        const icon = form.querySelector('.fa-magnifying-glass').getBoundingClientRect();
        const input = form.querySelector('input[name=q]');
        const textStarts = input.getBoundingClientRect().left + parseFloat(getComputedStyle(input).paddingLeft);
        return icon.right - textStarts;
    }""")
    assert overlap <= 0, f"the search icon covers the query's first {overlap:.0f} px"
    assert not tab.take_problems()


def test_the_simplex_explorers_draw_the_whole_triangle(site_url, tab):
    """Chapters 2 and 4: the simplex's outline is a closed triangle, its bottom side (token 0 to token 1) included."""
    outlines = 0
    for name in ("chapters/02_maximum_likelihood.html", "chapters/04_dft.html"):
        tab.page.goto(site_url + name, wait_until="load")
        settle(tab.page)
        paths = tab.page.evaluate("""() => [...document.querySelectorAll('.dftlab-explorer[data-explorer=simplex]')]
            .map(e => e.querySelector('svg.marks g.mark-line path').getAttribute('d'))""")
        assert paths, f"{name}: no simplex explorer"
        for path in paths:
            points = [tuple(map(float, xy.split(","))) for xy in re.findall(r"[ML]([-\d.]+,[-\d.]+)", path)]
            sides = {frozenset((a, b)) for a, b in zip(points, points[1:]) if a != b}
            corners = set(points)
            assert len(corners) == 3 and len(sides) == 3, f"{name}: the outline {path} is not a closed triangle"
            bottom = max(y for _, y in corners)
            assert frozenset(c for c in corners if c[1] == bottom) in sides, f"{name}: no bottom side in {path}"
            outlines += 1
    assert outlines >= 2
    assert not tab.take_problems()


# --- Navigation: the menu (chapter list) and page-contents buttons, on a phone and on a desktop ---------------------
# The theme binds them to hidden copies (pydata/pydata-sphinx-theme#2451); _static/dftlab.js binds the visible ones.

PHONE_CONTEXT = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
DESKTOP = {"width": 1280, "height": 900}
CHAPTER_LINKS = "nav.bd-docs-nav a"      # the chapter list (left sidebar, or its drawer)
PAGE_LINKS = "#pst-page-toc-nav a"       # the page's contents (right sidebar, or its drawer)
# How many of a selector's links a reader sees: laid out, not hidden (visibility, opacity), and on the screen.
SHOWN = """selector => [...document.querySelectorAll(selector)].filter(a => {
    const box = a.getBoundingClientRect();
    return a.checkVisibility({opacityProperty: true, visibilityProperty: true}) && box.width > 0 && box.height > 0
        && box.right > 0 && box.left < innerWidth && box.bottom > 0 && box.top < innerHeight;
}).length"""
DRAWER_OPEN = "kind => document.getElementById(`pst-${kind}-sidebar-modal`).open"


def wait_until(page, what: str, expression: str, arg=None, timeout: int = 5_000):
    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout)
    except Exception as error:
        raise AssertionError(f"{page.url}: {what} (waited {timeout / 1000:g} s)") from error


def shown(count: str) -> str:
    """A wait_for_function expression: the links of `selector` (the argument) shown, "> 0" or "=== 0"."""
    return f"selector => ({SHOWN})(selector) {count}"


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("screen", ["390px-touch", "1280px"])
def test_menu_and_page_contents_buttons_open_and_close_their_drawers(built_site, site_pages, site_url, browser,
                                                                    screen, mode):
    """On every page. A phone (390 px, touch): a tap on the menu button opens the chapter list as a drawer and a tap
    beside it closes it; the page-contents button does the same for the page's sections. A desktop (1280 px, mouse):
    the chapter list sits beside the page and the menu button hides it and shows it again; the page's contents sit
    in the right column (the theme shows no page-contents button that wide)."""
    phone = screen.startswith("390")
    watched = WatchedPage(browser, site_url, mode=mode, **(PHONE_CONTEXT if phone else {"viewport": DESKTOP}))
    page, problems, drawn = watched.page, [], 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        for name in [path.relative_to(built_site).as_posix() for path in site_pages]:
            shot = name == "chapters/01_token_distributions.html"
            # the theme's scripts and ours have run by DOMContentLoaded; the screenshot waits for figures and maths
            page.goto(site_url + name, wait_until="load" if shot else "domcontentloaded")
            assert page.evaluate("() => document.documentElement.dataset.theme") == mode, name
            has_contents = page.locator(PAGE_LINKS).count() > 0
            menu = page.locator(".primary-toggle:visible")
            assert menu.count() == 1, f"{name}: {menu.count()} visible menu buttons"
            if phone:
                assert page.evaluate(SHOWN, CHAPTER_LINKS) == 0, f"{name}: the chapter list shows before any tap"
                menu.tap()
                wait_until(page, "a tap on the menu button did not open the chapter list", f"""() =>
                    ({DRAWER_OPEN})('primary') && ({shown('> 0')})('{CHAPTER_LINKS}')""")
                if shot:
                    page.screenshot(path=str(SCREENSHOTS / f"drawer-{screen}-{mode}-chapters.png"))
                page.touchscreen.tap(PHONE["width"] - 12, PHONE["height"] // 2)  # beside the drawer, on the right
                wait_until(page, "a tap beside the chapter list did not close it", f"""() =>
                    !({DRAWER_OPEN})('primary') && ({shown('=== 0')})('{CHAPTER_LINKS}')""")
                contents = page.locator(".secondary-toggle:visible")
                assert contents.count() == (1 if has_contents else 0), f"{name}: {contents.count()} page-contents buttons"
                if has_contents:
                    assert page.evaluate(SHOWN, PAGE_LINKS) == 0, f"{name}: the page's contents show before any tap"
                    contents.tap()
                    wait_until(page, "a tap on the page-contents button did not open its drawer", f"""() =>
                        ({DRAWER_OPEN})('secondary') && ({shown('> 0')})('{PAGE_LINKS}')""")
                    if shot:
                        page.screenshot(path=str(SCREENSHOTS / f"drawer-{screen}-{mode}-contents.png"))
                    page.touchscreen.tap(12, PHONE["height"] // 2)  # beside the drawer, on the left
                    wait_until(page, "a tap beside the page's contents did not close them", f"""() =>
                        !({DRAWER_OPEN})('secondary') && ({shown('=== 0')})('{PAGE_LINKS}')""")
            else:
                assert page.evaluate(SHOWN, CHAPTER_LINKS) > 0, f"{name}: no chapter list beside the page"
                menu.click()
                wait_until(page, "the menu button did not hide the chapter list", f"() => ({shown('=== 0')})('{CHAPTER_LINKS}')")
                if shot:
                    page.screenshot(path=str(SCREENSHOTS / f"drawer-{screen}-{mode}-chapters-hidden.png"))
                menu.click()
                wait_until(page, "the menu button did not show the chapter list again",
                           f"() => ({shown('> 0')})('{CHAPTER_LINKS}')")
                assert not page.evaluate(DRAWER_OPEN, "primary"), f"{name}: a drawer opened beside the chapter list"
                if has_contents:
                    assert page.evaluate(SHOWN, PAGE_LINKS) > 0, f"{name}: the page's contents are not in the right column"
                if shot:
                    page.screenshot(path=str(SCREENSHOTS / f"drawer-{screen}-{mode}-chapters-shown.png"))
            drawn += shot
            problems += [f"{name} ({screen}, {mode}): {problem}" for problem in watched.take_problems()]
    finally:
        watched.close()
    assert drawn == 1, "chapters/01_token_distributions.html is not among the pages"
    assert not problems, "\n".join(problems)


def test_the_drawers_answer_the_keyboard_and_a_link_closes_them(site_url, browser):
    """A narrow desktop window (900 px, mouse and keyboard): Enter on the focused menu button opens the chapter list,
    Escape closes it and gives the focus back to the button; a click on a section in the page-contents drawer
    closes the drawer and goes to that section; a chapter in the chapter list opens that chapter."""
    watched = WatchedPage(browser, site_url, viewport={"width": 900, "height": 800})
    page = watched.page
    try:
        page.goto(site_url + "chapters/01_token_distributions.html", wait_until="load")
        menu = page.locator(".primary-toggle:visible")
        menu.focus()
        page.keyboard.press("Enter")
        wait_until(page, "Enter on the menu button did not open the chapter list",
                   f"() => ({DRAWER_OPEN})('primary') && ({shown('> 0')})('{CHAPTER_LINKS}')")
        page.keyboard.press("Escape")
        wait_until(page, "Escape did not close the chapter list",
                   f"() => !({DRAWER_OPEN})('primary') && ({shown('=== 0')})('{CHAPTER_LINKS}')")
        assert page.evaluate("() => document.activeElement.classList.contains('primary-toggle')"), "focus not restored"
        page.locator(".secondary-toggle:visible").click()
        wait_until(page, "a click on the page-contents button did not open its drawer",
                   f"() => ({DRAWER_OPEN})('secondary') && ({shown('> 0')})('{PAGE_LINKS}')")
        section = page.locator(f"{PAGE_LINKS}:visible").nth(2)
        anchor = section.get_attribute("href")
        section.click()
        wait_until(page, "a click on a section did not close the drawer", f"() => !({DRAWER_OPEN})('secondary')")
        assert urlsplit(page.url).fragment == anchor.removeprefix("#"), (page.url, anchor)
        page.locator(".primary-toggle:visible").click()
        wait_until(page, "the menu button did not open the chapter list", f"() => ({DRAWER_OPEN})('primary')")
        with page.expect_navigation(wait_until="load"):
            page.locator(f"{CHAPTER_LINKS}:visible", has_text="Chapter 2:").first.click()
        assert page.url.endswith("chapters/02_maximum_likelihood.html"), page.url
        assert not watched.take_problems()
    finally:
        watched.close()


# --- Predictions, figures and the study explorer, at both widths and in both modes (issue 28) -----------------------

SCREENS = {"390px-touch": PHONE_CONTEXT, "1280px": {"viewport": DESKTOP}}
# What a reader sees of each output of a cell tagged hide-output (a prediction's answer) before opening anything.
ANSWERS_SHOWN = """() => [...document.querySelectorAll('.cell.tag_hide-output')].map(cell => ({
    outputs: cell.querySelectorAll('.cell_output').length,
    shown: [...cell.querySelectorAll('.cell_output')].filter(out => out.checkVisibility()
                                                             && out.getBoundingClientRect().height > 0).length,
    code: cell.querySelector('.cell_input')?.innerText.slice(0, 60) || '',
}))"""


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_no_prediction_shows_its_answer_before_it_is_opened(built_site, site_url, browser, screen, mode):
    """Every exercise page: each "predict, then run" exercise's answer cells (dftlab.course.exercises.prediction_answers)
    are folded (tagged hide-output) and show no output until the reader opens the fold. The stored notebooks carry
    none (tests/test_course_exercises.py); a site built by `make book` executes them, and the fold keeps them hidden."""
    import nbformat

    from dftlab.course import exercises

    watched = WatchedPage(browser, site_url, mode=mode, **SCREENS[screen])
    problems, folded = [], 0
    try:
        for path in sorted((ROOT / "exercises").glob("*.ipynb")):
            name = f"exercises/{path.stem}.html"
            expected = sum(len(cells) for _, cells in exercises.prediction_answers(nbformat.read(path, as_version=4)))
            watched.page.goto(site_url + name, wait_until="domcontentloaded")
            cells = watched.page.evaluate(ANSWERS_SHOWN)
            if len(cells) != expected:
                problems.append(f"{name}: {len(cells)} folded cells, {expected} answer cells in the notebook")
            problems += [f"{name}: the answer of `{cell['code']}` shows" for cell in cells if cell["shown"]]
            folded += len(cells)
            if path.stem == "04_dft":
                watched.page.screenshot(path=str(SCREENSHOTS / f"predictions-{screen}-{mode}-exercises-04.png"),
                                        full_page=True)
            problems += [f"{name}: {problem}" for problem in watched.take_problems()]
    finally:
        watched.close()
    assert folded >= 19, folded
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_figures_are_legible_on_a_phone_and_a_desktop(built_site, site_pages, site_url, browser, screen, mode):
    """Every figure's smallest text is at least 9 px as shown, at 390 px (where a figure wider than the column pans
    inside its own box, .dftlab-figure) as at 1280 px; and the page itself never scrolls sideways."""
    watched = WatchedPage(browser, site_url, mode=mode, **SCREENS[screen])
    page, problems, smallest = watched.page, [], []
    try:
        for name in [path.relative_to(built_site).as_posix() for path in site_pages]:
            if not name.startswith("chapters/"):
                continue
            page.goto(site_url + name, wait_until="load")
            page.wait_for_function("() => [...document.images].every(img => img.complete)", timeout=10_000)
            for figure in page.evaluate(FIGURES):
                if figure["svg"] and figure["smallest"] is not None:
                    smallest.append(figure["smallest"])
                    if figure["smallest"] < 9:
                        problems.append(f"{name}: {figure['src']}: text {figure['smallest']:.1f} px as shown")
            unpanned = page.evaluate("""() => [...document.querySelectorAll('.cell_output > img')].length""")
            if unpanned:
                problems.append(f"{name}: {unpanned} figures outside a .dftlab-figure box")
            width = page.evaluate("() => document.documentElement.scrollWidth")
            if width > page.viewport_size["width"]:
                problems.append(f"{name}: the page is {width} px wide")
            if name == "chapters/05_dft_in_the_study.html":
                figure = page.locator(".dftlab-figure:visible").first
                figure.scroll_into_view_if_needed()
                page.screenshot(path=str(SCREENSHOTS / f"figure-{screen}-{mode}-chapter-05.png"))
            problems += [f"{name}: {problem}" for problem in watched.take_problems()]
    finally:
        watched.close()
    assert len(smallest) >= 20, f"only {len(smallest)} SVG figures measured"
    assert not problems, "\n".join(problems)


# Chapter 7's study explorer, drawn from the cached study by the package as it is now (the page's stored spec is
# redrawn in its place, so the chapter's own output need not be re-executed first), then read back from the SVG.
REDRAW = """async (spec) => {
    const element = document.querySelector('.dftlab-explorer[data-explorer=study]');
    element.querySelector('.dftlab-explorer-chart')?.remove();
    const target = document.createElement('div');
    target.className = 'dftlab-explorer-chart';
    element.appendChild(target);
    element.dftlabView = (await window.vegaEmbed(target, spec, {renderer: 'svg', actions: false})).view;
    return true;
}"""
SET_METRIC = """async ([metric, decoding, run]) => {
    const view = document.querySelector('.dftlab-explorer[data-explorer=study]').dftlabView;
    view.signal('metric', metric).signal('decoding', decoding).signal('run', run);
    await view.runAsync();
    return true;
}"""
STUDY_LAYOUT = """() => {
    const explorer = document.querySelector('.dftlab-explorer[data-explorer=study]');
    const svg = explorer.querySelector('svg.marks');
    const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
    const texts = selector => [...svg.querySelectorAll(selector)].filter(t => t.textContent.trim());
    return {
        svg: box(svg), explorer: box(explorer), scrollX: explorer.scrollWidth - explorer.clientWidth,
        title: texts('.role-title-text text').map(t => [t.textContent, box(t)]),
        yLabels: texts('.role-axis-label text').filter(t => isNaN(parseFloat(t.textContent.replace('\u2212', '-'))))
                                               .map(t => [t.textContent, box(t)]),
        xLabels: texts('.role-axis-label text').filter(t => !isNaN(parseFloat(t.textContent.replace('\u2212', '-'))))
                                               .map(t => [t.textContent.replace('\u2212', '-'), box(t)]),
        axisTitle: texts('.role-axis-title text').map(t => [t.textContent, box(t)]),
        dots: [...svg.querySelectorAll('.mark-symbol.role-mark path')].map(box),
        dashed: [...svg.querySelectorAll('.mark-rule.role-mark line')].filter(l =>
            (l.getAttribute('stroke-dasharray') || '') !== '' && l.getAttribute('opacity') !== '0').length,
    };
}"""


def _overlap(a, b) -> bool:
    return a[0] < b[2] - 0.5 and b[0] < a[2] - 0.5 and a[1] < b[3] - 0.5 and b[1] < a[3] - 0.5


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("screen", list(SCREENS))
def test_the_study_explorer_tells_the_truth_and_nothing_overlaps(site_url, browser, screen, mode):
    """Chapter 7's explorer, for every metric of its menu: the axis's ticks stay within what the measure can take
    (shares and p-values in [0, 1], KL and the other non-negative measures from 0), the x-axis names the metric,
    "dashed line: the truth" shows exactly when that line is drawn, the readout sits clear of the axis labels, and
    every dot is inside the chart (a share of 1.0 included)."""
    from dftlab import study, widgets

    spec = widgets.study_explorer(study.summary_table(study.load_results())).spec
    params = {param["name"]: param for param in spec["params"]}
    metrics = params["metric"]["bind"]["options"]
    decodings, runs = params["decoding"]["bind"]["options"], params["run"]["bind"]["options"]
    watched = WatchedPage(browser, site_url, mode=mode, **SCREENS[screen])
    page, problems = watched.page, []
    try:
        page.goto(site_url + "chapters/07_back_to_mle.html", wait_until="load")
        settle(page)
        page.evaluate(REDRAW, spec)
        explorer = page.locator(".dftlab-explorer[data-explorer=study]")
        settings = [(metric, decodings[0], runs[0]) for metric in metrics] + [
            ("top_opener_share", decodings[-1], runs[-1]), ("validity", decodings[-1], runs[-1])]
        for metric, decoding, run in settings:
            page.evaluate(SET_METRIC, [metric, decoding, run])
            layout = page.evaluate(STUDY_LAYOUT)
            where = f"{metric}, {decoding}, {run}"
            _, axis_name, low, high = widgets.study_metric(metric)
            ticks = [float(text) for text, _ in layout["xLabels"]]
            if low is not None and min(ticks) < low or high is not None and max(ticks) > high:
                problems.append(f"{where}: ticks {ticks} outside [{low}, {high}]")
            if len(ticks) < 2:
                problems.append(f"{where}: an axis with {len(ticks)} tick")
            if not any(axis_name in text for text, _ in layout["axisTitle"]):
                problems.append(f"{where}: the x-axis does not name the metric ({layout['axisTitle']})")
            inside = [max(layout["svg"][0], layout["explorer"][0]), min(layout["svg"][2], layout["explorer"][2])]
            cut = [text for text, box in layout["title"] + layout["axisTitle"] + layout["yLabels"] + layout["xLabels"]
                   if "\u2026" in text or box[0] < inside[0] - 0.5 or box[2] > inside[1] + 0.5]
            if cut:
                problems.append(f"{where}: text cut short: {cut}")
            legend = any("dashed line" in text for text, _ in layout["title"])
            if legend != (layout["dashed"] > 0):
                problems.append(f"{where}: legend {legend}, {layout['dashed']} dashed lines drawn")
            for text, box in layout["title"] + layout["axisTitle"]:
                for label, label_box in layout["yLabels"] + layout["xLabels"]:
                    if _overlap(box, label_box):
                        problems.append(f"{where}: '{text}' overlaps the label '{label}'")
            for dot in layout["dots"]:
                if dot[0] < layout["svg"][0] - 0.5 or dot[2] > min(layout["svg"][2], layout["explorer"][2]) + 0.5:
                    problems.append(f"{where}: a dot at x {dot[0]:.0f}-{dot[2]:.0f} is cut off")
            if layout["scrollX"] > 1:
                problems.append(f"{where}: the explorer scrolls sideways by {layout['scrollX']} px")
            if metric in ("top_opener_share", "mmd_p_value", "kl"):
                explorer.scroll_into_view_if_needed()
                explorer.screenshot(path=str(SCREENSHOTS / f"study-explorer-{screen}-{mode}-{metric}-{decoding}.png"))
        problems += watched.take_problems()
    finally:
        watched.close()
    assert not problems, "\n".join(problems)


# --- On paper: make pdf prints the single-page build with the print stylesheet ---------------------------------------

A4_PRINTABLE = {"width": 688, "height": 1000}  # 210 mm less tools/pdf.py's 14 mm margins, at 96 px per inch
CUT_ON_PAPER = """() => [...document.querySelectorAll('.bd-article pre, .bd-article table, .cell_output .output')]
    .filter(el => el.offsetParent !== null && !el.closest('.dftlab-explorer')
                  && (el.scrollWidth > el.clientWidth + 1 || el.getBoundingClientRect().right > innerWidth + 1))
    .slice(0, 5).map(el => el.tagName.toLowerCase() + ': ' + el.textContent.trim().slice(0, 80))"""


TWINS_VISIBLE = "() => [...document.querySelectorAll('.tag_dftlab-print-twin')].map(twin => twin.checkVisibility())"


def test_on_paper_code_and_outputs_wrap_and_no_scroll_hint(built_site, site_pages, site_url, tab):
    """In print (Chromium's print media, at the PDF's printable width), no code line, printed output or table runs
    past the page's edge (each wraps, so nothing is cut off), and no "scroll sideways" hint shows. Each explorer's
    print twin is hidden on screen and shown on paper."""
    tab.page.set_viewport_size(A4_PRINTABLE)
    problems, checked, twins = [], 0, 0
    for name in [path.relative_to(built_site).as_posix() for path in site_pages]:
        if not name.startswith(("chapters/", "exercises/")):
            continue
        tab.page.emulate_media(media="screen")  # as tools/pdf.py: the page loads on screen, then prints
        tab.page.goto(site_url + name, wait_until="load")
        twins_on_screen = tab.page.evaluate(TWINS_VISIBLE)
        tab.page.emulate_media(media="print")
        twins_on_paper = tab.page.evaluate(TWINS_VISIBLE)
        if any(twins_on_screen) or not all(twins_on_paper):
            problems.append(f"{name}: print twins shown on screen {twins_on_screen}, on paper {twins_on_paper}")
        twins += len(twins_on_paper)
        problems += [f"{name}: cut on paper: {text}" for text in tab.page.evaluate(CUT_ON_PAPER)]
        hints = tab.page.evaluate("() => [...document.querySelectorAll('.dftlab-scroll-hint')].filter(h => h.checkVisibility()).length")
        if hints:
            problems.append(f"{name}: {hints} 'scroll sideways' hints on paper")
        checked += tab.page.evaluate("() => document.querySelectorAll('.bd-article pre').length")
    tab.page.emulate_media(media="screen")
    assert checked > 100, checked
    assert twins >= 4, twins
    assert not problems, "\n".join(problems)
