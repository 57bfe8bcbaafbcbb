"""Execute notebooks in place, the way CI checks them (offline, seeded), so their stored outputs are fresh.

    python tools/execute_notebooks.py chapters/01_token_distributions.ipynb [more.ipynb ...]

Run it after editing a notebook, then commit the notebook with its outputs; nbval compares against them.
The executor is `dftlab.course.exercises.execute_notebook`, which also runs the exercises and solutions: cells run
with `store_history=False`, as nbval runs them, so IPython's trailing `;` does not silence a value. End
plotting cells with `plt.show()`, not with a bare expression followed by `;`.
"""
import sys
import time
from pathlib import Path

import nbformat

from dftlab.course.exercises import execute_notebook


def execute_in_place(path: str) -> float:
    """Execute the notebook at `path` and write it back with its new outputs; return the seconds it took."""
    started = time.time()
    notebook = nbformat.read(path, as_version=4)
    execute_notebook(notebook, Path(path).resolve().parent)
    nbformat.write(notebook, path)
    return time.time() - started


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for notebook_path in sys.argv[1:]:
        print(f"{notebook_path}: executed in {execute_in_place(notebook_path):.1f}s", flush=True)
