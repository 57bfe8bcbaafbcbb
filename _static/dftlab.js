/* dftlab website: the explorers, enlargeable figures, tables that show they scroll, and search excerpts.
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
    for (const box of document.querySelectorAll(".cell_output .output.text_html, .cell_output pre, .bd-article .table-wrapper")) {
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
  // ("Binder", "Colab", ...). Here the header is dropped and a stem matches any word it begins.
  function betterSearchExcerpts() {
    // searchtools.js declares `const Search`: a global binding that is not a property of window
    if (typeof Search === "undefined" || !Search.makeSearchSummary) return;
    Search.makeSearchSummary = (htmlText, keywords, anchor) => {
      const page = new DOMParser().parseFromString(htmlText, "text/html");
      const removals = [".headerlink", "script", "style", ".bd-header-article", ".header-article-items",
                        ".prev-next-area", ".bd-sidebar-secondary", ".dftlab-explorer", ".cell_input", "nav"];
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
