"""Every CPU prints the same digits: the notebooks that train reproduce their stored outputs with torch's vector
kernels forced to another instruction set.

torch picks its kernels (AVX-512, AVX2, NEON, generic) by the CPU it finds, and their float results differ in the
last bits; `ATEN_CPU_CAPABILITY=default` forces the generic ones, and `MKL_ENABLE_INSTRUCTIONS` and `DNNL_MAX_CPU_ISA`
cap the matrix-product libraries (which choose their kernels by CPU on their own) in the same way, so this machine
stands in for another CPU (bench/cpu_spread.py uses the same settings to measure the spread). The
notebooks that fine-tune load the tiny models in float64 (README, "Reproducible on any CPU"), where those last-bit
differences stay far below the printed digits. This test runs nbval on them, exactly as `make test` does, in a
process whose kernels are the generic ones, and first checks that the setting took effect.
"""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# A notebook trains if a code cell calls the course's training loop or TRL trainer.
TRAINS = re.compile(r"\btrain\.train\(|\bbuild_trainer\(")

pytestmark = pytest.mark.slow


def notebooks_that_train() -> list[Path]:
    """The chapters and solutions that train. An exercise notebook's training cells are its solution's, word for word
    (`test_an_exercise_trains_only_as_its_solution_does`), so the solution stands for it here: running both on the
    generic kernels would spend minutes of `make test` checking the same digits twice."""
    found = []
    for folder in ("chapters", "solutions"):
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            if training_cells(path):
                found.append(path)
    return found


def training_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells
            if cell["cell_type"] == "code" and TRAINS.search("".join(cell["source"]))]


def test_an_exercise_trains_only_as_its_solution_does():
    for exercise in sorted((ROOT / "exercises").glob("*.ipynb")):
        solution_cells = training_cells(ROOT / "solutions" / exercise.name)
        for cell in training_cells(exercise):
            assert cell in solution_cells, f"{exercise.name}: a training cell that its solution does not hold"


def generic_kernel_env() -> dict:
    return {**os.environ, "ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
            "DNNL_MAX_CPU_ISA": "SSE41"}


def test_the_training_notebooks_are_found():
    names = {f"{path.parent.name}/{path.name}" for path in notebooks_that_train()}
    assert {"chapters/03_sft.ipynb", "chapters/04_dft.ipynb", "solutions/03_sft.ipynb"} <= names, names


def test_the_generic_kernels_are_in_force_in_the_child_process():
    result = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            env=generic_kernel_env(), capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "DEFAULT", result.stdout + result.stderr


def test_the_training_notebooks_reproduce_their_outputs_on_the_generic_kernels():
    notebooks = [str(path.relative_to(ROOT)) for path in notebooks_that_train()]
    result = subprocess.run([sys.executable, "-m", "pytest", *notebooks, "--nbval", "--nbval-sanitize-with",
                             "tests/sanitize.cfg", "--nbval-cell-timeout=600", "-q", "-p", "no:cacheprovider"],
                            env=generic_kernel_env(), capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, "nbval on the generic kernels failed:\n" + result.stdout[-8000:]
