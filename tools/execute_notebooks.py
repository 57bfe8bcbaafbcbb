"""Execute notebooks in place, the way CI checks them (offline, seeded), so their stored outputs are fresh.

    python tools/execute_notebooks.py chapters/01_token_distributions.ipynb [more.ipynb ...]

Run it after editing a notebook, then commit the notebook with its outputs; nbval compares against them.
"""
import os
import sys
import time

import nbformat
from nbclient import NotebookClient

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

for path in sys.argv[1:]:
    started = time.time()
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=True,
                   resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}}).execute()
    nbformat.write(notebook, path)
    print(f"{path}: executed in {time.time() - started:.1f}s")
