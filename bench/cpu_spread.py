"""How far the notebooks' printed numbers move when torch's CPU kernels change (issue: any CPU reproduces).

    python bench/cpu_spread.py chapters/03_sft.ipynb [more.ipynb ...] --capabilities default avx2 avx512

Each notebook is executed once per capability, by the executor that wrote the stored outputs, with the whole CPU
stack capped at that instruction set: `ATEN_CPU_CAPABILITY` for torch's own vector kernels (read at import: the
generic, AVX2 or AVX-512 build), `MKL_ENABLE_INSTRUCTIONS` for MKL's matrix products and `DNNL_MAX_CPU_ISA` for
oneDNN's, which pick their kernels by CPU on their own. `--aten-only` sets the first alone. Every text output is then compared with the stored one, number by number: the table lists each printed
number that changed, with the stored and the new text, and a summary line per notebook and capability.
A capability this CPU lacks is skipped (torch falls back silently, which would measure nothing).
"""
import argparse
import copy
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

NUMBER = re.compile(r"[-+]?\d[\d,]*\.?\d*(?:[eE][-+]?\d+)?")


def cpu_has(capability: str) -> bool:
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return {"default": True, "avx2": " avx2" in flags, "avx512": " avx512f" in flags}.get(capability, False)


def text_outputs(cell) -> str:
    pieces = []
    for output in cell.get("outputs", []):
        if "text" in output:
            pieces.append(output["text"])
        elif "data" in output and "text/plain" in output["data"]:
            pieces.append(output["data"]["text/plain"])
        elif output.get("output_type") == "error":
            pieces.append(f"ERROR {output.get('ename')}: {output.get('evalue')}")
    return "".join(pieces)


# What each capability means for the three libraries that choose kernels by CPU.
CAPABILITY_ENV = {
    "default": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "DNNL_MAX_CPU_ISA": "SSE41"},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "DNNL_MAX_CPU_ISA": "AVX2"},
    "avx512": {"ATEN_CPU_CAPABILITY": "avx512", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "DNNL_MAX_CPU_ISA": "AVX512_CORE"},
}


def capability_env(capability: str, aten_only: bool = False) -> dict:
    """The environment variables that cap torch, MKL and oneDNN at `capability` (torch's alone with `aten_only`)."""
    chosen = CAPABILITY_ENV[capability]
    return {"ATEN_CPU_CAPABILITY": chosen["ATEN_CPU_CAPABILITY"]} if aten_only else dict(chosen)


def execute_copy(path: Path, capability: str, out_dir: Path, aten_only: bool = False) -> Path:
    """Execute a copy of `path` with torch's kernels forced to `capability`, in a child process."""
    target = out_dir / f"{path.stem}.{capability}.ipynb"
    code = ("import sys, nbformat; from pathlib import Path; from dftlab.course.exercises import execute_notebook; "
            "nb = nbformat.read(sys.argv[1], as_version=4); "
            "execute_notebook(nb, Path(sys.argv[1]).resolve().parent); nbformat.write(nb, sys.argv[2])")
    env = {**os.environ, **capability_env(capability, aten_only)}
    subprocess.run([sys.executable, "-c", code, str(path), str(target)], env=env, check=True)
    return target


def compare(stored_path: Path, new_path: Path):
    """Yield (cell index, stored number, new number, stored line) for every printed number that changed."""
    stored = nbformat.read(stored_path, as_version=4)
    new = nbformat.read(new_path, as_version=4)
    for index, (old_cell, new_cell) in enumerate(zip(stored.cells, new.cells)):
        if old_cell.cell_type != "code":
            continue
        old_text, new_text = text_outputs(old_cell), text_outputs(new_cell)
        if old_text == new_text:
            continue
        old_lines, new_lines = old_text.splitlines(), new_text.splitlines()
        for old_line, new_line in zip(old_lines, new_lines):
            if old_line == new_line:
                continue
            old_numbers, new_numbers = NUMBER.findall(old_line), NUMBER.findall(new_line)
            if len(old_numbers) != len(new_numbers):
                yield index, old_line.strip()[:60], new_line.strip()[:60], "text changed"
                continue
            if old_numbers == new_numbers:  # the same numbers, other words: a sampled text changed
                yield index, old_line.strip()[:40], new_line.strip()[:40], "text changed"
            for a, b in zip(old_numbers, new_numbers):
                if a != b:
                    yield index, a, b, old_line.strip()[:60]
        if len(old_lines) != len(new_lines):
            yield index, f"{len(old_lines)} lines", f"{len(new_lines)} lines", "output length changed"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument("--capabilities", nargs="+", default=["default", "avx2", "avx512"], choices=list(CAPABILITY_ENV))
    parser.add_argument("--aten-only", action="store_true", help="cap torch's own kernels only, not MKL's or oneDNN's")
    args = parser.parse_args()
    out_dir = Path(tempfile.mkdtemp(prefix="cpu-spread-"))
    print("| notebook | capability | cell | stored | this run | where |\n|---|---|---|---|---|---|")
    summary = []
    for path in args.notebooks:
        for capability in args.capabilities:
            if not cpu_has(capability):
                summary.append(f"{path}: {capability} skipped (this CPU lacks it)")
                continue
            changes = list(compare(path, execute_copy(path, capability, out_dir, args.aten_only)))
            for cell, old, new, where in changes:
                print(f"| {path.stem} | {capability} | {cell} | {old} | {new} | {where.replace('|', '/')} |", flush=True)
            cells = sorted({cell for cell, *_ in changes})
            summary.append(f"{path}: {capability}: {len(changes)} printed numbers changed, in cells {cells}")
    print()
    print("\n".join(summary))


if __name__ == "__main__":
    main()
