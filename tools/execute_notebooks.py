"""Execute notebooks in place, the way CI checks them (offline, seeded), so their stored outputs are fresh.

    python tools/execute_notebooks.py chapters/01_token_distributions.ipynb [more.ipynb ...]

Run it after editing a notebook, then commit the notebook with its outputs; nbval compares against them.

Cells run with `store_history=False`, exactly as nbval runs them. One consequence: IPython's trailing `;` does
not silence a cell's last value under nbval, so end plotting cells with a statement (`ax = ...`, `_ = ...`),
not with a bare expression followed by `;`.
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["DFTLAB_PROGRESS"] = "0"  # stored outputs must not hold a progress bar

CELL_TIMEOUT_SECONDS = 300  # the same limit `make test` gives nbval


def execute_in_place(path: str) -> float:
    started = time.time()
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}})
    with client.setup_kernel():
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index, store_history=False)
        client.set_widgets_metadata()
    nbformat.write(notebook, path)
    return time.time() - started


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for notebook_path in sys.argv[1:]:
        print(f"{notebook_path}: executed in {execute_in_place(notebook_path):.1f}s", flush=True)
