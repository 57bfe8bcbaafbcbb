"""The experiments: the study (chapter "The verdict"), every objective, two base models, a budget sweep, seeds and
CIs; and the experiments around it, each a module imported by name (`from dftlab.study import scale`):
`scale` (TRL's trainer, chapter 9), `pretrain` (how the embedded models were trained), `distillation`,
`decoding_levers` and `levers` (chapter 8), `slop_samples` (the real model's samples for slop-score).

    python -m dftlab.study            # the full study, about 45 minutes on 2 cores; resumes if interrupted
    python -m dftlab.study --quick    # every column on tiny budgets, under 3 minutes
    python -m dftlab.study claims     # rewrite CLAIMS.md from the cached results
    python -m dftlab.study --replication   # nll and dft on new seeds 5-9 under the frozen rules
    python -m dftlab.study --real-model   # the same experiment on SmolLM2-135M-Instruct (TRL, LoRA), about an hour
    python -m dftlab.study --followups    # the medium prior and the 50-step lambda sweep, about 30 minutes
    python -m dftlab.study --learning-curve   # SmolLM2's SFT learning curve, about 45 minutes on one core

The package, in the order data flows through it:
- `config`: what is trained and measured (`StudyConfig`, `plan_runs`); the design is in its docstring;
- `measurement`: one run, trained and measured (`compute_run`, the one pipeline of every study, its study-specific
  steps passed in as a `Pipeline`), and what every column means;
- `cache`: where results live, how runs are keyed and cached;
- `run`: `run_study`, which runs (or resumes) the study and writes its results;
- `stats`: comparing them (`compare`, the t-test and the exact sign-flip test, Wilson intervals, `holm`);
- `results`: reading the results (`load_results`, ...);
- `rules`: one evidence and one verdict function per claim (with `stats`, the frozen rules);
- `control`: the negative control, second samples of the truth in place of the models;
- `history`: when each rule was fixed relative to the data, and why it changed;
- `claims`: the judgement (`judge`), the rules' hash, the replication and CLAIMS.md;
- `real_model`: the real-model study's `Pipeline` (SmolLM2 through TRL and LoRA, measured in its chat format);
- `carry_over`: the real model's results beside the tiny models' (chapter 7);
- `cards`: each verdict as a short card a reader reads, its full evidence folded (chapter 7);
- `followups`: the medium prior (the regime question's other half) and the lambda sweep at 50 steps;
- `learning_curve`: SmolLM2's SFT learning curve and the budget it implies;
- `cli`: the command line.
"""
from dftlab.study.cache import (fingerprints, model_fingerprint, read_cached_run, results_dir, run_hash, run_path,
                                study_config_hash, study_path)
from dftlab.study.claims import (CLAIM_PROVENANCE, CLAIM_TEXTS, FROZEN_SOURCES, NULL_VERDICTS, REPLICATED_CLAIMS,
                                 ROSMINE_REPORTED, VARIETY_GROUPS, VERDICTS, ClaimVerdict, Judgement,
                                 claim_provenance_table, claims_markdown, judge, judge_claims, judge_evidence,
                                 read_replication,
                                 reconstruction_comparison, regime_comparison, replication_judgement, rules_sha256,
                                 write_claims)
from dftlab.study.cards import VerdictCard, verdict_card
from dftlab.study.control import control_table, load_control
from dftlab.study.history import RULE_HISTORY, STATISTICS_HISTORY, RuleChange
from dftlab.study.cli import build_parser, main
from dftlab.study.config import (DEFAULT_DECODINGS, DEFAULT_OBJECTIVES, FORMULAIC_PHRASES, REAL_MODEL, STRONG_PRIOR,
                                 REPLICATION_SEEDS, TOP_OPENER, TRUTH_DECODING, WEAK_PRIOR, Decoding, ObjectiveSpec,
                                 RealModelStudyConfig, RunSpec, StudyConfig, default_config, plan_runs,
                                 real_model_config, replication_config)
from dftlab.study.measurement import (COLUMN_DESCRIPTIONS, ID_COLUMNS, METRIC_COLUMNS, MODEL_METRICS, SUMMARY_METRICS,
                                      TEXT_METRICS, FineTuning, Pipeline, compute_run, true_completions)
from dftlab.study.results import (Comparison, compare, format_summary, holm, load_choice_tables, load_histograms,
                                  load_histories, load_opener_probabilities, load_previews, load_results, load_study, results_readme,
                                  summary_table, t_interval, t_test_p_value)
from dftlab.study.stats import (BOUNDED_SHARES, format_p, minimum_p_value, seed_test, share_interval,
                                sign_flip_p_value)
from dftlab.study.run import run_study
