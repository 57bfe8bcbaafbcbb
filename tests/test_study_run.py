"""dftlab.study.run: a whole study on two tiny random GPT-2s (a "strong" and a "weak" prior): every column,
determinism, caching and resuming. Tiny budgets keep them fast."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPT2LMHeadModel

import dftlab
from dftlab import study
from dftlab.storage import CorruptFileError
from dftlab.study import ObjectiveSpec, judge_claims, load_results, measurement, run_study, summary_table

from conftest import tiny_config


COMPUTE_RUN = measurement.compute_run  # the real one, before any test wraps it


class CountingRuns:
    """Wraps dftlab.study.measurement.compute_run: counts the runs it computes and can interrupt after some."""

    def __init__(self, monkeypatch, interrupt_after=None):
        self.computed, self.interrupt_after = [], interrupt_after
        monkeypatch.setattr(measurement, "compute_run", self)

    def __call__(self, config, run, pipeline=measurement.TINY_MODEL_PIPELINE):
        if self.interrupt_after is not None and len(self.computed) == self.interrupt_after:
            raise KeyboardInterrupt
        self.computed.append(run.run_id)
        return COMPUTE_RUN(config, run, pipeline)


@pytest.fixture(scope="module")
def every_column(tiny_model_folder, weak_model_folder, tmp_path_factory):
    """Every objective, both priors, a budget sweep and two seeds: the whole design, tiny."""
    config = tiny_config(tiny_model_folder, weak_model=weak_model_folder, objectives=study.DEFAULT_OBJECTIVES,
                         seeds=(0, 1), headline_seeds=(0, 1), budget_sweep=(1,), num_prompts=3,
                         samples_per_prompt=8)  # 24 true stories: enough for two chi-square cells
    out = tmp_path_factory.mktemp("every-column")
    return config, out, run_study(config, out)


@pytest.mark.slow
def test_every_objective_every_column(every_column):
    config, out, results = every_column
    objectives = study.DEFAULT_OBJECTIVES
    strong, weak = "strong0", "weak0"  # the folders' names
    # the stored columns, and `samples` (samples per run and decoding, from the config) that the Wilson intervals use
    assert list(results.columns) == list(study.ID_COLUMNS + study.METRIC_COLUMNS) + ["samples"]
    assert (results["samples"] == config.num_prompts * config.samples_per_prompt).all()
    finetuned = results[results["kind"] == "finetuned"]
    assert set(finetuned["objective"]) == {o.label for o in objectives}
    # per seed: the truth (one row), two base models and 9 + 2 (sweep) + 2 (weak prior) fine-tunings (two decodings)
    assert len(results) == 2 * (1 + 2 * (2 + len(objectives) + 2 + 2))
    assert set(zip(finetuned["base_model"], finetuned["prior"])) == {(strong, "strong"), (weak, "weak")}
    assert set(finetuned.loc[finetuned["base_model"] == weak, "objective"]) == {"nll", "dft"}
    assert set(finetuned.loc[finetuned["steps"] == 1, "objective"]) == {"nll", "dft"}
    assert set(finetuned["steps"]) == {1, 2} and (results.loc[results["kind"] != "finetuned", "steps"] == 0).all()
    assert set(results.loc[results["kind"] == "base", "base_model"]) == {strong, weak}
    # Without a trained model the samples are not valid stories, so only the choice tests may be undefined.
    may_be_nan = {"opener_chi2", "opener_p_value", "ending_chi2", "ending_p_value", "overuse_top_phrases"}
    assert finetuned[[c for c in study.METRIC_COLUMNS if c not in may_be_nan]].notna().all().all()
    assert ((finetuned["prob_character"] >= 0) & (finetuned["prob_character"] <= 1)).all()
    truth = results[results["kind"] == "truth"]
    assert (truth["validity"] == 1.0).all() and truth[list(study.TEXT_METRICS)].notna().all().all()
    assert (truth["decoding"] == "data").all() and (truth["base_model"] == "").all() and (truth["prior"] == "").all()
    assert truth[list(study.MODEL_METRICS)].drop(columns="true_entropy").isna().all().all()
    base = results[results["kind"] == "base"]
    assert base["kl"].notna().all() and base["loss_scale"].isna().all() and base["prob_other"].notna().all()
    assert np.allclose(finetuned.loc[finetuned["objective"] == "nll", "loss_scale"], 1.0)
    assert (finetuned.loc[finetuned["objective"] == "dft", "loss_scale"] < 1.0).all()
    np.testing.assert_allclose(results["kl"], results["cross_entropy"] - results["true_entropy"])
    assert set(results["run_id"]) == {run.run_id for run in study.plan_runs(config)}


@pytest.mark.slow
def test_the_study_files(every_column):
    config, out, results = every_column
    saved = study.load_study(config=config, out=out)
    assert saved["version"] == dftlab.__version__ and saved["config"] == config.to_dict()
    model_fingerprints = study.fingerprints(config)
    assert set(model_fingerprints) == {config.model, config.weak_model}
    assert saved["model_sha256"] == {"strong0": model_fingerprints[config.model],
                                     "weak0": model_fingerprints[config.weak_model]}
    path = study.study_path(out, config, model_fingerprints)
    assert path.exists() and study.study_config_hash(config, model_fingerprints) in path.name
    assert [p.name for p in out.glob("study-*.json")] == [path.name]
    assert (out / path.name.replace("study-", "summary-").replace(".json", ".csv")).exists()
    pd.testing.assert_frame_equal(load_results(config=config, out=out), results)
    histograms = study.load_histograms(config=config, out=out)
    assert np.allclose(histograms.groupby("run_id")["share"].sum(), 1.0)
    assert histograms["run_id"].nunique() == results.loc[results["kind"] != "truth", "run_id"].nunique()
    assert {"base_model", "steps"} <= set(histograms.columns)
    assert (out / "README.md").exists()
    claims = next(out.glob("CLAIMS-test-*.md")).read_text()
    assert all(f"## Claim {n}" in claims for n in range(1, 6)) and "regime question" in claims
    assert "reconstruction" in claims
    choice_tables = study.load_choice_tables(config=config, out=out)
    assert not choice_tables.empty and set(choice_tables["choice"]) == {"opener", "ending"}
    histories = study.load_histories(config=config, out=out)
    assert set(histories["steps"]) == {1, 2} and set(histories["kind"]) == {"finetuned"}
    previews = study.load_previews(config=config, out=out)
    assert set(previews["run_id"]) == set(results["run_id"]) and previews["text"].map(len).gt(0).any()


@pytest.mark.slow
def test_the_summary_has_a_row_per_base_model_budget_objective_and_decoding(every_column):
    config, out, results = every_column
    summary = summary_table(results)
    assert {"base_model", "steps", "objective", "decoding", "metric", "mean", "ci_low", "ci_high", "n"} <= set(summary)
    row = summary[(summary.objective == "nll") & (summary.decoding == "T=1") & (summary.metric == "kl")
                  & (summary.base_model == "strong0") & (summary.steps == 2)]
    assert len(row) == 1
    row = row.iloc[0]
    values = results[(results.objective == "nll") & (results.decoding == "T=1") & (results.base_model == "strong0")
                     & (results.steps == 2)]["kl"]
    assert row["mean"] == pytest.approx(values.mean()) and row["n"] == 2
    assert row["ci_high"] - row["mean"] == pytest.approx(12.706204736174707 * values.std() / math.sqrt(2))
    weak_row = summary[(summary.objective == "nll") & (summary.metric == "kl") & (summary.base_model == "weak0")]
    assert len(weak_row) == 2 and weak_row["mean"].iloc[0] != pytest.approx(row["mean"])
    wide = study.format_summary(summary, metrics=["kl", "validity"], base_model="strong0", steps=2)
    assert list(wide.columns) == ["validity", "kl"]  # in the summary's order
    assert set(wide.index.get_level_values("base_model")) == {"strong0", ""}
    assert set(wide.index.get_level_values("steps")) == {0, 2}


@pytest.mark.slow
def test_the_judgement_of_a_tiny_study_covers_both_priors_and_the_lambda_sweep(every_column):
    config, out, results = every_column
    judgement = study.judge(results)
    assert judgement.context.base_model == "strong0" and judgement.context.weak_model == "weak0"
    assert judgement.context.steps == 2 and judgement.context.budgets == [1, 2]
    assert [label for label, *_ in judgement.reconstruction] == [
        "distribution_matching_0.3", "distribution_matching_1", "distribution_matching_3"]
    assert all(verdict in ("helps", "hurts", "no measurable effect") for _, verdict, _, _ in judgement.reconstruction)
    assert judgement.regime[0] != "not testable here" and len(judgement.regime_evidence) == 7
    assert 0 < judgement.family_size <= 14 + 2 + 3 * 4
    assert [c.verdict for c in judgement.claims] == [c.verdict for c in judge_claims(results)]
    regime = study.regime_comparison(results)
    assert list(regime["prior"]) == ["strong"] * 3 + ["weak"] * 3 and set(regime["base_model"]) == {"strong0", "weak0"}


@pytest.mark.slow
def test_the_study_figures_draw_from_its_tables(every_column):
    config, out, results = every_column
    from dftlab import plots

    summary = summary_table(results)
    ax = plots.plot_study_metric(summary, "kl")
    # the figures show readable names (plots.readable): "base model" for base, "NLL" for nll
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == [plots.readable("base"), plots.readable("nll")]
    ax = plots.plot_target_probability_histograms(study.load_histograms(config=config, out=out), base_model="strong0")
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [plots.readable(o) for o in ("base", "nll", "dft")]
    with pytest.raises(ValueError, match="metric"):
        plots.plot_study_metric(summary, "no_such_metric")


@pytest.mark.slow
def test_results_are_deterministic_for_a_seed(tiny_model_folder, tmp_path):
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path / "a")
    second = run_study(config, tmp_path / "b")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    other_seed = run_study(tiny_config(tiny_model_folder, seeds=(1,), headline_seeds=(1,)), tmp_path / "c")
    assert not np.allclose(first["kl"], other_seed["kl"])


@pytest.mark.slow
def test_finished_runs_come_from_the_cache_and_a_changed_config_recomputes(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder)
    runs = [run.run_id for run in study.plan_runs(config)]
    tunings = [run.run_id for run in study.plan_runs(config) if run.kind == "finetuned"]
    counter = CountingRuns(monkeypatch)
    first = run_study(config, tmp_path)
    assert counter.computed == runs
    counter.computed.clear()
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == []  # everything cached
    # A new objective computes only its own runs, and a budget of the sweep only the headline objectives' ...
    wider = tiny_config(tiny_model_folder, objectives=config.objectives + (ObjectiveSpec("mix_0.5", "mix", {"lam": 0.5}),))
    run_study(wider, tmp_path)
    assert counter.computed == ["strong0-mix_0.5-2steps-seed0"]
    counter.computed.clear()
    run_study(tiny_config(tiny_model_folder, budget_sweep=(1,)), tmp_path)
    assert counter.computed == ["strong0-nll-1steps-seed0", "strong0-dft-1steps-seed0"]
    counter.computed.clear()
    # ... a changed training budget recomputes the fine-tunings (the truth and the base model do not train) ...
    longer = tiny_config(tiny_model_folder, steps=3)
    run_study(longer, tmp_path)
    assert sorted(counter.computed) == sorted(r.replace("2steps", "3steps") for r in tunings)
    names = [p.name for p in tmp_path.glob("study-test-*.json")]
    assert names == [study.study_path(tmp_path, longer, study.fingerprints(longer)).name]  # the old file is gone
    counter.computed.clear()
    # ... a changed measurement recomputes every run, and force=True does too.
    run_study(tiny_config(tiny_model_folder, max_new_tokens=10), tmp_path)
    assert sorted(counter.computed) == sorted(runs)
    counter.computed.clear()
    run_study(config, tmp_path, force=True)
    assert sorted(counter.computed) == sorted(runs)


@pytest.mark.slow
def test_the_model_files_not_the_path_key_the_runs(tiny_model_folder, tmp_path, monkeypatch):
    import shutil

    # the same files in another place (under the same folder name, as when a model is installed elsewhere)
    copy_folder = tmp_path / "elsewhere" / Path(tiny_model_folder).name
    shutil.copytree(tiny_model_folder, copy_folder)
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path / "out")
    moved = tiny_config(str(copy_folder))
    assert study.study_path(tmp_path, moved, study.fingerprints(moved)) == \
        study.study_path(tmp_path, config, study.fingerprints(config))
    counter = CountingRuns(monkeypatch)
    pd.testing.assert_frame_equal(run_study(moved, tmp_path / "out"), first)
    assert counter.computed == []  # same files: every run comes from the cache


@pytest.mark.slow
def test_retrained_weights_recompute_every_run(tiny_model_folder, tmp_path, monkeypatch):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_folder, folder)
    config = tiny_config(str(folder))
    run_study(config, tmp_path / "out")
    before = study.fingerprints(config)
    model = GPT2LMHeadModel.from_pretrained(folder)
    with torch.no_grad():
        model.transformer.wte.weight[0, 0] += 1.0
    model.save_pretrained(folder, safe_serialization=True)  # retrained: other weights
    assert study.fingerprints(config) != before
    counter = CountingRuns(monkeypatch)
    run_study(config, tmp_path / "out")
    assert sorted(counter.computed) == sorted(r.run_id for r in study.plan_runs(config) if r.kind != "truth")


@pytest.mark.slow
def test_the_weak_prior_has_runs_of_its_own(tiny_model_folder, weak_model_folder, tmp_path, monkeypatch):
    strong_only = tiny_config(tiny_model_folder)
    run_study(strong_only, tmp_path)
    counter = CountingRuns(monkeypatch)
    both = tiny_config(tiny_model_folder, weak_model=weak_model_folder)
    results = run_study(both, tmp_path)
    assert counter.computed == ["weak0-base-seed0", "weak0-nll-2steps-seed0", "weak0-dft-2steps-seed0"]
    assert study.study_config_hash(both, study.fingerprints(both)) != study.study_config_hash(
        strong_only, study.fingerprints(strong_only))
    weak = results[results["prior"] == "weak"]
    strong = results[results["prior"] == "strong"]
    assert set(weak["base_model"]) == {"weak0"} and set(strong["base_model"]) == {"strong0"}
    pair = ["objective", "decoding"]
    assert not np.allclose(weak.sort_values(pair)["kl"], strong.sort_values(pair)["kl"])


@pytest.mark.slow
def test_a_truncated_cache_file_is_detected_and_recomputed(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder)
    first = run_study(config, tmp_path)
    dft = next(r for r in study.plan_runs(config) if r.label == "dft")
    victim = study.run_path(tmp_path, config, dft, study.fingerprints(config))
    assert victim.name.startswith("run-strong0-dft-2steps-seed0-")
    victim.write_bytes(victim.read_bytes()[:200])  # truncated mid-file
    study_file = next(tmp_path.glob("study-test-*.json"))
    text = study_file.read_text()
    assert '"validity": 1.0' in text
    study_file.write_text(text.replace('"validity": 1.0', '"validity": 0.5', 1))  # edited: hash no longer matches
    with pytest.raises(CorruptFileError, match="python -m dftlab.study"):
        load_results(config=config, out=tmp_path)
    counter = CountingRuns(monkeypatch)
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == ["strong0-dft-2steps-seed0"]
    assert json.loads(victim.read_text())["sha256"]  # rewritten whole


@pytest.mark.slow
def test_an_interrupted_study_resumes_from_the_finished_runs(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder, seeds=(0, 1), headline_seeds=(0, 1))
    runs = [run.run_id for run in study.plan_runs(config)]
    interrupted = CountingRuns(monkeypatch, interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, tmp_path)
    assert interrupted.computed == runs[:3]
    assert not list(tmp_path.glob("study-*.json"))
    resumed = CountingRuns(monkeypatch)
    run_study(config, tmp_path)
    assert resumed.computed == runs[3:]  # the first three are not recomputed
