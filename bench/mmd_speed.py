"""How long the MMD permutation test takes at the course's sizes (moved out of the tests: a timing is a benchmark).

    python bench/mmd_speed.py [--repeats 5]

Times `dftlab.metrics.mmd` on two sets of 300 embeddings of width 384 (a MiniLM embedding of 300 stories each) with
200 permutations, the largest call a chapter makes, and prints the median wall time. It took well under 5 s on the
project's 2-core CPU machine; a much slower result means the permutations are no longer computed from one kernel
matrix.
"""
import argparse
import statistics
import time

import numpy as np

from dftlab.metrics import mmd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(300, 384)), rng.normal(size=(300, 384))
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        mmd(x, y, num_permutations=200)
        times.append(time.perf_counter() - start)
    print(f"mmd, 300 x 384 against 300 x 384, 200 permutations: median {statistics.median(times):.3f} s "
          f"over {args.repeats} runs (min {min(times):.3f} s, max {max(times):.3f} s)")


if __name__ == "__main__":
    main()
