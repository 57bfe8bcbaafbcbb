"""The tests mirror the modules (tests/README.md): each module of src/dftlab has its test file, named by one rule.

`dftlab.X` is tested in tests/test_X.py, `dftlab.metrics.Y` in tests/test_metrics_Y.py, `dftlab.study.Y` in
tests/test_study_Y.py, `dftlab.course.Y` in tests/test_course_Y.py, and the whole package `dftlab.course.checks`
(its engine and its chapter modules) in tests/test_course_checks.py. Tests of the whole course live in tests/system/.
"""
from pathlib import Path

import dftlab

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(dftlab.__file__).resolve().parent
TESTS = ROOT / "tests"
ONE_FILE_PACKAGES = ("course.checks",)  # packages tested as a whole, in one file

def expected_test_file(module: str) -> str:
    """The test file's name for a dotted module name, e.g. "dftlab.study.run" -> "test_study_run.py"."""
    inner = module.removeprefix("dftlab.")
    for package in ONE_FILE_PACKAGES:
        if inner == package or inner.startswith(package + "."):
            inner = package
    return "test_" + inner.replace(".", "_") + ".py"


def package_modules() -> set[str]:
    """Every module of src/dftlab as a dotted name; a package's __init__ and __main__ are the package itself."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] in ("__init__", "__main__"):
            continue
        modules.add(".".join(("dftlab", *parts)))
    return modules


def module_test_files() -> set[str]:
    return {path.name for path in TESTS.glob("test_*.py")}


def test_the_naming_rule():
    assert expected_test_file("dftlab.plots") == "test_plots.py"
    assert expected_test_file("dftlab.metrics.two_sample") == "test_metrics_two_sample.py"
    assert expected_test_file("dftlab.study.run") == "test_study_run.py"
    assert expected_test_file("dftlab.course.grading") == "test_course_grading.py"
    assert expected_test_file("dftlab.course.checks.ch03") == expected_test_file("dftlab.course.checks.engine") \
        == "test_course_checks.py"


def test_every_module_has_its_test_file():
    missing = sorted(f"{module} (tests/{expected_test_file(module)})" for module in package_modules()
                     if expected_test_file(module) not in module_test_files())
    assert not missing, ("modules without a test file; add one by the rule of tests/README.md: "
                         + ", ".join(missing))


def test_every_test_file_names_a_module():
    named = {expected_test_file(module) for module in package_modules()}
    orphans = sorted(module_test_files() - named)
    assert not orphans, ("test files that name no module of src/dftlab; rename them by the rule of tests/README.md, "
                         f"or move a test of the whole course to tests/system/: {orphans}")


def test_system_tests_do_not_shadow_module_test_files():
    """tests/ and tests/system/ hold no package __init__, so a file name must be unique across both."""
    clashes = sorted({path.name for path in (TESTS / "system").glob("test_*.py")} & module_test_files())
    assert not clashes, f"rename these tests/system/ files, which share a name with a module test file: {clashes}"
