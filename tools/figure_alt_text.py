"""Give every figure of the chapters alt text, without executing anything.

    python tools/figure_alt_text.py            # write the alt text below into the notebooks' cell metadata
    python tools/figure_alt_text.py --check    # list figure cells that have none; exit status 1 if any

myst-nb (1.4) reads a code cell's metadata `{"mystnb": {"image": {"alt": "..."}}}` and puts that text on
the <img> of every image the cell outputs; without it the website's alt text is the image's file name.
The same key takes `width` or `classes`, and `"figure": {"caption": ..., "name": ...}` would turn the image
into a numbered figure. Only cell metadata changes here: outputs, execution counts and the execution
cache stay as they are.

ALT_TEXT names each figure cell by a piece of its source that no other cell of that notebook contains,
so the mapping survives edits elsewhere in the notebook. A new figure cell needs a line here; `--check`
(and tests/test_book.py) find the ones that lack it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]

# Alt text says what the figure shows and what to see in it, for a reader who cannot see it.
ALT_TEXT = {
    "chapters/01_token_distributions.ipynb": {
        "plots.plot_top_tokens(": (
            "Horizontal bar chart of the ten most probable next tokens of tiny-gpt2 after the prompt "
            "'And God said', one bar per token, longest bar first."),
        "plots.plot_entropy_by_temperature(": (
            "Line chart of the entropy of the next-token distribution against the sampling temperature. "
            "Entropy grows with temperature towards a dashed line at log V, the entropy of a uniform choice; "
            "a dotted line marks T = 1, the model's own distribution."),
        "plots.plot_decoding_distribution(logits": (
            "Paired bar chart of the 15 most probable next tokens: each token's probability under the model "
            "at T = 1 beside its probability after temperature 0.7 and top-p 0.9. The title gives the entropy "
            "before and after decoding."),
        "plots.plot_zipf(": (
            "Log-log plot of word frequency against rank, one line for the King James Bible and one for "
            "tiny-gpt2 samples at T = 1; a straight line would be Zipf's law."),
    },
    "chapters/02_maximum_likelihood.ipynb": {
        "plots.plot_score_curves(": (
            "Line chart of the expected log, Brier and linear scores, rescaled to 0 to 1, against the forecast "
            "probability p of outcome 1 when the truth is q = 0.7. The log and Brier curves peak at p = 0.7; "
            "the linear score rises in a straight line to its maximum at p = 1."),
        "plots.plot_simplex_trajectories(paths, target)": (
            "Triangle whose corners are the three one-hot distributions over tokens 0, 1 and 2. A line shows "
            "gradient descent on cross-entropy walking from the uniform distribution at the centre to the data "
            "distribution q = (0.6, 0.3, 0.1), marked by a star."),
    },
    "chapters/03_sft.ipynb": {
        "plots.plot_training_history(": (
            "Line chart of the validation negative log-likelihood and the validation predictive entropy, in nats "
            "per token, against the training step of supervised fine-tuning on TinyTales."),
        "plots.plot_choice_frequencies(openers)": (
            "Horizontal bar chart of the most common TinyTales story openers: for each, its true probability "
            "beside its share of the SFT model's samples at T = 1 and at T = 0.7 with top-p 0.9."),
    },
}

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")


def alt_text_of(cell) -> str | None:
    return cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")


def find_cell(notebook, snippet: str, path: str):
    """The one code cell whose source contains `snippet`; ValueError when none or several do."""
    matches = [cell for cell in notebook.cells if cell.cell_type == "code" and snippet in cell.source]
    if len(matches) != 1:
        raise ValueError(f"{path}: {len(matches)} code cells contain {snippet!r}; ALT_TEXT needs exactly one. "
                         f"Change the snippet in tools/figure_alt_text.py to a piece of source unique to the figure cell.")
    return matches[0]


def set_alt_text(notebook, alt_texts: dict[str, str], path: str = "notebook") -> int:
    """Write each alt text into its cell's `mystnb.image.alt`, keeping other metadata; returns how many changed."""
    changed = 0
    for snippet, text in alt_texts.items():
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{path}: the alt text for {snippet!r} is {text!r}; give a sentence that describes the figure.")
        cell = find_cell(notebook, snippet, path)
        if alt_text_of(cell) != text:
            cell.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = text
            changed += 1
    return changed


def figure_cells_without_alt_text(notebook) -> list[str]:
    """The first line of every code cell that outputs an image but has no alt text."""
    return [cell.source.splitlines()[0] if cell.source else "(empty cell)"
            for cell in notebook.cells
            if cell.cell_type == "code" and not alt_text_of(cell)
            and any(kind in output.get("data", {}) for output in cell.get("outputs", []) for kind in IMAGE_TYPES)]


def main(check: bool) -> int:
    missing = []
    for path in sorted(set(ALT_TEXT) | {p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("*.ipynb")}):
        notebook = nbformat.read(ROOT / path, as_version=4)
        if check:
            missing += [f"{path}: {line}" for line in figure_cells_without_alt_text(notebook)]
            missing += [f"{path}: no cell contains {snippet!r}" for snippet in ALT_TEXT.get(path, {})
                        if not any(snippet in cell.source for cell in notebook.cells if cell.cell_type == "code")]
        elif set_alt_text(notebook, ALT_TEXT.get(path, {}), path):
            nbformat.write(notebook, ROOT / path)
            print(f"{path}: alt text written")
    if missing:
        print("figure cells without alt text (add them to ALT_TEXT in tools/figure_alt_text.py):", *missing, sep="\n  ")
    return 1 if missing else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only report figure cells without alt text")
    sys.exit(main(parser.parse_args().check))
