"""Wall time and peak memory of every notebook, against the course's budget of 90 s and 2 GB on 2 cores.

    .venv/bin/python bench/notebook_resources.py                 # chapters/, exercises/, solutions/
    .venv/bin/python bench/notebook_resources.py chapters/03_sft.ipynb

Each notebook runs in a fresh kernel, exactly as `tools/execute_notebooks.py` (and nbval) run it, on a copy in a
temporary folder, so the committed outputs are not touched. Wall time is the whole execution, kernel start
included. Peak memory is the largest resident set of any process of that execution, which is the kernel's:
each notebook runs under its own small wrapper process, whose RUSAGE_CHILDREN maximum covers exactly that
notebook's executor and kernel.

Results vary with the load on the machine; run it on a quiet machine and give the load average with the
numbers (it prints it) when recording them in bench/RESULTS.md.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dftlab.course.install import NOTEBOOK_ENV

ROOT = Path(__file__).resolve().parents[1]
WALL_BUDGET_SECONDS = 90.0
MEMORY_BUDGET_MB = 2048.0

# Runs in a child process: execute one notebook (copied next to its original's folder layout) and report.
WRAPPER = r"""
import json, resource, subprocess, sys, time
started = time.perf_counter()
subprocess.run([sys.executable, sys.argv[1], sys.argv[2]], check=True, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL)
wall = time.perf_counter() - started
peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # kilobytes on Linux
print(json.dumps({"wall_seconds": wall, "peak_mb": peak_kb / 1024}))
"""


def measure(notebook: Path) -> dict:
    """Execute a copy of `notebook` in a fresh kernel; return its wall time and peak resident memory."""
    with tempfile.TemporaryDirectory() as scratch:
        # Keep the notebook's folder name, so relative paths inside it resolve the same way.
        copy = Path(scratch) / notebook.parent.name / notebook.name
        copy.parent.mkdir()
        shutil.copy(notebook, copy)
        result = subprocess.run([sys.executable, "-c", WRAPPER, str(ROOT / "tools" / "execute_notebooks.py"),
                                 str(copy)], capture_output=True, text=True,
                                env=dict(os.environ, **NOTEBOOK_ENV))
        if result.returncode != 0:
            raise RuntimeError(f"{notebook} failed to execute:\n{result.stderr[-2000:]}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    notebooks = [Path(arg).resolve() for arg in argv] or sorted(
        path for folder in ("chapters", "exercises", "solutions") for path in (ROOT / folder).glob("*.ipynb"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'notebook':42s} {'wall s':>7s} {'/ 90 s':>7s} {'peak MB':>8s} {'/ 2 GB':>7s}")
    over_budget = []
    for notebook in notebooks:
        numbers = measure(notebook)
        wall_ratio = numbers["wall_seconds"] / WALL_BUDGET_SECONDS
        memory_ratio = numbers["peak_mb"] / MEMORY_BUDGET_MB
        name = str(notebook.relative_to(ROOT)) if notebook.is_relative_to(ROOT) else notebook.name
        print(f"{name:42s} {numbers['wall_seconds']:7.1f} {wall_ratio:7.2f} {numbers['peak_mb']:8.0f} "
              f"{memory_ratio:7.2f}", flush=True)
        if wall_ratio > 1 or memory_ratio > 1:
            over_budget.append(name)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print("over budget: " + (", ".join(over_budget) if over_budget else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
