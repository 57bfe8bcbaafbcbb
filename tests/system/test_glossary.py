"""Every term is defined before it is used: the glossary says where each term is defined, and no chapter before that
one uses it.

The mechanism, in three parts:

- **The glossary is the list of terms.** Each entry of chapters/glossary.md ends with where a reader first meets its
  definition: "(chapter 3)", "(preface)", or "(chapter 3; in full in chapter 7)" when a short definition comes
  before the full treatment. The first place named is the *defining chapter*. A term that a chapter uses without
  defining it (Holm's adjustment, total variation, REINFORCE, ...) belongs in the glossary, with that chapter.
- **Each term has a pattern** (`USES` below): how a chapter's prose writes it, abbreviations and inflections
  included. A glossary entry without a pattern, or a pattern without an entry, fails, so the two stay in step.
- **A use is a match in a chapter's prose**: the markdown cells of the chapters in _toc.yml, in reading order
  (the preface first), with code blocks, inline code, roles' targets and HTML comments left out (a directive's body,
  such as an admonition, counts: the reader reads it). A term may be used in its defining chapter and after it,
  never before; and the defining chapter must use it. Where the term first appears inside that chapter is for the
  writer to place (a definition may follow a sentence of motivation), so it is not checked here.
"""
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "chapters" / "glossary.md"

# How each glossary term is written in the chapters. Case-insensitive unless the pattern starts with (?-i).
USES = {
    "Anchored SFT (ASFT)": r"(?-i:\bASFT\b)|anchored SFT",
    "Base model": r"\bbase models?\b",
    "Bootstrap interval": r"\bbootstrap",
    "Calibration": r"\bcalibrat(ed|ion)\b|reliability diagram",
    "Cross-entropy": r"cross[- ]entropy",
    "DFT (Dynamic Fine-Tuning)": r"dynamic fine-tuning|dynamic FT",
    "Distinct-n": r"\bdistinct-(n|\d)\b",
    "Distribution Fine Tuning": r"distribution fine[- ]tuning",
    "Entropy": r"(?<!cross-)(?<!cross )\bentrop(y|ies)\b",
    "Formulaic habit word": r"\bhabit words?\b",
    "Holm's method": r"\bHolm",
    "Importance weight": r"importance[- ]weight",
    "KL divergence": r"(?-i:\bKL\b)|kullback",
    "LoRA (low-rank adaptation)": r"(?-i:\bLoRA\b)",
    "Logit": r"\blogits?\b",
    "MAUVE": r"(?-i:\bMAUVE\b)",
    "Maximum likelihood estimation (MLE)": r"(?-i:\bMLE\b)|maximum[- ]likelihood",
    "Min-p sampling": r"\bmin-p\b",
    "MMD (maximum mean discrepancy)": r"(?-i:\bMMD)|maximum mean discrepancy",
    "Overuse ratio": r"\boveruse ratios?\b",
    "p-value": r"\bp-values?\b",
    "Power family": r"\bpower family\b",
    "Precision and recall (of generated text)": r"\brecall\b",
    "Predictive entropy": r"\bpredictive entropy\b",
    "Preference tuning": r"preference tuning|preference optimi[sz]ation|(?-i:\bRLHF\b|\bDPO\b)",
    "Proper scoring rule": r"\bproper scor|\bscoring rules?\b",
    "REINFORCE": r"(?-i:REINFORCE)|policy[- ]gradient",
    "Self-BLEU": r"\bself-BLEU\b",
    "Sentence embedding": r"\bembeddings?\b",
    "SFT (supervised fine-tuning)": r"(?-i:\bSFT\b)|supervised fine-tuning",
    "slop-score": r"\bslop-score\b",
    "Softmax": r"\bsoftmax",
    "Split-half control": r"\bsplit-half\b",
    "Stop-gradient": r"\bstop[- ]gradient\b",
    "Temperature": r"\btemperatures?\b",
    "TinyTales": r"\bTinyTales\b",
    "Token": r"\btokens?\b",
    "Token-L2": r"\btoken[- ]L2\b",
    "Top-k sampling": r"\btop-k\b",
    "Top-p (nucleus) sampling": r"\btop-p\b|\bnucleus\b",
    "Total variation distance": r"\btotal[- ]variation\b",
    "Validity": r"\bvalidity\b",
}

WHERE = re.compile(r"\((preface|chapters? (\d+))[^()]*\)\.?\s*$")


def glossary_entries() -> dict[str, str]:
    """The glossary's entries, term -> definition text, from its {glossary} directive."""
    body = re.search(r"```\{glossary\}\n(.*?)```", GLOSSARY.read_text(), re.S).group(1)
    entries, term = {}, None
    for line in body.splitlines():
        if line and not line.startswith(" "):
            term = line.strip()
            entries[term] = ""
        elif term is not None:
            entries[term] += " " + line.strip()
    return {term: text.strip() for term, text in entries.items()}


def reading_order() -> list[str]:
    """The chapter notebooks of _toc.yml in reading order: chapters/00_preface, chapters/00_formulaic_writing, ..."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]
            if chapter["file"].startswith("chapters/") and (ROOT / f"{chapter['file']}.ipynb").exists()]


def defining_chapter(definition: str) -> str | None:
    """The notebook that defines a term, from the place its glossary entry names first; None if it names none."""
    match = WHERE.search(definition)
    if match is None:
        return None
    if match.group(1) == "preface":
        return "chapters/00_preface"
    number = int(match.group(2))
    names = [name for name in reading_order() if name != "chapters/00_preface"
             and re.match(rf"chapters/{number:02d}_", name)]
    return names[0] if names else f"chapter {number} (no such notebook)"


def places_named(definition: str) -> list[str]:
    """Every notebook the entry's closing brackets name, in order: "(chapter 3, briefly; in full in chapter 7)" ->
    chapters/03_sft and chapters/07_back_to_mle. "the appendix" is not a chapter notebook and is left out."""
    match = WHERE.search(definition)
    if match is None:
        return []
    bracket = match.group(0)
    names = ["chapters/00_preface"] if "preface" in bracket else []
    for number in re.findall(r"\d+", bracket):
        names += [name for name in reading_order() if name != "chapters/00_preface"
                  and re.match(rf"chapters/{int(number):02d}_", name)][:1]
    return names


def prose(source: str) -> str:
    """What a reader reads as text in a markdown cell: code blocks (not directives), inline code, the targets of
    roles such as {cite} and {doc}, and HTML comments left out."""
    source = re.sub(r"```(?!\{).*?```", " ", source, flags=re.S)
    source = re.sub(r"<!--.*?-->", " ", source, flags=re.S)
    source = re.sub(r"\{\w+\}`[^`]*`", " ", source)
    return re.sub(r"`[^`\n]*`", " ", source)


def chapter_prose(name: str) -> str:
    notebook = nbformat.read(ROOT / f"{name}.ipynb", as_version=4)
    return "\n".join(prose(cell.source) for cell in notebook.cells if cell.cell_type == "markdown")


PROSE = {name: chapter_prose(name) for name in reading_order()}
ENTRIES = glossary_entries()


def first_use(term: str) -> tuple[str, str] | None:
    """The first chapter in reading order whose prose uses the term, with the words around that use."""
    pattern = re.compile(USES[term], re.I)
    for name, text in PROSE.items():
        match = pattern.search(text)
        if match:
            return name, " ".join(text[max(match.start() - 100, 0):match.end() + 60].split())
    return None


def test_every_glossary_term_has_a_pattern_and_every_pattern_a_term():
    assert set(ENTRIES) == set(USES), {"terms without a pattern": sorted(set(ENTRIES) - set(USES)),
                                       "patterns without a term": sorted(set(USES) - set(ENTRIES))}


def test_the_terms_the_reviewers_named_are_in_the_glossary():
    for term in ("Holm's method", "Total variation distance", "REINFORCE", "Importance weight", "KL divergence",
                 "Cross-entropy", "Entropy", "MMD (maximum mean discrepancy)"):
        assert term in ENTRIES, term


@pytest.mark.parametrize("term", sorted(ENTRIES))
def test_each_term_is_defined_in_or_before_the_chapter_that_first_uses_it(term):
    defined_in = defining_chapter(ENTRIES[term])
    assert defined_in in PROSE, (f"{term}: its glossary entry must end with where it is defined, e.g. '(chapter 3)' "
                                 f"or '(chapter 3; in full in chapter 7)', not {ENTRIES[term][-60:]!r}")
    order = list(PROSE)
    first = first_use(term)
    assert first is not None, f"{term}: no chapter uses it"
    used_in, context = first
    assert order.index(used_in) >= order.index(defined_in), (
        f"{term} is used in {used_in} before {defined_in} defines it: ...{context}...")
    assert re.search(USES[term], PROSE[defined_in], re.I), f"{term}: {defined_in} does not use it"


@pytest.mark.parametrize("term", sorted(ENTRIES))
def test_each_place_the_glossary_names_uses_the_term(term):
    """"in full in chapter 7" must point at a chapter that talks about the term."""
    for name in places_named(ENTRIES[term]):
        assert re.search(USES[term], PROSE[name], re.I), f"{term}: the glossary names {name}, which does not use it"


def test_the_brackets_are_read_as_the_places_they_name():
    entry = "A way to test many hypotheses at once (chapter 3, briefly; in full in chapter 7)."
    assert defining_chapter(entry) == "chapters/03_sft"
    assert places_named(entry) == ["chapters/03_sft", "chapters/07_back_to_mle"]
    assert defining_chapter("The unit a model reads (preface, briefly; in full in chapter 1).") == "chapters/00_preface"
    assert defining_chapter("A definition that names no chapter.") is None
