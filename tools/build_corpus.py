"""Rebuild the committed public-domain corpus from Debian packages (run by hand, never by the build).

    apt-get install bible-kjv          # brings bible-kjv-text and the `bible` reader
    apt-get download dict-devil && dpkg-deb -x dict-devil_*.deb x
    bible "gen1:1-rev22:21" > kjv_raw.txt
    python tools/build_corpus.py kjv_raw.txt x/usr/share/dictd/devil.dict.dz

It writes one paragraph per line (a verse, or a dictionary entry), xz-compressed, into
src/dftlab/assets/corpus/. See PROVENANCE.md there for sources and licences.
"""
import gzip
import lzma
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "dftlab" / "assets" / "corpus"


def clean_kjv(raw: str) -> list[str]:
    verses, current = [], []
    for line in raw.splitlines():
        match = re.match(r"^\s+\d+ (.*)$", line)
        if match:  # a new verse starts with its number
            if current:
                verses.append(" ".join(current))
            current = [match.group(1).strip()]
        elif line.strip() and current and not re.match(r"^[1-3]?\s?[A-Z][a-z A-Z]+ \d+$", line.strip()):
            current.append(line.strip())  # continuation line of a verse
        elif not line.strip() or re.match(r"^[1-3]?\s?[A-Z][a-z A-Z]+ \d+$", line.strip()):
            if current:
                verses.append(" ".join(current))
                current = []
    if current:
        verses.append(" ".join(current))
    return [re.sub(r"\s+", " ", v) for v in verses]


def clean_devil(raw: str) -> list[str]:
    body = raw.split("\n", 1)[1]
    entries, current = [], []
    for line in body.splitlines():
        if line.startswith("00-database") or "wiretap" in line.lower():
            continue
        if not line.strip():
            if current:
                entries.append(" ".join(current))
                current = []
        else:
            current.append(line.strip())
    if current:
        entries.append(" ".join(current))
    entries = [re.sub(r"\s+", " ", e.replace("_", "")) for e in entries]
    start = next(i for i, e in enumerate(entries) if e.startswith("The Devil's Dictionary was begun"))
    return [e for e in entries[start:] if len(e.split()) >= 4]


def write(name: str, lines: list[str]) -> None:
    with lzma.open(OUT / name, "wt", encoding="utf-8", preset=9) as f:
        f.write("\n".join(lines) + "\n")
    print(name, len(lines), "lines", sum(len(l.split()) for l in lines), "words")


if __name__ == "__main__":
    write("kjv.txt.xz", clean_kjv(Path(sys.argv[1]).read_text(encoding="utf-8")))
    write("devils_dictionary.txt.xz", clean_devil(gzip.open(sys.argv[2], "rt", encoding="utf-8", errors="replace").read()))
