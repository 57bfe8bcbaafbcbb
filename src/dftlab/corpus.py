"""The public-domain English corpus that tiny-gpt2 is pretrained on (see assets/corpus/PROVENANCE.md).

Each corpus file holds one paragraph per line: a verse of the King James Bible, or an entry of
Ambrose Bierce's The Devil's Dictionary. They are xz-compressed and ship inside the package.
"""
from __future__ import annotations

import lzma
from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent / "assets" / "corpus"
CORPUS_FILES = {"kjv": "kjv.txt.xz", "devils_dictionary": "devils_dictionary.txt.xz"}


def load_corpus(name: str) -> list[str]:
    """The paragraphs of one corpus ("kjv" or "devils_dictionary")."""
    if name not in CORPUS_FILES:
        raise ValueError(f"unknown corpus {name!r}; choose one of {sorted(CORPUS_FILES)}")
    path = CORPUS_DIR / CORPUS_FILES[name]
    try:
        with lzma.open(path, "rt", encoding="utf-8") as f:
            return [line for line in f.read().splitlines() if line.strip()]
    except (lzma.LZMAError, EOFError) as exc:
        raise RuntimeError(f"{path} is corrupted ({exc}); restore it with `git checkout -- {path}`") from exc


def kjv_passages(verses_per_passage: int = 4) -> list[str]:
    """Consecutive verses joined into short passages, so a training block holds running text."""
    verses = load_corpus("kjv")
    return [" ".join(verses[i:i + verses_per_passage]) for i in range(0, len(verses), verses_per_passage)]
