"""A short slide deck of the course's key figures, made from the figures the chapters store (one per slide).

    python tools/slides.py [--out FILE]     # default: _build/html/_slides/dftlab-slides.html

`make book` writes it into the built site (tools/site.py calls `write_deck` after the build), and the page
"For instructors > Slides" links to it. Nothing is drawn again: each slide is an image output (SVG or PNG) stored in
a chapter notebook, found by a snippet of the code cell that draws it (`KEY_FIGURES`), with the alt text that cell
carries (`mystnb: image: alt:`, see tools/figure_alt_text.py) and the heading above it as the slide's title. When a
chapter is re-executed, the next build has its new figure; when a snippet no longer finds exactly one figure cell,
the deck fails with the chapter and the snippet to fix.

The deck is one self-contained HTML file (the figures are embedded as data: URLs; no script or font is fetched),
for a projector or a phone. On a screen narrower than 700 px a figure keeps its own size (its text as legible as
on the chapter's page) and pans inside its box; wider, it fills the slide. The arrow keys, Page Up/Down, space, a swipe or a tap on either half of the slide move
between slides, Home and End go to the first and last, and the address's #N names the slide shown.
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "_build" / "html" / "_slides" / "dftlab-slides.html"
SITE_PATH = Path("_slides") / "dftlab-slides.html"  # where the deck sits in the built site
IMAGE_TYPES = ("image/svg+xml", "image/png")
PRINT_TWIN_TAG = "dftlab-print-twin"  # a figure shown only on paper (an explorer's static twin): never a slide

# The story of the course in its figures: (chapter notebook, a snippet of the code cell that draws the figure).
KEY_FIGURES = [
    ("00_formulaic_writing", "plots.plot_slop_leaderboard("),
    ("00_formulaic_writing", "plots.plot_next_token_comparison("),
    ("01_token_distributions", "plots.plot_top_tokens("),
    ("01_token_distributions", "plots.plot_entropy_by_temperature("),
    ("02_maximum_likelihood", "plots.plot_score_curves("),
    ("02_maximum_likelihood", "plots.plot_simplex_trajectories("),
    ("03_sft", "plots.plot_choice_frequencies(openers)"),
    ("04_dft", "plots.plot_training_history(result.history)"),
    ("04_dft", 'plots.plot_choice_frequencies({"DFT, this run"'),
    ("04_dft", "plots.plot_calibration("),
    ("05_dft_in_the_study", "plots.plot_dft_threshold("),
    ("05_dft_in_the_study", "plots.plot_power_family("),
    ("06_distribution_matching", "plots.plot_embedding_clouds("),
    ("07_back_to_mle", 'plots.plot_study_grid(summary, decoding="T=1")'),
    ("07_back_to_mle", "plots.plot_quality_diversity("),
    ("08_real_model_writing", "change = 100 * measures["),
    ("08_real_model_writing", "side = levers.levers_side_by_side()"),
]


@dataclass(frozen=True)
class Slide:
    chapter: str      # "Chapter 4: Dynamic Fine-Tuning: ..."
    heading: str      # the section heading above the figure
    alt: str          # the figure's alt text
    mime: str         # "image/svg+xml" or "image/png"
    data: bytes       # the image file


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _image(cell: dict) -> tuple[str, bytes] | None:
    for output in cell.get("outputs", []):
        for mime in IMAGE_TYPES:
            if mime in output.get("data", {}):
                value = output["data"][mime]
                value = "".join(value) if isinstance(value, list) else value
                return mime, value.encode() if mime == "image/svg+xml" else base64.b64decode(value)
    return None


def _plain(markdown: str) -> str:
    """A heading's text without markdown: `code`, *emphasis*, $maths$ and links kept as their text."""
    text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"[`*$]", "", text).strip()


def find_slide(notebook_path: Path, snippet: str) -> Slide:
    """The figure drawn by the one code cell of the notebook that contains `snippet`, with its alt text and the
    heading above it."""
    cells = json.loads(notebook_path.read_text(encoding="utf-8"))["cells"]
    found, chapter, heading = [], "", ""
    for cell in cells:
        source = _source(cell)
        if cell.get("cell_type") == "markdown":
            for line in source.split("\n"):
                if line.startswith("# ") and not chapter:
                    chapter = _plain(line[2:])
                elif re.match(r"#{2,3} ", line):
                    heading = _plain(line.lstrip("#"))
            continue
        tags = cell.get("metadata", {}).get("tags", [])
        image = _image(cell)
        if snippet in source and image and PRINT_TWIN_TAG not in tags:
            alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
            found.append(Slide(chapter, heading, alt, *image))
    if len(found) != 1:
        raise ValueError(f"{notebook_path.name}: {len(found)} figure cells contain {snippet!r}, not one; change the "
                         f"snippet in tools/slides.py KEY_FIGURES to one that names a single figure")
    slide = found[0]
    number = re.match(r"(\d\d)_", notebook_path.name)
    if number:
        slide = Slide(f"Chapter {int(number[1])}: {slide.chapter}", slide.heading, slide.alt, slide.mime, slide.data)
    if not slide.alt.strip():
        raise ValueError(f"{notebook_path.name}: the figure of {snippet!r} has no alt text; see "
                         f"`python tools/figure_alt_text.py --check`")
    return slide


def collect_slides(chapters_dir: Path = ROOT / "chapters", key_figures=KEY_FIGURES) -> list[Slide]:
    return [find_slide(Path(chapters_dir) / f"{stem}.ipynb", snippet) for stem, snippet in key_figures]


STYLE = """
*{box-sizing:border-box}html,body{margin:0;height:100%;background:#fff;color:#1f2328;
font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{height:100%}
section{display:none;height:100%;flex-direction:column;padding:12px 16px 64px;max-width:1200px;margin:0 auto}
section.shown{display:flex}
.chapter{margin:0;font-size:14px;color:#57606a}
h1,h2{margin:4px 0 8px;font-size:clamp(18px,3.2vw,30px);line-height:1.2}
figure{flex:1;min-height:0;margin:0;display:flex;flex-direction:column;align-items:center;justify-content:center}
figure img{width:100%;height:100%;min-height:0;object-fit:contain;background:#fff}
details{font-size:14px;color:#57606a;margin-top:6px}
.title-slide{justify-content:center;text-align:center}
.title-slide h1{font-size:clamp(24px,5vw,44px)}
.title-slide p{font-size:clamp(15px,2.2vw,20px);max-width:44em;margin:8px auto}
nav{position:fixed;left:0;right:0;bottom:0;display:flex;justify-content:space-between;align-items:center;
padding:6px 10px;background:rgba(255,255,255,.92);border-top:1px solid #d0d7de;font-size:14px}
nav button{font:inherit;min-width:44px;min-height:36px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa;
cursor:pointer}
@media (max-width:700px){figure{display:block;overflow:auto;text-align:center}
figure img{width:auto;height:auto;max-width:none;max-height:none}}
@media print{nav{display:none}section{display:flex;height:100vh;page-break-after:always}}
"""

SCRIPT = """
(function(){
  var slides=[].slice.call(document.querySelectorAll('section')), at=0, counter=document.getElementById('counter');
  function show(n){
    at=Math.max(0,Math.min(slides.length-1,n));
    slides.forEach(function(s,i){s.classList.toggle('shown',i===at);});
    counter.textContent=(at+1)+' / '+slides.length;
    if(location.hash!=='#'+(at+1)) history.replaceState(null,'','#'+(at+1));
  }
  function fromHash(){var n=parseInt(location.hash.slice(1),10);show(isNaN(n)?0:n-1);}
  document.addEventListener('keydown',function(e){
    if(e.target.tagName==='SUMMARY') return;
    var k=e.key;
    if(k==='ArrowRight'||k==='PageDown'||k===' '){show(at+1);e.preventDefault();}
    else if(k==='ArrowLeft'||k==='PageUp'){show(at-1);e.preventDefault();}
    else if(k==='Home'){show(0);}else if(k==='End'){show(slides.length-1);}
  });
  var x0=null,y0=null;
  document.addEventListener('touchstart',function(e){
    var box=e.target.closest&&e.target.closest('figure');
    if(e.touches.length>1||(box&&box.scrollWidth>box.clientWidth+1)){x0=null;return;}  // a pinch, or panning a figure
    x0=e.touches[0].clientX;y0=e.touches[0].clientY;
  },{passive:true});
  document.addEventListener('touchend',function(e){
    if(x0===null) return;
    var dx=e.changedTouches[0].clientX-x0, dy=e.changedTouches[0].clientY-y0; x0=null;
    if(Math.abs(dx)>40&&Math.abs(dx)>Math.abs(dy)) show(at+(dx<0?1:-1));
  },{passive:true});
  document.getElementById('previous').onclick=function(){show(at-1);};
  document.getElementById('next').onclick=function(){show(at+1);};
  window.addEventListener('hashchange',fromHash);
  fromHash();
})();
"""


def render_deck(slides: list[Slide], title: str = "dftlab: why fine-tuned models write formulaically") -> str:
    """One self-contained HTML page: a title slide, then one figure per slide."""
    sections = [f'<section class="title-slide" aria-label="slide 1"><h1>{html.escape(title)}</h1>'
                f"<p>The course's key figures, one per slide, in the order the chapters show them.</p>"
                f"<p>Arrow keys, space or a swipe move between slides.</p></section>"]
    for number, slide in enumerate(slides, start=2):
        source = f"data:{slide.mime};base64,{base64.b64encode(slide.data).decode()}"
        sections.append(
            f'<section aria-label="slide {number}"><p class="chapter">{html.escape(slide.chapter)}</p>'
            f"<h2>{html.escape(slide.heading)}</h2>"
            f'<figure><img src="{source}" alt="{html.escape(slide.alt, quote=True)}"></figure>'
            f"<details><summary>What the figure shows</summary>{html.escape(slide.alt)}</details></section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{html.escape(title)}: slides</title><style>{STYLE}</style></head><body><main>"
            + "".join(sections) +
            "</main><nav><button id=\"previous\" aria-label=\"previous slide\">&larr;</button>"
            "<span id=\"counter\" aria-live=\"polite\"></span>"
            "<button id=\"next\" aria-label=\"next slide\">&rarr;</button></nav>"
            f"<script>{SCRIPT}</script></body></html>\n")


def write_deck(out: Path = DEFAULT_OUT, chapters_dir: Path = ROOT / "chapters") -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_deck(collect_slides(chapters_dir)), encoding="utf-8")
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the HTML file to write (default: {DEFAULT_OUT})")
    args = parser.parse_args()
    try:
        path = write_deck(args.out)
    except ValueError as exc:
        sys.exit(str(exc))
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
