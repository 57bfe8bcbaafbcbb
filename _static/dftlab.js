/* dftlab website: the explorers, enlargeable figures, tables that show they scroll, search excerpts, and the
   menu and page-contents buttons (a fix for the theme, see below).
   Jupyter Book loads every _static/*.js on every page; this one loads Vega only on a page with an explorer. */
(function () {
  "use strict";
  const root = () => new URL(document.documentElement.dataset.content_root || "./", document.baseURI);

  // --- Explorers: Vega-Lite specs written into the page by dftlab.widgets.SiteRenderer ------------------------
  // vega, vega-lite and vega-embed come from the site's own _vega/ (pinned npm packages, see tools/site.py).
  let vegaLoaded = null;
  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = resolve;
      script.onerror = () => reject(new Error("could not load " + src));
      document.head.appendChild(script);
    });
  }
  function loadVega() {
    if (!vegaLoaded) {
      const base = new URL("_vega/", root()).href;
      // UMD bundles, in order: each looks for the one before on window.
      vegaLoaded = ["vega", "vega-lite", "vega-embed"].reduce(
        (chain, name) => chain.then(() => loadScript(base + name + ".min.js")), Promise.resolve());
    }
    return vegaLoaded;
  }
  async function drawExplorers() {
    const explorers = [...document.querySelectorAll(".dftlab-explorer")];
    if (!explorers.length) return;
    await loadVega();
    for (const element of explorers) {
      const spec = JSON.parse(element.querySelector("script.dftlab-explorer-spec").textContent);
      const target = document.createElement("div");
      target.className = "dftlab-explorer-chart";
      element.querySelector(".dftlab-explorer-wait")?.remove();
      element.appendChild(target);
      // svg: crisp at any zoom, and its text is in the page (the browser test reads the readouts from it)
      const result = await window.vegaEmbed(target, spec, {renderer: "svg", actions: false});
      element.dftlabView = result.view;
      element.dataset.ready = "true";
    }
  }

  // --- Figures: a click opens the figure at full width, a click or Escape closes it --------------------------
  function enlargeableFigures() {
    const overlay = document.createElement("div");
    overlay.className = "dftlab-lightbox";
    overlay.setAttribute("role", "dialog");
    overlay.setAttribute("aria-label", "enlarged figure (click or press Escape to close)");
    overlay.hidden = true;
    const large = document.createElement("img");
    overlay.appendChild(large);
    document.body.appendChild(overlay);
    const close = () => { overlay.hidden = true; large.removeAttribute("src"); };
    overlay.addEventListener("click", close);
    document.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
    // a notebook's figure pans inside its own box on a phone (custom.css keeps its text at least 9 px)
    for (const img of document.querySelectorAll(".cell_output > img")) {
      const box = document.createElement("div");
      box.className = "dftlab-figure";
      img.replaceWith(box);
      box.appendChild(img);
      if (!img.complete) img.addEventListener("load", markScrollers, {once: true});
    }
    for (const img of document.querySelectorAll(".cell_output img, figure img, .bd-article img")) {
      img.classList.add("dftlab-enlargeable");
      img.tabIndex = 0;
      img.title = "click to enlarge";
      const open = () => { large.src = img.currentSrc || img.src; large.alt = img.alt; overlay.hidden = false; };
      img.addEventListener("click", open);
      img.addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
    }
  }

  // --- Wide tables and printed text: scroll inside their box, and say so ----------------------------------
  function markScrollers() {
    for (const box of document.querySelectorAll(".cell_output .output.text_html, .cell_output pre, .bd-article .table-wrapper, .dftlab-figure")) {
      const scrolls = box.scrollWidth > box.clientWidth + 1;
      box.classList.toggle("dftlab-scrolls", scrolls);
      const hint = box.nextElementSibling?.classList.contains("dftlab-scroll-hint") ? box.nextElementSibling : null;
      if (scrolls && !hint) {
        const note = document.createElement("div");
        note.className = "dftlab-scroll-hint";
        note.textContent = "scroll sideways for more \u2192";
        box.after(note);
      } else if (!scrolls && hint) {
        hint.remove();
      }
    }
  }

  // --- Punctuation after inline maths stays on the maths' line ------------------------------------------------
  function keepPunctuationWithMaths() {
    for (const maths of document.querySelectorAll(".bd-article span.math")) {
      const next = maths.nextSibling;
      if (!next || next.nodeType !== Node.TEXT_NODE || !/^[.,;:!?)]/.test(next.textContent)) continue;
      const [, punctuation, rest] = next.textContent.match(/^([.,;:!?)]+)([\s\S]*)$/);
      const group = document.createElement("span");
      group.className = "dftlab-nowrap";
      maths.replaceWith(group);
      group.append(maths, punctuation);
      next.textContent = rest;
    }
  }

  // --- Search: the excerpt shows the sentence that matched -----------------------------------------------------
  // Sphinx's excerpt starts at the first *exact* keyword it finds in the page's [role=main] text. The keywords are
  // stems ("entropi" for "entropy"), which often occur nowhere, and the text then starts with the article header
  // ("Binder", "Colab", ...) or the print-only title and "Contents". Here both are dropped and a stem matches any
  // word it begins.
  function betterSearchExcerpts() {
    // searchtools.js declares `const Search`: a global binding that is not a property of window
    if (typeof Search === "undefined" || !Search.makeSearchSummary) return;
    Search.makeSearchSummary = (htmlText, keywords, anchor) => {
      const page = new DOMParser().parseFromString(htmlText, "text/html");
      const removals = [".headerlink", "script", "style", ".bd-header-article", ".header-article-items",
                        ".prev-next-area", ".bd-sidebar-secondary", ".dftlab-explorer", ".cell_input", "nav",
                        "#jb-print-docs-body"];  // the print-only title and "Contents" list
      for (const selector of removals) page.querySelectorAll(selector).forEach((el) => el.remove());
      const main = (anchor && page.querySelector(`[role="main"] ${anchor}`)) || page.querySelector('[role="main"]');
      if (!main) return null;
      const text = main.textContent.replace(/\s+/g, " ").trim();
      const lower = text.toLowerCase();
      const positions = [...keywords].map((k) => {
        const stem = k.toLowerCase().replace(/[^a-z0-9]+$/, "").slice(0, Math.max(3, k.length - 1));
        return lower.search(new RegExp("\\b" + stem.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")));
      }).filter((i) => i > -1);
      const start = positions.length ? Math.max(Math.min(...positions) - 80, 0) : 0;
      const summary = document.createElement("p");
      summary.classList.add("context");
      summary.textContent = (start ? "..." : "") + text.substr(start, 240).trim() + (start + 240 < text.length ? "..." : "");
      return summary;
    };
  }

  // --- The menu and page-contents buttons open and close their drawers --------------------------------------
  // Why this is here: pydata-sphinx-theme 0.17.1 (the version sphinx-book-theme 1.3.0 requires; both pinned in
  // pyproject.toml) wires its drawers to `document.querySelector(".primary-toggle")` and ".secondary-toggle": the
  // FIRST such button, its own header's, which sphinx-book-theme's layout hides. The buttons a reader sees (in the
  // article header) get no handler, so on a phone a tap on the menu shows only its tooltip and the page-contents
  // button does nothing (upstream: pydata/pydata-sphinx-theme#2451, open; sphinx-book-theme#988 and #917, PR #991).
  // sphinx-book-theme's own wide-screen handler (collapse the chapter list) makes the same query, so the desktop
  // menu button did nothing either. No theme release fixes it, and none newer suits Jupyter Book 1.x (Sphinx 7):
  // sphinx-book-theme 1.4.0 needs Sphinx 8.2.
  // Here one listener, on the window in the capture phase, takes every activation of any .primary-toggle or
  // .secondary-toggle (a tap, a click, Enter or Space on the focused button) before the theme's handlers see it:
  // - below 960 px (the theme's breakpoint) the menu opens the chapter list as a drawer (the theme's <dialog>), as
  //   the page-contents button does below 1200 px; a tap or click outside the drawer, a link in it, or Escape
  //   closes it, and the sidebar's content goes back where it was (what the theme's own code does);
  // - from 960 px up, where the chapter list sits beside the page, the menu hides it and shows it again.
  // When a theme release fixes it and the pins move, this section can go; tests/test_browser.py checks the drawers
  // either way (the handler stops the theme's own, so the two never both act on one tap).
  const DRAWERS = {
    "primary-toggle": {sidebar: "pst-primary-sidebar", dialog: "pst-primary-sidebar-modal", besideFrom: "(min-width: 960px)"},
    "secondary-toggle": {sidebar: "pst-secondary-sidebar", dialog: "pst-secondary-sidebar-modal", besideFrom: null},
  };
  function moveContent(from, to) {  // the theme's cutAndPasteNodesAndClasses: content and classes travel together
    to.append(...from.childNodes);
    for (const name of [...from.classList]) { from.classList.remove(name); to.classList.add(name); }
  }
  function quietTooltip(button) {  // Bootstrap's tooltip shows on focus and touch; it must not sit on the drawer
    window.bootstrap?.Tooltip?.getInstance?.(button)?.hide();
  }
  function setExpanded(kind, expanded) {
    document.querySelectorAll("." + kind).forEach((button) => button.setAttribute("aria-expanded", String(expanded)));
  }
  function prepareDrawer(kind, sidebar, dialog) {
    if (dialog.dataset.dftlabDrawer) return;
    dialog.dataset.dftlabDrawer = kind;
    dialog.setAttribute("aria-label", kind === "primary-toggle" ? "Chapters" : "On this page");
    dialog.addEventListener("click", (event) => {
      const link = event.target.closest?.("a[href]");
      const box = dialog.getBoundingClientRect();
      const outside = event.target === dialog && (event.clientX < box.left || event.clientX > box.right ||
                                                  event.clientY < box.top || event.clientY > box.bottom);
      if (link || outside) dialog.close();  // a link: follow it with the drawer out of the way
    });
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") { event.preventDefault(); event.stopPropagation(); dialog.close(); }
    });
    dialog.addEventListener("close", () => {
      moveContent(dialog, sidebar);  // whatever is still in the drawer (the theme may have moved it back already)
      setExpanded(kind, false);
      const opener = dialog.dftlabOpener;
      dialog.dftlabOpener = null;
      if (opener?.keyboard) opener.button.focus();  // back to the button for a keyboard reader; no tooltip after a tap
    });
  }
  function toggleDrawer(event) {
    const button = event.target.closest?.(".primary-toggle, .secondary-toggle");
    if (!button) return;
    const kind = button.classList.contains("primary-toggle") ? "primary-toggle" : "secondary-toggle";
    const sidebar = document.getElementById(DRAWERS[kind].sidebar);
    const dialog = document.getElementById(DRAWERS[kind].dialog);
    if (!sidebar || !dialog || typeof dialog.showModal !== "function") return;  // leave it to the theme
    event.preventDefault();
    event.stopPropagation();  // the theme's handlers would act a second time (or on the wrong button)
    quietTooltip(button);
    if (event.detail !== 0) button.blur();  // a tap or a click, not the keyboard
    prepareDrawer(kind, sidebar, dialog);
    if (DRAWERS[kind].besideFrom && window.matchMedia(DRAWERS[kind].besideFrom).matches) {
      const hidden = sidebar.classList.toggle("pst-sidebar-hidden");  // sphinx-book-theme's class and CSS
      setExpanded(kind, !hidden);
      return;
    }
    if (dialog.open) { dialog.close(); return; }
    moveContent(sidebar, dialog);
    dialog.dftlabOpener = {button, keyboard: event.detail === 0};
    dialog.showModal();
    setExpanded(kind, true);
  }
  window.addEventListener("click", toggleDrawer, true);

  function ready() {
    keepPunctuationWithMaths();
    enlargeableFigures();
    betterSearchExcerpts();
    markScrollers();
    window.addEventListener("resize", markScrollers);
    drawExplorers().then(markScrollers).catch((error) => console.error("dftlab explorers:", error));
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", ready);
  else ready();
})();
