"""Rebuild src/dftlab/assets/slop_score/ from a copy of sam-paech/slop-score (run by hand, never by the build).

    git clone https://github.com/sam-paech/slop-score
    python tools/vendor_slop_score.py slop-score                # a checkout
    python tools/vendor_slop_score.py /path/to/slop-score.git   # or a bare repository (its HEAD is read)

Optional: `--out FOLDER` (default src/dftlab/assets/slop_score), `--models a,b,c` (the results/<name>.json stems to
vendor; default MODELS below).

What it writes (see the PROVENANCE.md it generates for the details and the licence):

* the three slop lists and the prompts, byte for byte, xz-compressed;
* per model, the outputs with only what the course uses (prompt index, output text, whether generation failed) and
  the run's sampling parameters;
* the leaderboard rows of those models and of the human baseline, without the long display fields;
* the upstream LICENSE verbatim, PROVENANCE.md and SHA256SUMS.

The folder is built next to the target and swapped in only when complete, and every file in it is written
atomically, so an interrupted run leaves the old folder as it was. xz output is deterministic: the same source commit
gives the same SHA256SUMS.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import lzma
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "src" / "dftlab" / "assets" / "slop_score"
UPSTREAM = "https://github.com/sam-paech/slop-score"
# Eight families: Gemma (and its Antislop fine-tune), Claude, GPT, Qwen, Llama, DeepSeek, Mistral.
MODELS = ["gemma-3-27b-it", "gemma-3-27b-it-antislop", "claude-sonnet-4-5", "gpt-5-mini-2025-08-07", "qwen3-4b",
          "llama-4-maverick", "deepseek-r1", "mistral-nemo"]
VERBATIM = {"data/slop_list.json": "slop_list.json.xz", "data/slop_list_bigrams.json": "slop_list_bigrams.json.xz",
            "data/slop_list_trigrams.json": "slop_list_trigrams.json.xz", "data/prompts.json": "prompts.json.xz"}
LEADERBOARD = "data/leaderboard_results.json"
LEADERBOARD_KEPT = ["model", "test_model", "sample_count", "total_chars", "started_at", "completed_at", "metrics",
                    "slop_word_hits", "slop_trigram_hits"]
HUMAN = "human-baseline"
CREATIVE_PROMPTS = 150  # prompts 0-149 are creative-writing prompts, 150-299 essay prompts (upstream README)


def _storage():
    """src/dftlab/storage.py, loaded from its file: atomic writes without importing dftlab (which loads torch)."""
    spec = importlib.util.spec_from_file_location("dftlab_storage", ROOT / "src" / "dftlab" / "storage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Source:
    """Files of slop-score at one commit, from a checkout (its work tree) or a bare repository (its HEAD)."""

    def __init__(self, path: Path):
        self.path = path
        self.checkout = (path / "data" / "slop_list.json").is_file()
        git = ["git", "-C", str(path)] if self.checkout else ["git", f"--git-dir={path}"]
        self.git = git
        head = self._run(["rev-parse", "HEAD"])
        if head is None and not self.checkout:
            raise SystemExit(f"{path} is neither a slop-score checkout (no data/slop_list.json) nor a git repository.")
        self.commit = head or "unknown (not a git checkout)"
        self.commit_date = self._run(["log", "-1", "--format=%cI", "HEAD"]) if head else None
        self.leaderboard_commit = (self._run(["log", "-1", "--format=%h %cI", "HEAD", "--", LEADERBOARD])
                                   if head else None)
        self.dirty = bool(self.checkout and head and self._run(["status", "--porcelain", "--", "data", "results",
                                                                 "LICENSE"]))

    def _run(self, args: list[str]) -> str | None:
        done = subprocess.run(self.git + args, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else None

    def read(self, name: str) -> bytes:
        if self.checkout:
            return (self.path / name).read_bytes()
        done = subprocess.run(self.git + ["show", f"HEAD:{name}"], capture_output=True)
        if done.returncode != 0:
            raise SystemExit(f"{name} is not in {self.path} at HEAD: {done.stderr.decode(errors='replace').strip()}")
        return done.stdout


def git_blob_id(data: bytes) -> str:
    """The id git gives these bytes (so a vendored file can be checked against the upstream tree)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def xz(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=9 | lzma.PRESET_EXTREME)


def compact_json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def check_list(name: str, data: bytes) -> int:
    entries = json.loads(data)
    if not (isinstance(entries, list) and all(isinstance(e, list) and e and isinstance(e[0], str) for e in entries)):
        raise SystemExit(f"{name}: expected a JSON list of one-string lists, as slop-score's loader reads it.")
    return len(entries)


def trimmed_outputs(stem: str, raw: bytes, number_of_prompts: int) -> tuple[dict, dict]:
    """The course's part of results/<stem>.json, and a summary row for PROVENANCE.md."""
    data = json.loads(raw)
    if not isinstance(data, dict) or len(data) != 1:
        raise SystemExit(f"results/{stem}.json: expected one top-level key (the model id), got {list(data)[:5]}")
    (model_id, run), = data.items()
    samples = []
    for record in run["samples"]:
        index, output = record.get("prompt_index"), record.get("output")
        if not isinstance(index, int) or not 0 <= index < number_of_prompts or not isinstance(output, str):
            raise SystemExit(f"results/{stem}.json: a sample without an int prompt_index or a str output: "
                             f"{str(record)[:120]}")
        samples.append({"prompt_index": index, "output": output, "failed": "error" in record})
    failed = [s["prompt_index"] for s in samples if s["failed"]]
    kept = {"model": model_id, "test_model": run.get("test_model"), "params": run.get("params"),
            "started_at": run.get("started_at"), "completed_at": run.get("completed_at"), "samples": samples}
    # JavaScript's length counts UTF-16 code units; the leaderboard keeps outputs longer than 300 of them.
    used = sum(len(s["output"].encode("utf-16-le", "surrogatepass")) // 2 > 300 for s in samples)
    summary = {"stem": stem, "model": model_id, "outputs": len(samples), "failed": len(failed),
               "failed_essays": sum(index >= CREATIVE_PROMPTS for index in failed),
               "used": used, "sampling": ", ".join(f"{k} {v}" for k, v in (run.get("params") or {}).items()
                                                   if k in ("temperature", "min_p", "max_tokens"))}
    return kept, summary


def provenance(source: Source, files: list[dict], runs: list[dict], folder_bytes: int, data_bytes: int) -> str:
    rows = "\n".join(f"| `{f['name']}` | `{f['upstream']}` | `{f['blob'][:12]}` | {f['kept']} | {f['bytes']:,} |"
                     for f in files)
    run_rows = "\n".join(f"| `{r['stem']}` | `{r['model']}` | {r['outputs']} | {r['failed']} | {r['used']} | "
                         f"{r['sampling']} |" for r in runs)
    failures = "; ".join(f"{r['stem']}: {r['failed'] - r['failed_essays']} creative and {r['failed_essays']} essay "
                         f"requests failed" for r in runs if r["failed"]) or "none"
    dirty = (" (a checkout with local changes to data/, results/ or LICENSE: not a published state)"
             if source.dirty else "")
    return f"""# Provenance and licence of the slop-score data

Vendored from **slop-score** by Samuel J. Paech, {UPSTREAM}, at commit `{source.commit}`
({source.commit_date or 'date unknown'}){dirty}. The leaderboard file was last changed upstream in
`{source.leaderboard_commit or 'unknown'}`. Written by `tools/vendor_slop_score.py` (rerun it on a slop-score
checkout or bare repository to rebuild this folder); nothing is downloaded at build time.

## Licence

The slop lists, the prompts, the results datasets and the leaderboard are under the **MIT License**,
Copyright (c) 2025 Sam Paech. `LICENSE` in this folder is the upstream LICENSE file, verbatim: it carries the
MIT licence text and copyright notice that the licence requires to travel with copies. That file also describes
the Apache-2.0 / CC BY-SA 4.0 wordfreq components of slop-score (`js/wordfreq.js`, `data/large_en.msgpack.gz`):
**none of them is vendored here**, and no slop-score code is: `dftlab.metrics.slop_score` is a reimplementation
written from the description in slop-score's sources.

Cite as `paech2025slopScore` (references.bib): Samuel J. Paech, *slop-score*, 2025, {UPSTREAM}.

## Files

Each `.xz` file holds one JSON document (read with Python's `lzma`). "git blob" is the id of the upstream file the
data came from, so it can be checked against the upstream tree (`git ls-tree {source.commit[:12]} <path>`); the
verbatim files decompress to exactly that blob.

| file | upstream path | git blob | kept | bytes |
|---|---|---|---|---|
{rows}

What was cut:

* outputs: each sample's prompt text (the same as `prompts.json[prompt_index]`; checked), its error message
  (replaced by `failed`: whether the generation request failed), and the per-sample `chars`, `hits` and
  `rate_per_1k` with the run's `summary` and `endpoint`: figures of an older slop count, not the leaderboard's.
  Samples stay in the upstream order, which is the order the leaderboard joins them in.
* leaderboard: the rows of other models, and each row's `top_over_represented` and `contrast_matches` (long
  display lists). Each kept row gains `name`, the results file stem.
* the human baseline's texts are not in the upstream repository; only its published figures are here.

## Models

"used" counts the outputs longer than 300 characters (UTF-16 code units, as JavaScript counts), the ones the
leaderboard joins and measures. Prompts 0-{CREATIVE_PROMPTS - 1} are creative writing, prompts {CREATIVE_PROMPTS}-299
ask for an essay from a summary of it.

| name | upstream model id | outputs | failed | used | sampling (the run's `params`) |
|---|---|---|---|---|---|
{run_rows}

Where a model has fewer than 300 used outputs, its published figures cover only those. Failed requests: {failures}.

The upstream benchmarking script, added after these outputs were generated, asks for about 1,000 words per prompt;
the outputs' records do not say which message template produced them.

The published figures (`leaderboard.json.xz`) predate upstream commit 289264a (2025-11-23), which changed how a
list entry with an apostrophe is read ("k'tharr" had counted as the word "k"). `dftlab.metrics.slop_list_rate`
follows the rule the published figures used unless it is given `corrected_lists=True`.

## Weight

The data files total {data_bytes:,} bytes; the whole folder (with LICENSE, this file and SHA256SUMS) is
{folder_bytes:,} bytes, which is what it adds to the wheel (xz data does not shrink further in the zip).
`SHA256SUMS` lists every other file of the folder; `dftlab.slop_score_data` checks a file against it before reading it.
"""


def build(source: Source, folder: Path, models: list[str], storage) -> None:
    files: list[dict] = []

    def put(name: str, payload: bytes, upstream: str, upstream_bytes: bytes, kept: str) -> None:
        storage.atomic_write_bytes(folder / name, payload)
        files.append({"name": name, "upstream": upstream, "blob": git_blob_id(upstream_bytes), "kept": kept,
                      "bytes": len(payload)})

    prompts_raw = source.read("data/prompts.json")
    prompts = json.loads(prompts_raw)
    if not (isinstance(prompts, list) and all(isinstance(p, str) for p in prompts)):
        raise SystemExit("data/prompts.json: expected a JSON list of strings.")
    for upstream, name in VERBATIM.items():
        raw = prompts_raw if upstream == "data/prompts.json" else source.read(upstream)
        count = len(prompts) if upstream == "data/prompts.json" else check_list(upstream, raw)
        put(name, xz(raw), upstream, raw, f"all {count} entries, verbatim")

    runs = []
    for stem in models:
        raw = source.read(f"results/{stem}.json")
        kept, summary = trimmed_outputs(stem, raw, len(prompts))
        upstream_run = json.loads(raw)[kept["model"]]
        mismatched = [r["prompt_index"] for r in upstream_run["samples"]
                      if r.get("prompt") != prompts[r["prompt_index"]]]
        if mismatched:
            raise SystemExit(f"results/{stem}.json: prompt text differs from prompts.json at {mismatched[:5]}; "
                             f"keep the prompt text in this case.")
        put(f"outputs/{stem}.json.xz", xz(compact_json(kept)), f"results/{stem}.json", raw,
            f"{summary['outputs']} outputs: prompt index, text, failed; run parameters")
        runs.append(summary)

    raw = source.read(LEADERBOARD)
    board = json.loads(raw)
    by_model = {row["model"]: row for row in board["results"]}
    rows = []
    for stem, run in [(r["stem"], r["model"]) for r in runs] + [(HUMAN, HUMAN)]:
        if run not in by_model:
            raise SystemExit(f"{LEADERBOARD} has no row for {run!r} (results/{stem}.json); pick another model.")
        rows.append({"name": stem, **{key: by_model[run][key] for key in LEADERBOARD_KEPT if key in by_model[run]}})
    put("leaderboard.json.xz", xz(compact_json({"generated_at": board.get("generated_at"), "rows": rows})),
        LEADERBOARD, raw, f"{len(rows)} of {len(board['results'])} rows (these models and {HUMAN}), figures and hits")

    licence = source.read("LICENSE")
    if b"MIT License" not in licence:
        raise SystemExit("LICENSE upstream no longer states the MIT License: read it before vendoring anything.")
    storage.atomic_write_bytes(folder / "LICENSE", licence)

    data_bytes = sum(f["bytes"] for f in files)
    names = sorted([f["name"] for f in files] + ["LICENSE", "PROVENANCE.md"])
    sums_bytes = sum(64 + 2 + len(name.encode()) + 1 for name in names)  # fixed by the names, not the digests
    text, previous = "", -1
    while len(text.encode()) != previous:  # the folder's size appears in the text: iterate to a fixed point
        previous = len(text.encode())
        folder_bytes = data_bytes + len(licence) + sums_bytes + previous
        text = provenance(source, files, runs, folder_bytes, data_bytes)
    storage.atomic_write_text(folder / "PROVENANCE.md", text)
    storage.write_checksums(folder, names)
    for path in [folder, folder / "outputs"]:  # mkdtemp and mkstemp make private folders and files
        path.chmod(0o755)
    for path in folder.rglob("*"):
        if path.is_file():
            path.chmod(0o644)
    actual = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    if actual != folder_bytes:
        raise SystemExit(f"internal error: the folder is {actual} bytes, PROVENANCE.md says {folder_bytes}")
    print(f"{len(names) + 1} files, {actual:,} bytes:")
    for row in files:
        print(f"  {row['name']:40s} {row['bytes']:>10,}  {row['kept']}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a slop-score checkout or bare git repository")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the folder to (re)write")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated results/<name>.json stems")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if len(set(models)) != len(models) or HUMAN in models:
        raise SystemExit(f"--models must name distinct results files, not {HUMAN!r}: {models}")
    source = Source(args.source.resolve())
    storage = _storage()
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build(source, staging, models, storage)
        retired = out.with_name(f".{out.name}.old")
        if retired.exists():
            shutil.rmtree(retired)
        if out.exists():
            os.replace(out, retired)
        os.replace(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
        print(f"wrote {out}")
    finally:
        if staging.exists():
            shutil.rmtree(staging)


if __name__ == "__main__":
    main()
