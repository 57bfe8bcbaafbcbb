"""The package's import graph is one-way: no module of src/dftlab imports, even inside a function, a module that
imports it back (directly or through others), and no module is over 800 lines."""
import ast
from pathlib import Path

import dftlab

PACKAGE = Path(dftlab.__file__).resolve().parent
MAX_LINES = 800


def _module(path: Path) -> str:
    """'dftlab.metrics.text' for src/dftlab/metrics/text.py, 'dftlab.metrics' for its __init__.py."""
    parts = ("dftlab",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the dftlab modules it imports anywhere in its file (function-level imports included)."""
    modules = {_module(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = graph.setdefault(module, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dftlab"):
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            targets.update(name for name in names if name in modules and name != module
                           and not module.startswith(name + "."))  # a submodule may use its package's names
    return graph


def test_the_import_graph_has_no_cycle():
    graph = import_graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(unit, path):
        state[unit] = 1
        for target in sorted(graph.get(unit, ())):
            assert state.get(target) != 1, f"import cycle: {' -> '.join(path + [target])}"
            if target not in state:
                visit(target, path + [target])
        state[unit] = 2

    for unit in sorted(graph):
        if unit not in state:
            visit(unit, [unit])


def test_the_graph_sees_the_known_edges():  # guards the test above against a parser that finds nothing
    graph = import_graph()
    assert {"dftlab.objectives", "dftlab.validation", "dftlab.data"} <= graph["dftlab.train"]
    assert "dftlab.objectives" in graph["dftlab.metrics.model_stats"] and "dftlab.validation" in graph["dftlab.data"]


# The three jobs of the package (dftlab/__init__.py): the core a learner studies, the experiments, the course machinery.
# dftlab.chat_samples is an experiment that stays at the top level: the frozen rules (study/rules.py) import it there.
EXPERIMENTS = ("dftlab.study", "dftlab.chat_samples")
COURSE = ("dftlab.course",)


def layer(module: str) -> str:
    def inside(prefixes):
        return any(module == p or module.startswith(p + ".") for p in prefixes)
    return "course" if inside(COURSE) else "experiments" if inside(EXPERIMENTS) else "core"


def test_the_core_imports_neither_the_experiments_nor_the_course():
    order = {"core": 0, "experiments": 1, "course": 2}
    upward = sorted((module, target) for module, targets in import_graph().items() for target in targets
                    if order[layer(target)] > order[layer(module)])
    assert not upward, f"an import from a lower layer into a higher one (core < experiments < course): {upward}"


def test_each_layer_is_where_the_package_says():
    assert layer("dftlab.train") == layer("dftlab.metrics.text") == "core"
    assert layer("dftlab.study.scale") == layer("dftlab.chat_samples") == "experiments"
    assert layer("dftlab.course.grading") == layer("dftlab.course.checks.ch01") == "course"
    assert layer("dftlab.studying") == "core"  # a prefix is a package, not a string prefix


def test_no_module_is_over_800_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules (at most {MAX_LINES} lines each): {long}"


def test_no_module_imports_another_modules_private_names():
    """A name that starts with "_" is its module's own: another module that needs it gets a public name instead."""
    private = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dftlab"):
                private += [f"{path.relative_to(PACKAGE)}: {node.module}.{alias.name}" for alias in node.names
                            if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not private, f"imports of another module's private names: {private}"


# Names every command-line module defines for itself.
COMMAND_LINE_NAMES = {"main", "build_parser"}


def test_no_two_modules_define_the_same_public_name():
    """One home to each idea: two public functions or classes of the same name in two modules (two `config_hash`,
    two `summary_table`, `scale.train` beside `train.train`) read as one thing and are not. The chapter checks'
    modules declare exercises, not ideas, and are left out."""
    homes: dict[str, list[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if "checks" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_")
                    and node.name not in COMMAND_LINE_NAMES):
                homes.setdefault(node.name, []).append(str(path.relative_to(PACKAGE)))
    twice = {name: where for name, where in homes.items() if len(where) > 1}
    assert not twice, f"public names defined in more than one module: {twice}"
