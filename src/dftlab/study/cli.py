"""The command line: `python -m dftlab.study [run|claims] [--quick] ...`."""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

from dftlab.runtime import default_transformers_verbosity_to_error
from dftlab.storage import CorruptFileError
from dftlab.study.cache import claims_path, fingerprints, results_dir, study_path
from dftlab.study.claims import write_claims
from dftlab.study.config import DEFAULT_OBJECTIVES, default_config, real_model_config
from dftlab.study.run import run_study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dftlab.study",
        description="Fine-tune the two base models with every objective, measure the samples and the fit, and write "
                    "the results table, its summary and CLAIMS.md. Finished runs are cached: an interrupted study "
                    "resumes where it stopped.",
    )
    parser.add_argument("command", nargs="?", choices=("run", "claims"), default="run",
                        help="run: compute (or resume) the study; claims: only rewrite CLAIMS.md from cached results")
    parser.add_argument("--quick", action="store_true",
                        help="tiny budgets (1 seed, few steps and samples, n-gram MMD): every column in under 3 minutes; "
                             "results go to study-quick-*.json and CLAIMS-quick.md")
    parser.add_argument("--real-model", action="store_true",
                        help="the study on a real LLM: SmolLM2-135M-Instruct fine-tuned with nll and dft through TRL "
                             "and LoRA (about an hour on 2 cores; with --quick, a few minutes); results go to "
                             "study-smollm2-*.json and CLAIMS-smollm2-*.md")
    parser.add_argument("--replication", action="store_true",
                        help="the frozen-rule replication: nll and dft at the headline budget from the strong prior on "
                             "new seeds (5-9), judged on claims 2, 3 and 5 alone; records the rules' sha256 and the "
                             "wall time, then rewrites CLAIMS.md (about 20-40 minutes on 2 shared cores)")
    parser.add_argument("--followups", action="store_true",
                        help="run the two follow-ups of dftlab.study.followups: nll and dft from the medium prior on "
                             "new seeds, and the distribution_matching lambda sweep at 50 steps")
    parser.add_argument("--learning-curve", action="store_true",
                        help="SmolLM2's SFT learning curve (dftlab.study.learning_curve): one run measured at 64, 128, "
                             "192 and 256 steps (about 45 minutes on one core; with --quick, 2 steps)")
    parser.add_argument("--build-medium-prior", action="store_true",
                        help="(re)build the medium prior tiny-gpt2-medium by its recipe (dftlab.study.followups)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to run for every objective (default: 0 1 2, and 0-4 for nll and dft; 0 with "
                             "--quick); the config gets the name 'custom'")
    parser.add_argument("--objectives", nargs="+", default=None,
                        help=f"objective labels to run, from: {' '.join(o.label for o in DEFAULT_OBJECTIVES)} "
                             f"(default: all); the config gets the name 'custom'")
    parser.add_argument("--out", type=Path, default=None,
                        help="results folder (default: $DFTLAB_RESULTS, else your own results folder, "
                             "dftlab.storage.results_dir(); reads also find the results shipped in the package)")
    parser.add_argument("--force", action="store_true", help="recompute every run, ignoring the cache")
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                        help="runs computed side by side in separate processes, each on one CPU thread "
                             "(default: 2, or 1 on a one-core machine); the results do not depend on it")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar (shown on a terminal)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    default_transformers_verbosity_to_error()
    out = results_dir() if args.out is None else args.out
    if args.command == "claims":
        if args.seeds or args.objectives:
            raise SystemExit("`claims` reads the default study's results; drop --seeds and --objectives.")
        try:
            print(f"wrote {write_claims(args.quick, out, real_model=args.real_model)}")
        except (FileNotFoundError, CorruptFileError) as error:
            raise SystemExit(f"dftlab.study claims: {error}") from None
        return 0
    if args.learning_curve:
        if args.real_model or args.replication or args.followups or args.seeds or args.objectives:
            raise SystemExit("--learning-curve runs its own settings (the real-model study's, one nll run); drop "
                             "--real-model, --replication, --followups, --seeds and --objectives.")
        from dftlab.study.learning_curve import run_learning_curve

        started = time.time()
        path = run_learning_curve(out, quick=args.quick)
        print(f"dftlab.study --learning-curve: {time.time() - started:.0f} s -> {path}")
        return 0
    if args.build_medium_prior or args.followups:
        if args.quick or args.real_model or args.replication or args.seeds or args.objectives:
            raise SystemExit("--followups and --build-medium-prior run their own settings; drop --quick, --real-model, "
                             "--replication, --seeds and --objectives.")
        return _followups(out, args)
    if args.replication:
        if args.quick or args.real_model or args.seeds or args.objectives:
            raise SystemExit("--replication runs its own seeds and objectives on the full study's settings; drop "
                             "--quick, --real-model, --seeds and --objectives.")
        return _replicate(out, args)
    config = real_model_config(args.quick) if args.real_model else default_config(args.quick)
    custom = "smollm2-custom" if args.real_model else "custom"
    if args.seeds is not None:
        config = replace(config, name=custom, seeds=tuple(args.seeds), headline_seeds=tuple(args.seeds))
    if args.objectives is not None:
        labels = [o.label for o in config.objectives]
        unknown = [label for label in args.objectives if label not in labels]
        if unknown:
            raise SystemExit(f"--objectives: unknown label(s) {unknown}; choose from {labels}.")
        chosen = tuple(o for o in config.objectives if o.label in args.objectives)
        config = replace(config, name=custom, objectives=chosen,
                         headline_objectives=tuple(h for h in config.headline_objectives if h in args.objectives))
    started = time.time()
    results = run_study(config, out, force=args.force, workers=args.workers,
                        progress=False if args.no_progress else None)
    model_fingerprints = fingerprints(config)
    print(f"dftlab.study: {len(results)} rows in {time.time() - started:.0f} s -> "
          f"{study_path(out, config, model_fingerprints)}; claims in {claims_path(out, config, model_fingerprints)}")
    return 0


def _followups(out: Path, args) -> int:
    from dftlab.study.followups import FOLLOWUP_CONFIGS, build_medium_prior

    if args.build_medium_prior:
        print(f"wrote {build_medium_prior()}")
        return 0
    for which, make_config in FOLLOWUP_CONFIGS.items():
        config, started = make_config(), time.time()
        results = run_study(config, out, force=args.force, workers=args.workers,
                            progress=False if args.no_progress else None)
        print(f"dftlab.study --followups ({which}): {len(results)} rows in {time.time() - started:.0f} s -> "
              f"{study_path(out, config, fingerprints(config))}", flush=True)
    return 0


def _replicate(out: Path, args) -> int:
    """Run the replication study, record the rules' hash and the wall time, and rewrite CLAIMS.md."""
    from datetime import datetime, timezone

    from dftlab.storage import write_json_with_hash
    from dftlab.study.cache import study_config_hash
    from dftlab.study.claims import FROZEN_SOURCES, replication_record_path, rules_sha256
    from dftlab.study.config import replication_config

    config = replication_config()
    frozen = rules_sha256()  # the rules the replication is judged under, read before it starts
    started, clock = datetime.now(timezone.utc), time.time()
    results = run_study(config, out, force=args.force, workers=args.workers,
                        progress=False if args.no_progress else None)
    seconds = time.time() - clock
    if rules_sha256() != frozen:
        raise SystemExit("dftlab.study --replication: the rules changed while it ran; nothing recorded.")
    model_fingerprints = fingerprints(config)
    record = {"rules_sha256": frozen, "frozen_sources": [f"src/dftlab/study/{name}" for name in FROZEN_SOURCES],
              "seeds": list(config.headline_seeds), "objectives": list(config.headline_objectives),
              "config_hash": study_config_hash(config, model_fingerprints), "wall_seconds": round(seconds, 1),
              "started_utc": started.isoformat(timespec="seconds"),
              "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"), "workers": args.workers,
              "command": "python -m dftlab.study --replication"}
    path = replication_record_path(out, config)
    write_json_with_hash(path, record)
    try:
        claims = write_claims(False, out)
    except (FileNotFoundError, CorruptFileError) as error:
        claims = f"not rewritten ({error})"
    print(f"dftlab.study --replication: {len(results)} rows in {seconds:.0f} s -> "
          f"{study_path(out, config, model_fingerprints)}; record {path}; claims in {claims}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
