"""The package's docstrings and comments name chapters of the book; these tests hold them to the book.

A docstring or comment may point to a chapter by number ("chapter 4", "chapters 3 to 5", "chapter 6's") or by
title (the chapter "What formulaic writing looks like", chapter 8, "The experiment on a real LLM"). Then:

* the number is a chapter of the book (a `chapters/NN_<topic>.ipynb` notebook in _toc.yml; the preface has none);
* a quoted title is a chapter's title, or a part of it after a colon, or a heading inside the chapter named with it;
* a chapter is not named by a nickname ("the TinyTales chapter", "the study chapter"): a number says which;
* where a chapter is given as the home of a function, class or module (in the first line of its docstring, in a
  section comment above it, or in words such as "chapter 9 uses it"), that chapter really uses it: its notebooks
  (the chapter, its exercises and solutions) or its exercise checks (`dftlab.course.checks.chNN`) name it, or a
  name they use reaches it through the package's own code.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from functools import cache
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "dftlab"
UNNUMBERED = {"chapters/00_preface"}  # as in tools/dftlab_book.py: the preface comes before chapter 0
NOTEBOOK_FOLDERS = ("chapters", "exercises", "solutions")

# "chapter 4", "Chapter 4's", "chapters 2 and 4", "chapters 3 to 5", "chapters 1-6", "chapter-6"
CHAPTER_NUMBERS = re.compile(r"\b[Cc]hapters?[ -](\d+(?:'s)?(?:(?:,\s*|\s+(?:and|to|or)\s+|\s*[-–]\s*)\d+(?:'s)?)*)")
# the chapter "Title", chapter 8, "Heading"
QUOTED_TITLE = re.compile(r"\b[Cc]hapters?(?: \d+,)? [\"“]([^\"”]+)[\"”]")
NICKNAME = re.compile(r"\b[Tt]he ([A-Za-z-]+) chapter\b(?!\s*\d)")
GENERIC_WORDS = {"same", "next", "previous", "last", "first", "whole", "this", "that", "each", "every", "one", "other"}
USAGE_VERBS = r"(?:uses|prints|draws|plots|calls|reads|introduces|shows|measures|trains|derives)"
USAGE_CLAIM = re.compile(CHAPTER_NUMBERS.pattern + r"\s+" + USAGE_VERBS + r"\b")
SECTION_COMMENT = re.compile(r"#\s*(?:-+\s*)?[Cc]hapters? \d")
DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _chapter_numbers(text: str) -> list[int]:
    """The chapter numbers in one match of CHAPTER_NUMBERS's group: "3 to 5" is 3, 4 and 5."""
    numbers = [int(n) for n in re.findall(r"\d+", text)]
    if len(numbers) == 2 and re.search(r"\d\s*(?:to|[-–])\s*\d", text):
        return list(range(numbers[0], numbers[1] + 1))
    return numbers


@cache
def book_chapters() -> dict[int, Path]:
    """The numbered chapters of _toc.yml: number -> notebook."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [chapter["file"] for part in toc["parts"] for chapter in part["chapters"]]
    return {int(Path(f).name[:2]): ROOT / f"{f}.ipynb" for f in files
            if re.fullmatch(r"chapters/\d\d_\w+", f) and f not in UNNUMBERED}


def _code_of(path: Path) -> str:
    return "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code")


@cache
def chapter_titles() -> dict[int, tuple[set[str], set[str]]]:
    """Per chapter, (its title and the parts of the title around a colon, every heading in it), lower case."""
    titles = {}
    for number, path in book_chapters().items():
        markdown = "\n".join(cell.source for cell in nbformat.read(path, as_version=4).cells
                             if cell.cell_type == "markdown")
        headings = [heading.strip().lower() for heading in re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.M)]
        titles[number] = {headings[0], *(part.strip() for part in headings[0].split(":"))}, set(headings)
    return titles


def _package_sources() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), filename=str(path)) for path in sorted(PACKAGE.rglob("*.py"))}


def _names_in(node: ast.AST) -> set[str]:
    return ({n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            | {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)})


@cache
def package_references() -> dict[str, set[str]]:
    """For every function, class and module-level constant of the package, the names its code uses.

    A module's command line (`main`) is left out: it calls everything in its module, and a chapter that says
    "main" has not used them."""
    references: dict[str, set[str]] = {}
    for tree in _package_sources().values():
        for node in ast.walk(tree):
            if isinstance(node, DEFINITIONS) and node.name != "main":
                references.setdefault(node.name, set()).update(_names_in(node))
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for name in _names_in(target):
                        references.setdefault(name, set()).update(_names_in(node.value))
    return references


@cache
def names_a_chapter_reaches(number: int) -> frozenset[str]:
    """The names in chapter `number`'s code (its notebooks' code cells, its checks module), and every package name
    they reach."""
    name = book_chapters()[number].name
    text = "\n".join(_code_of(ROOT / folder / name) for folder in NOTEBOOK_FOLDERS if (ROOT / folder / name).exists())
    checks_module = PACKAGE / "course" / "checks" / f"ch{number:02d}.py"
    if checks_module.exists():
        text += "\n" + checks_module.read_text()
    reached = set(re.findall(r"[A-Za-z_]\w*", text))
    references = package_references()
    todo = [word for word in reached if word in references]
    while todo:
        for used in references[todo.pop()]:
            if used not in reached:
                reached.add(used)
                if used in references:
                    todo.append(used)
    return frozenset(reached)


def _statement_names(statement: ast.stmt) -> set[str]:
    """What a statement defines (a function, a class, a constant), or else every name it uses."""
    if isinstance(statement, DEFINITIONS):
        return {statement.name}
    if isinstance(statement, (ast.Assign, ast.AnnAssign)):
        targets = statement.targets if isinstance(statement, ast.Assign) else [statement.target]
        return set().union(*map(_names_in, targets))
    return _names_in(statement)


def _texts(path: Path, tree: ast.Module):
    """(line, text, the names it documents) for each docstring and comment of a module.

    A comment documents the statement it ends (a trailing comment) or the statement below it."""
    module_name = path.parent.name if path.stem == "__init__" else path.stem
    docstring = ast.get_docstring(tree, clean=False)
    if docstring:
        yield 1, docstring, {module_name} | {node.name for node in tree.body if isinstance(node, DEFINITIONS)}
    for node in ast.walk(tree):
        if isinstance(node, DEFINITIONS) and (docstring := ast.get_docstring(node, clean=False)):
            yield node.lineno, docstring, {node.name}
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        if token.type != tokenize.COMMENT:
            continue
        line = token.start[0]
        if token.line.strip().startswith("#"):  # a comment line: the next statement
            below = [node for node in statements if node.lineno > line]
            documented = min(below, key=lambda node: node.lineno, default=None)
        else:  # a trailing comment: the innermost statement around it
            around = [node for node in statements if node.lineno <= line <= node.end_lineno]
            documented = max(around, key=lambda node: node.lineno, default=None)
        names = _statement_names(documented) if documented else {module_name}
        # A comment that opens with a chapter ("# --- Chapter 7: ...") heads what follows; any other comment names a
        # chapter in passing, and states a home only in words such as "chapter 7 prints it".
        yield line, token.string if SECTION_COMMENT.match(token.string) else token.string[0] + "\n" + token.string, names


def _home_claims(text: str):
    """The chapter numbers a text gives as the home of what it documents: those on its first line (a summary
    line or a section comment), and those anywhere in words such as "chapter 9 uses it"."""
    start = len(text) - len(text.lstrip())
    first_line_end = text.find("\n", start) if "\n" in text[start:] else len(text)
    claims = [match for match in CHAPTER_NUMBERS.finditer(text) if match.start() < first_line_end]
    claims += list(USAGE_CLAIM.finditer(text))
    return [(match.group(0), _chapter_numbers(match.group(1))) for match in claims]


def find_problems(sources: dict[Path, ast.Module]) -> list[str]:
    """Every chapter reference in the docstrings and comments of `sources` that the book contradicts."""
    found = []
    chapters = book_chapters()
    for path, tree in sources.items():
        where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
        for line, text, home in _texts(path, tree):
            for match in CHAPTER_NUMBERS.finditer(text):
                missing = [n for n in _chapter_numbers(match.group(1)) if n not in chapters]
                if missing:
                    found.append(f"{where}:{line}: {match.group(0)!r}: the book has no chapter {missing}")
            for match in QUOTED_TITLE.finditer(text):
                title = match.group(1).strip().lower()
                number = re.search(r"\d+", match.group(0))
                if number:  # chapter 8, "A heading in it"
                    known = title in chapter_titles().get(int(number.group()), (set(), set()))[1]
                else:  # the chapter "Its title"
                    known = any(title in titles for titles, _ in chapter_titles().values())
                if not known:
                    found.append(f"{where}:{line}: {match.group(0)!r} is not the title of a chapter nor a heading in it")
            for match in NICKNAME.finditer(text):
                if match.group(1).lower() not in GENERIC_WORDS:
                    found.append(f"{where}:{line}: {match.group(0)!r}: name the chapter by its number")
            for claim, numbers in _home_claims(text):
                if all(n in chapters for n in numbers) and not any(
                        home & names_a_chapter_reaches(n) for n in numbers):
                    users = [n for n in chapters if home & names_a_chapter_reaches(n)]
                    found.append(f"{where}:{line}: {claim!r} for {sorted(home)[:3]}, which chapter{numbers} does "
                                 f"not use (used by chapters {users})")
    return found


def test_the_book_has_numbered_chapters_with_titles():
    assert sorted(book_chapters()) == list(range(len(book_chapters()))) and len(book_chapters()) >= 10
    assert "what formulaic writing looks like" in chapter_titles()[0][0]
    assert "measuring formulaic text" in chapter_titles()[1][1] - chapter_titles()[1][0]  # a section, not a chapter


def test_every_chapter_named_in_a_docstring_or_comment_exists_and_uses_what_it_is_named_for():
    problems = find_problems(_package_sources())
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("text, expected", [
    ('"""Helpers (chapter 42)."""', "no chapter [42]"),
    ('"""Helpers (the chapter "Measuring formulaic text")."""', "not the title of a chapter"),
    ('"""Helpers for the TinyTales chapter."""', "name the chapter by its number"),
    ('def make_compute_loss_func():\n    """A loss for the Trainer (chapter 4 uses it)."""', "which chapter[4] does not use"),
    ('# --- Chapter 1: plots ---\ndef plot_carry_over():\n    pass', "which chapter[1] does not use"),
])
def test_a_wrong_reference_is_found(text, expected, tmp_path):
    module = tmp_path / "planted.py"
    module.write_text(text + "\n")
    found = find_problems({module: ast.parse(module.read_text())})
    assert any(expected in problem for problem in found), found
