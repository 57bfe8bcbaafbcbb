"""Security by construction: safe weight loading, no remote code, no eval, pinned dependencies, stated licences.

Most checks read the source with the `ast` module, so they see calls, not comments or docstrings that merely
mention them. Each finder is first tried on a small snippet of bad code, so a finder that found nothing
because it is broken cannot pass silently.
"""
from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "dftlab"
ASSETS = PACKAGE / "assets"
PYTHON_FILES = sorted([*ROOT.joinpath("src").rglob("*.py"), *ROOT.joinpath("tools").rglob("*.py"),
                       *ROOT.joinpath("bench").rglob("*.py")])
NOTEBOOKS = sorted(path for folder in ("chapters", "exercises", "solutions") for path in (ROOT / folder).glob("*.ipynb"))


def calls(tree: ast.AST):
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def keyword_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def dotted_name(node: ast.AST) -> str:
    """`torch.load` for the function of torch.load(...), `AutoTokenizer.from_pretrained` likewise."""
    if isinstance(node, ast.Attribute):
        return f"{dotted_name(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


# --- The finders: each returns the offending calls of one parsed file, as "line: code". ---

def torch_loads_without_weights_only(tree: ast.AST) -> list[str]:
    return [f"{call.lineno}: {ast.unparse(call)}" for call in calls(tree)
            if dotted_name(call.func) == "torch.load" and not keyword_is(call, "weights_only", True)]


def unsafe_deserialisers(tree: ast.AST) -> list[str]:
    """pickle/joblib loading, and numpy loading with allow_pickle=True: each can run code hidden in a file."""
    return [f"{call.lineno}: {ast.unparse(call)}" for call in calls(tree)
            if dotted_name(call.func) in ("pickle.load", "pickle.loads", "joblib.load", "dill.load")
            or (dotted_name(call.func) in ("np.load", "numpy.load") and keyword_is(call, "allow_pickle", True))]


def trust_remote_code_settings(tree: ast.AST) -> list[str]:
    """Any trust_remote_code= other than the literal False."""
    return [f"{call.lineno}: {ast.unparse(call)}" for call in calls(tree)
            if any(k.arg == "trust_remote_code" for k in call.keywords)
            and not keyword_is(call, "trust_remote_code", False)]


def eval_or_exec_calls(tree: ast.AST) -> list[str]:
    """Calls of the builtins eval/exec; `model.eval()` is a method, not the builtin, and is fine."""
    return [f"{call.lineno}: {ast.unparse(call)}" for call in calls(tree)
            if isinstance(call.func, ast.Name) and call.func.id in ("eval", "exec")]


def from_pretrained_without_safetensors(tree: ast.AST) -> list[str]:
    """from_pretrained on a model class must pass use_safetensors=True, or read a GGUF file (`gguf_file=`: tensors and
    metadata parsed by the gguf package, no pickles); tokenizers hold no code or pickles."""
    return [f"{call.lineno}: {ast.unparse(call)}" for call in calls(tree)
            if isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained"
            and "Tokenizer" not in dotted_name(call.func.value) and not keyword_is(call, "use_safetensors", True)
            and not any(keyword.arg == "gguf_file" for keyword in call.keywords)]


FINDERS_AND_BAD_CODE = [
    (torch_loads_without_weights_only, "state = torch.load(path)"),
    (unsafe_deserialisers, "data = pickle.load(f)\narray = np.load(path, allow_pickle=True)"),
    (trust_remote_code_settings, "AutoModel.from_pretrained(name, trust_remote_code=True)"),
    (eval_or_exec_calls, "value = eval(answer_text)\nexec(code)"),
    (from_pretrained_without_safetensors, "model = AutoModelForCausalLM.from_pretrained(name)"),
]
SAFE_CODE = """
state = torch.load(path, weights_only=True)
array = np.load(path)
model = AutoModelForCausalLM.from_pretrained(name, use_safetensors=True, trust_remote_code=False)
tokenizer = AutoTokenizer.from_pretrained(name)
model.eval()
"""


@pytest.mark.parametrize("finder, bad_code", FINDERS_AND_BAD_CODE, ids=[f.__name__ for f, _ in FINDERS_AND_BAD_CODE])
def test_each_finder_flags_bad_code_and_passes_safe_code(finder, bad_code):
    assert finder(ast.parse(bad_code)), f"{finder.__name__} missed: {bad_code}"
    assert not finder(ast.parse(SAFE_CODE))


def offenders(finder, files=PYTHON_FILES) -> dict[str, list[str]]:
    found = {}
    for path in files:
        hits = finder(ast.parse(path.read_text(), filename=str(path)))
        if hits:
            found[str(path.relative_to(ROOT))] = hits
    return found


def test_the_scan_covers_the_package_tools_and_bench():
    scanned = {path.relative_to(ROOT).parts[0] for path in PYTHON_FILES}
    assert {"src", "tools", "bench"} <= scanned
    assert PACKAGE / "course" / "checks" / "engine.py" in PYTHON_FILES and PACKAGE / "models.py" in PYTHON_FILES


def test_every_torch_load_passes_weights_only_true():
    assert not offenders(torch_loads_without_weights_only)


def test_nothing_deserialises_with_pickle():
    assert not offenders(unsafe_deserialisers)


def test_trust_remote_code_is_never_set():
    assert not offenders(trust_remote_code_settings)


def test_notebooks_neither_trust_remote_code_nor_torch_load_unsafely():
    unsafe = re.compile(r"trust_remote_code\s*=\s*True|torch\.load\((?![^)]*weights_only\s*=\s*True)")
    found = [f"{path.relative_to(ROOT)}: {match.group(0)}" for path in NOTEBOOKS
             for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
             for match in unsafe.finditer(cell.source)]
    assert not found


def test_no_builtin_eval_or_exec_in_the_package():
    """In particular dftlab.course.checks only calls the learner's functions and compares values; it never evaluates text."""
    assert not offenders(eval_or_exec_calls, [p for p in PYTHON_FILES if p.is_relative_to(PACKAGE)])


def test_every_from_pretrained_in_src_reads_safetensors_or_a_tokenizer():
    source_files = [p for p in PYTHON_FILES if p.is_relative_to(PACKAGE)]
    loads = [call for path in source_files for call in calls(ast.parse(path.read_text()))
             if isinstance(call.func, ast.Attribute) and call.func.attr == "from_pretrained"]
    assert len(loads) >= 2, "expected the model loaders of dftlab.models and dftlab.study"
    assert not offenders(from_pretrained_without_safetensors, source_files)


# ---------------------------------------------------------------------------------------------
# Dependencies: pinned to the versions tested.
# (That the checks stop learner code at a time limit is tested in tests/test_course_checks.py.)
# ---------------------------------------------------------------------------------------------


def test_every_dependency_is_pinned_with_double_equals_in_pyproject_and_environment_yml():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    lines = (ROOT / "environment.yml").read_text().splitlines()
    pip_entries = [line.strip()[2:].strip().strip('"') for line in lines[lines.index("  - pip:") + 1:]
                   if line.strip().startswith("- ")]
    pattern = re.compile(r"^[A-Za-z0-9._\-\[\]]+==[0-9][0-9A-Za-z.+\-]*$")
    unpinned = [r for r in requirements + pip_entries if r != "-e ." and not pattern.match(r)]
    assert not unpinned, f"pin these with == to the version tested: {unpinned}"


# ---------------------------------------------------------------------------------------------
# Licences: every shipped data file and model states one.
# ---------------------------------------------------------------------------------------------

# asset folder -> (the file in it that states the licence, the licence it states)
ASSET_LICENCES = {"corpus": ("PROVENANCE.md", "public domain"), "tiny-gpt2": ("MODEL_CARD.md", "MIT"),
                  "tiny-gpt2-english": ("MODEL_CARD.md", "MIT"), "tiny-gpt2-medium": ("MODEL_CARD.md", "MIT"),
                  "results": ("README.md", "CC BY 4.0"),
                  "slop_score": ("PROVENANCE.md", "MIT"), "course": ("README.md", "CC BY 4.0"),
                  "study": ("README.md", "CC BY 4.0"),
                  "tinytales": ("README.md", "MIT")}


def test_every_asset_folder_has_a_licence_statement():
    folders = {path.name for path in ASSETS.iterdir() if path.is_dir() and not path.name.startswith("__")}
    assert folders == set(ASSET_LICENCES), "a new asset folder needs a licence statement (and an entry here)"
    licence_file = (ROOT / "LICENSE").read_text()
    for folder, (statement, licence) in ASSET_LICENCES.items():
        text = (ASSETS / folder / statement).read_text()
        assert re.search(r"licen[cs]e", text, re.IGNORECASE), f"{folder}/{statement} says nothing about a licence"
        assert licence.lower() in text.lower(), f"{folder}/{statement} does not state {licence!r}"
        assert f"src/dftlab/assets/{folder}" in licence_file, f"LICENSE does not cover src/dftlab/assets/{folder}"


def test_every_corpus_file_has_a_provenance_row_with_its_licence():
    rows = [line for line in (ASSETS / "corpus" / "PROVENANCE.md").read_text().splitlines() if line.startswith("|")]
    data_files = [path.name for path in (ASSETS / "corpus").iterdir() if path.suffix != ".md"]
    assert data_files
    for name in data_files:
        row = [line for line in rows if f"`{name}`" in line]
        assert len(row) == 1 and "public domain" in row[0].lower(), f"{name} has no provenance row with its licence"


def test_the_model_card_states_the_licence_and_points_at_files_that_exist():
    card = (ASSETS / "tiny-gpt2" / "MODEL_CARD.md").read_text()
    section = card.split("## Licence", 1)[1].split("\n## ", 1)[0]
    assert "Weights: MIT" in section and "public domain" in section
    for reference in re.findall(r"`(dftlab/[^`]+)`", section):
        assert (ROOT / "src" / reference).exists(), f"the model card points at {reference}, which does not exist"
