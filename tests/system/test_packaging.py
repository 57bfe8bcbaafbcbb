"""The environment files agree, and the repository has the layout the course promises."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!\[ ;]", requirement.strip().strip('"'), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + project["optional-dependencies"]["dev"]
    return {_name(r): r for r in requirements}


def _environment_requirements() -> dict[str, str]:
    lines = (ROOT / "environment.yml").read_text().splitlines()
    start = lines.index("  - pip:")
    entries = [l.strip()[2:].strip().strip('"') for l in lines[start + 1:] if l.strip().startswith("- ")]
    return {_name(e): e for e in entries if not e.startswith("-e")}


def test_environment_yml_lists_the_same_packages_as_pyproject():
    assert _environment_requirements() == _pyproject_requirements()


def test_environment_yml_uses_python_311():
    assert "  - python=3.11" in (ROOT / "environment.yml").read_text().splitlines()


def test_every_dependency_is_pinned():
    unpinned = [r for r in _pyproject_requirements().values() if "==" not in r]
    assert not unpinned, f"pin these to the version tested here: {unpinned}"


def test_torch_is_the_cpu_wheel_pin():
    assert _pyproject_requirements()["torch"] == "torch==2.13.0"
    assert "torch==2.13.0" in (ROOT / "Makefile").read_text()


def test_the_installed_torch_is_the_pinned_cpu_wheel():
    import torch

    assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
    # A CUDA wheel carries the CUDA runtime (gigabytes) and reports its CUDA version here; the CPU wheel has none.
    assert torch.version.cuda is None, f"torch {torch.__version__} is a CUDA build (CUDA {torch.version.cuda})"
    assert not torch.backends.cuda.is_built()


def test_layout():
    for path in ["chapters", "exercises", "solutions", "src/dftlab", "tests", "bench", "_config.yml", "_toc.yml",
                 "environment.yml", "pyproject.toml", "Makefile", "README.md", "references.bib", ".ci/run", "LICENSE"]:
        assert (ROOT / path).exists(), path


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make book" in readme
    assert "make test" in (ROOT / ".ci" / "run").read_text()
