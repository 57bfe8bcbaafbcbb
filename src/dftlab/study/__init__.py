"""The study (chapter "The verdict"): every objective, two base models, a budget sweep, seeds and CIs.

    python -m dftlab.study            # the full study, about 45 minutes on 2 cores; resumes if interrupted
    python -m dftlab.study --quick    # every column on tiny budgets, under 3 minutes
    python -m dftlab.study claims     # rewrite CLAIMS.md from the cached results
    python -m dftlab.study --real-model   # the same experiment on SmolLM2-135M-Instruct (TRL, LoRA), about an hour

The package, in the order data flows through it:
- `config`: what is trained and measured (`StudyConfig`, `plan_runs`); the design is in its docstring;
- `measurement`: one run, trained and measured (`compute_run`), and what every column means;
- `cache`: where results live, how runs are keyed and cached;
- `run`: `run_study`, which runs (or resumes) the study and writes its results;
- `results`: reading the results (`load_results`, ...) and comparing them (`compare`, `holm`);
- `claims`: one small function per claim, and CLAIMS.md;
- `real_model`: one run of the real-model study (SmolLM2 through TRL and LoRA, measured in its chat format);
- `carry_over`: the real model's results beside the tiny models' (chapter 7);
- `cli`: the command line.
"""
from dftlab.study.cache import (config_hash, fingerprints, model_fingerprint, read_cached_run, results_dir, run_hash,
                                run_path, study_path)
from dftlab.study.claims import (CLAIM_PROVENANCE, CLAIM_TEXTS, ROSMINE_REPORTED, VERDICTS, ClaimVerdict,
                                 claim_provenance_table, claims_markdown, judge, judge_claims,
                                 reconstruction_comparison, regime_comparison, write_claims)
from dftlab.study.cli import build_parser, main
from dftlab.study.config import (DEFAULT_DECODINGS, DEFAULT_OBJECTIVES, FORMULAIC_PHRASES, REAL_MODEL, STRONG_PRIOR,
                                 TOP_OPENER, TRUTH_DECODING, WEAK_PRIOR, Decoding, ObjectiveSpec, RealModelStudyConfig,
                                 RunSpec, StudyConfig, default_config, plan_runs, real_model_config)
from dftlab.study.measurement import (COLUMN_DESCRIPTIONS, ID_COLUMNS, METRIC_COLUMNS, MODEL_METRICS, SUMMARY_METRICS,
                                      TEXT_METRICS, compute_run, load_base_model, true_completions)
from dftlab.study.results import (Comparison, compare, format_summary, holm, load_choice_tables, load_histograms,
                                  load_histories, load_opener_probabilities, load_previews, load_results, load_study, results_readme,
                                  summary_table, t_interval, t_test_p_value)
from dftlab.study.run import run_study
