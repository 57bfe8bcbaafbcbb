"""Settings of torch's process-wide state, changed only for the length of a `with` block.

torch keeps two settings for the whole process: how many threads its kernels use, and the global random generator
(dropout draws from it, and so do a few library calls that take no generator). A function that sets either and
leaves it set changes every later cell of the learner's notebook. The two context managers here set one for a block
and put the old value back on the way out, whatever happens inside.
"""
from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from dftlab.validation import check_int


def default_transformers_verbosity_to_error() -> None:
    """For a command line: transformers' informational warnings off, unless TRANSFORMERS_VERBOSITY says otherwise
    (e.g. its warning, once per process, that generation passes no attention mask, which needs none without padding)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@contextmanager
def torch_threads(threads: int):
    """Run the block with `torch.set_num_threads(threads)`; the previous count comes back afterwards.

    The study's runs use one thread: their numbers then do not depend on how many cores a machine has, and on
    tensors this small, handing work to other threads costs more than the arithmetic."""
    threads = check_int(threads, "threads")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@contextmanager
def torch_global_seed(seed: int):
    """Run the block with torch's global generator seeded by `seed`, and give the generator back as it was.

    Use it only for draws that cannot take a `torch.Generator` (dropout, a model's initialisation); anything
    that can take one should be passed its own. The CPU generator is forked; CUDA's are not touched."""
    seed = check_int(seed, "seed", None)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
