"""Tests for dftlab.study and the distribution_matching objective: every column, determinism, caching, resuming,
the claims logic on hand-made numbers. A tiny random GPT-2 and tiny budgets keep them fast."""
import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

import dftlab
from dftlab import study
from dftlab.objectives import IGNORE_INDEX, distribution_matching, nll
from dftlab.storage import CorruptFileError
from dftlab.study import (Decoding, ObjectiveSpec, StudyConfig, compare, judge_claims, load_results, run_study,
                          summary_table, t_interval)
from dftlab.tinytales import TinyTales


# ---- the distribution-level objective --------------------------------------------------------------

def test_distribution_matching_by_hand():
    # Two positions, vocabulary 2. Targets 0 and 1, so f = (1/2, 1/2).
    probs = torch.tensor([[0.8, 0.2], [0.4, 0.6]], dtype=torch.float64)
    labels = torch.tensor([0, 1])
    mean = probs.mean(0)  # p_bar = (0.6, 0.4)
    penalty = 0.5 * math.log(0.5 / 0.6) + 0.5 * math.log(0.5 / 0.4)
    expected = (-math.log(0.8) - math.log(0.6)) / 2 + 2.0 * penalty
    assert mean.tolist() == pytest.approx([0.6, 0.4])
    assert distribution_matching(probs.log(), labels, lam=2.0).item() == pytest.approx(expected)
    assert distribution_matching(probs.log(), labels, lam=0.0).item() == pytest.approx(nll(probs.log(), labels).item())


def test_distribution_matching_penalty_vanishes_when_the_average_prediction_matches_the_batch():
    probs = torch.tensor([[0.9, 0.1], [0.1, 0.9]], dtype=torch.float64)  # p_bar = (0.5, 0.5) = f
    labels = torch.tensor([[0, 1]])
    assert distribution_matching(probs.log()[None], labels, lam=5.0).item() == pytest.approx(
        nll(probs.log()[None], labels).item())


def test_distribution_matching_ignores_unsupervised_positions():
    logits = torch.randn(1, 3, 4, dtype=torch.float64)
    labels = torch.tensor([[IGNORE_INDEX, 2, 1]])
    changed = logits.clone()
    changed[0, 0] = torch.tensor([9.0, -3.0, 0.0, 1.0])  # only the ignored position differs
    assert distribution_matching(logits, labels).item() == pytest.approx(distribution_matching(changed, labels).item())


def test_distribution_matching_keeps_the_maximum_likelihood_fixed_point():
    # Two contexts with their own true next-token distributions. At p = q the expected gradient (over
    # the targets drawn from q) of nll + lam * penalty is zero: the penalty does not move MLE's optimum.
    q = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    logits = q.log().clone().requires_grad_(True)
    expected_loss = 0.0
    for y1, y2 in itertools.product(range(3), repeat=2):
        weight = q[0, y1] * q[1, y2]
        expected_loss = expected_loss + weight * distribution_matching(logits, torch.tensor([y1, y2]), lam=3.0)
    (gradient,) = torch.autograd.grad(expected_loss, logits)
    assert gradient.abs().max().item() < 1e-12
    # ... while a p away from q has a non-zero expected gradient.
    other = torch.tensor([[0.3, 0.3, 0.4], [0.5, 0.3, 0.2]], dtype=torch.float64).log().requires_grad_(True)
    total = sum(q[0, a] * q[1, b] * distribution_matching(other, torch.tensor([a, b]), lam=3.0)
                for a, b in itertools.product(range(3), repeat=2))
    assert torch.autograd.grad(total, other)[0].abs().max().item() > 1e-3


def test_distribution_matching_rejects_a_negative_lam():
    with pytest.raises(ValueError, match="lam"):
        distribution_matching(torch.randn(2, 3), torch.tensor([0, 1]), lam=-1.0)


# ---- confidence intervals and comparisons -----------------------------------------------------------

def test_t_interval_by_hand():
    mean, low, high = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) * sd 1 / sqrt(3)
    assert mean == 2.0 and low == pytest.approx(2 - half) and high == pytest.approx(2 + half)
    assert math.isnan(t_interval([5.0])[1]) and t_interval([5.0])[0] == 5.0


def fake_results(values: dict, seeds=(0, 1, 2), decodings=("T=1", "T=0.7,top-p=0.9"), zipf_exponent=1.1):
    """A results table from {objective: {metric: [value per seed]}}; truth gets one "data" row per seed."""
    rows = []
    for objective, metrics in values.items():
        for decoding in (["data"] if objective == "truth" else decodings):
            for index, seed in enumerate(seeds):
                row = {"objective": objective, "decoding": decoding, "seed": seed, "zipf_exponent": zipf_exponent}
                row.update({metric: per_seed[index] for metric, per_seed in metrics.items()})
                rows.append(row)
    return pd.DataFrame(rows)


def test_compare_pairs_by_seed():
    # a - b is 1.0 in every seed although the seeds themselves differ a lot: the paired CI is tight.
    table = fake_results({"a": {"m": [10.0, 20.0, 30.0]}, "b": {"m": [9.0, 19.0, 29.0]}})
    result = compare(table, "m", "a", "b")
    assert result.difference == pytest.approx(1.0) and result.low == pytest.approx(1.0)
    assert result.above and not result.below and result.n == 3
    against_constant = compare(table, "m", "a", 15.0)
    assert against_constant.difference == pytest.approx(5.0) and not against_constant.above


def claims_table(dft_kl, dft_l2, dft_distinct, nll_share=(0.33, 0.34, 0.32)):
    base = {"token_l2_1": [0.05, 0.05, 0.05], "kl": [1.0, 1.1, 0.9], "predictive_entropy": [1.0, 1.0, 1.0],
            "top_opener_share": list(nll_share), "top_opener_true_prob": [0.33] * 3, "overuse_formulaic": [1.0] * 3,
            "distinct_1": [0.3] * 3, "distinct_2": [0.5, 0.52, 0.51], "distinct_3": [0.7] * 3, "self_bleu": [0.5] * 3,
            "mmd2": [0.01] * 3, "token_l2_2": [0.05] * 3, "seq_rep_4": [0.0] * 3, "prob_p50": [0.5] * 3,
            "valid_accuracy": [0.6] * 3, "opener_p_value": [0.5] * 3, "cross_entropy": [20.0] * 3,
            "validity": [0.9] * 3}
    dft = dict(base, kl=dft_kl, token_l2_1=dft_l2, distinct_2=dft_distinct, predictive_entropy=[0.5, 0.6, 0.55],
               distinct_1=[0.2, 0.21, 0.2], distinct_3=[0.5, 0.52, 0.5], self_bleu=[0.7, 0.72, 0.71],
               mmd2=[0.05, 0.06, 0.05], top_opener_share=[0.6, 0.62, 0.61], prob_p50=[0.8, 0.82, 0.81])
    truth = dict(base, token_l2_1=[0.04, 0.041, 0.039], top_opener_share=[0.33, 0.33, 0.33])
    return fake_results({"nll": base, "dft": dft, "truth": truth})


def test_claims_follow_the_numbers():
    clear = {v.number: v for v in judge_claims(claims_table(dft_kl=[3.0, 3.2, 2.9], dft_l2=[0.09, 0.1, 0.095],
                                                            dft_distinct=[0.3, 0.31, 0.3]))}
    assert clear[1].verdict == "true" and "dft" in clear[1].reason and "does not over-use" in clear[1].reason
    assert clear[2].verdict == "true for Dynamic FT, but not what the original post said"
    assert clear[3].verdict == "true for Dynamic FT, but not what the original post said"
    assert clear[4].verdict == "true"  # nll's token L2 (0.05) sits above the truth's floor (0.04)
    assert clear[5].verdict == "true for Dynamic FT, but not what the original post said"
    for item in clear.values():
        assert item.evidence and item.flip and item.verdict in study.VERDICTS


def test_claims_without_a_significant_difference_are_not_supported():
    noisy = {v.number: v for v in judge_claims(claims_table(dft_kl=[0.5, 2.0, 0.8], dft_l2=[0.02, 0.09, 0.05],
                                                            dft_distinct=[0.6, 0.4, 0.5]))}
    assert noisy[2].verdict == "not supported at this scale"
    assert noisy[3].verdict == "not supported at this scale"


def test_claim_four_needs_a_gap_between_sft_and_the_truth():
    table = claims_table(dft_kl=[3.0, 3.2, 2.9], dft_l2=[0.09, 0.1, 0.095], dft_distinct=[0.3, 0.31, 0.3])
    nll_rows = table["objective"] == "nll"
    table.loc[nll_rows, "kl"] = np.tile([0.5, -0.4, 0.1], 2)  # KL's CI straddles 0
    table.loc[nll_rows, "token_l2_1"] = np.tile([0.03, 0.05, 0.04], 2)  # and L2 sits on the truth's floor
    verdict = {v.number: v for v in judge_claims(table)}[4]
    assert verdict.verdict == "not supported at this scale"


def test_the_reconstruction_is_judged_on_gains_and_costs():
    metrics = {"token_l2_1": [0.05, 0.06, 0.055], "token_l2_2": [0.05] * 3, "top_opener_share": [0.4, 0.41, 0.42],
               "top_opener_true_prob": [0.33] * 3, "validity": [0.5, 0.6, 0.55], "cross_entropy": [20.0, 21.0, 20.5]}
    lower_l2 = dict(metrics, token_l2_1=[0.04, 0.05, 0.044])
    verdict, reason, comparisons = study.reconstruction_comparison(
        fake_results({"nll": metrics, "distribution_matching": lower_l2}))
    assert verdict == "helps" and "token_l2_1" in reason and len(comparisons) == 9
    less_valid = dict(lower_l2, validity=[0.3, 0.41, 0.34])
    assert study.reconstruction_comparison(fake_results({"nll": metrics, "distribution_matching": less_valid}))[0] == "hurts"
    assert study.reconstruction_comparison(fake_results({"nll": metrics, "distribution_matching": metrics}))[0] == \
        "no measurable effect"


def test_claim_two_is_false_when_dft_matches_better():
    better = {v.number: v for v in judge_claims(claims_table(dft_kl=[0.5, 0.6, 0.4], dft_l2=[0.02, 0.021, 0.02],
                                                             dft_distinct=[0.5, 0.52, 0.51]))}
    assert better[2].verdict == "false"


# ---- the study itself, on a tiny model -------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory):
    from dftlab.pretrain import train_tokenizer

    stories = TinyTales(0, 0.3).sample(300, seed=5)
    tokenizer = train_tokenizer([s["prompt"] + s["completion"] for s in stories], vocab_size=400)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_layer=1, n_embd=32, n_head=2, n_positions=256,
                                       eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id))
    folder = tmp_path_factory.mktemp("tiny-model")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_config(folder, **changes) -> StudyConfig:
    settings = dict(name="test", model=folder, seeds=(0,), train_size=24, valid_size=6, test_size=10, steps=2,
                    batch_size=4, warmup_steps=1, eval_every=1, max_length=256, num_prompts=2, samples_per_prompt=3,
                    max_new_tokens=12, embedding="ngram", mmd_texts=6, mmd_permutations=20, self_bleu_texts=6,
                    objectives=(ObjectiveSpec("nll", "nll"), ObjectiveSpec("dft", "dft")),
                    regime_objectives=("nll",))
    settings.update(changes)
    return StudyConfig(**settings)


COMPUTE_RUN = study.compute_run  # the real one, before any test wraps it


class CountingRuns:
    """Wraps study.compute_run: counts the runs it computes and can interrupt after some of them."""

    def __init__(self, monkeypatch, interrupt_after=None):
        self.computed, self.interrupt_after = [], interrupt_after
        monkeypatch.setattr(study, "compute_run", self)

    def __call__(self, config, run):
        if self.interrupt_after is not None and len(self.computed) == self.interrupt_after:
            raise KeyboardInterrupt
        self.computed.append(run.run_id)
        return COMPUTE_RUN(config, run)


def test_every_objective_every_column(tiny_model_folder, tmp_path):
    objectives = study.DEFAULT_OBJECTIVES
    config = tiny_config(tiny_model_folder, objectives=objectives, regime_objectives=("nll", "dft"), seeds=(0, 1),
                         num_prompts=3, samples_per_prompt=8)  # 24 true stories: enough for two chi-square cells
    results = run_study(config, tmp_path)
    assert list(results.columns) == list(study.ID_COLUMNS + study.METRIC_COLUMNS)
    finetuned = results[results["kind"] == "finetuned"]
    assert set(finetuned["objective"]) == {o.label for o in objectives}
    assert len(results) == 2 * ((1 + 2 * (1 + len(objectives))) + (1 + 2 * 3))  # seeds x (1.1 rows + 0.3 rows)
    # Without a trained model the samples are not valid stories, so only the choice tests may be undefined.
    may_be_nan = {"opener_chi2", "opener_p_value", "ending_chi2", "ending_p_value", "overuse_top_phrases"}
    assert finetuned[[c for c in study.METRIC_COLUMNS if c not in may_be_nan]].notna().all().all()
    truth = results[results["kind"] == "truth"]
    assert (truth["validity"] == 1.0).all() and truth[[c for c in study.TEXT_METRICS if c not in may_be_nan]].notna().all().all()
    assert truth.loc[truth["zipf_exponent"] == 1.1, list(study.TEXT_METRICS)].notna().all().all()  # 0.3 is too flat
    assert (truth["decoding"] == "data").all()
    base = results[results["kind"] == "base"]
    assert base["kl"].notna().all() and base["loss_scale"].isna().all()
    assert np.allclose(finetuned.loc[finetuned["objective"] == "nll", "loss_scale"], 1.0)
    assert (finetuned.loc[finetuned["objective"] == "dft", "loss_scale"] < 1.0).all()
    np.testing.assert_allclose(results["kl"], results["cross_entropy"] - results["true_entropy"])
    # The files: the study with its config and version, the summary, the claims.
    saved = study.load_study(config=config, out=tmp_path)
    assert saved["version"] == dftlab.__version__ and saved["config"] == config.to_dict()
    assert study.config_hash(config, study.model_fingerprint(config.model)) in study.study_path(
        tmp_path, config, saved["model_sha256"]).name
    pd.testing.assert_frame_equal(load_results(config=config, out=tmp_path), results)
    histograms = study.load_histograms(config=config, out=tmp_path)
    assert np.allclose(histograms.groupby("run_id")["share"].sum(), 1.0)
    assert histograms["run_id"].nunique() == len(results[results["kind"] != "truth"]["run_id"].unique())
    assert (tmp_path / "README.md").exists()
    claims = next(tmp_path.glob("CLAIMS-test-*.md")).read_text()
    assert all(f"## Claim {n}" in claims for n in range(1, 6)) and "regime question" in claims
    assert "reconstruction" in claims
    summary = summary_table(results)
    row = summary[(summary.objective == "nll") & (summary.decoding == "T=1") & (summary.metric == "kl")
                  & (summary.zipf_exponent == 1.1)].iloc[0]
    values = results[(results.objective == "nll") & (results.decoding == "T=1") & (results.zipf_exponent == 1.1)]["kl"]
    assert row["mean"] == pytest.approx(values.mean()) and row["n"] == 2
    assert row["ci_high"] - row["mean"] == pytest.approx(12.706204736174707 * values.std() / math.sqrt(2))
    assert not study.load_choice_tables(config=config, out=tmp_path).empty
    assert not study.load_histories(config=config, out=tmp_path).empty
    from dftlab import plots  # the study's figures draw from these tables

    ax = plots.plot_study_metric(summary, "kl")
    assert [t.get_text() for t in ax.get_yticklabels()][:2] == ["base", "nll"]
    ax = plots.plot_target_probability_histograms(histograms)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["base", "nll", "dft"]
    with pytest.raises(ValueError, match="metric"):
        plots.plot_study_metric(summary, "no_such_metric")


def test_results_are_deterministic_for_a_seed(tiny_model_folder, tmp_path):
    config = tiny_config(tiny_model_folder, regime_zipf_exponent=None)
    first = run_study(config, tmp_path / "a")
    second = run_study(config, tmp_path / "b")
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    other_seed = run_study(tiny_config(tiny_model_folder, regime_zipf_exponent=None, seeds=(1,)), tmp_path / "c")
    assert not np.allclose(first["kl"], other_seed["kl"])


def test_finished_runs_come_from_the_cache_and_a_changed_config_recomputes(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder)
    runs = [run.run_id for run in study.plan_runs(config)]
    counter = CountingRuns(monkeypatch)
    first = run_study(config, tmp_path)
    assert counter.computed == runs
    counter.computed.clear()
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == []  # everything cached
    # A new objective computes only its own runs...
    wider = tiny_config(tiny_model_folder, objectives=config.objectives + (ObjectiveSpec("mix_0.5", "mix", {"lam": 0.5}),))
    run_study(wider, tmp_path)
    assert counter.computed == ["zipf1.1-mix_0.5-seed0"]
    counter.computed.clear()
    # ... while a changed training budget recomputes every run, and the old study file is replaced.
    longer = tiny_config(tiny_model_folder, steps=3)
    run_study(longer, tmp_path)
    assert sorted(counter.computed) == sorted(runs)
    names = [p.name for p in tmp_path.glob("study-test-*.json")]
    assert names == [study.study_path(tmp_path, longer, study.model_fingerprint(longer.model)).name]
    counter.computed.clear()
    run_study(longer, tmp_path, force=True)
    assert sorted(counter.computed) == sorted(runs)


def test_the_model_files_not_the_name_key_the_runs(tiny_model_folder, tmp_path, monkeypatch):
    import shutil

    copy_folder = tmp_path / "same-model-elsewhere"
    shutil.copytree(tiny_model_folder, copy_folder)
    config = tiny_config(tiny_model_folder, regime_zipf_exponent=None)
    run_study(config, tmp_path / "out")
    counter = CountingRuns(monkeypatch)
    run_study(tiny_config(str(copy_folder), regime_zipf_exponent=None), tmp_path / "out")
    assert counter.computed == []  # same files: every run comes from the cache
    model = GPT2LMHeadModel.from_pretrained(copy_folder)
    with torch.no_grad():
        model.transformer.wte.weight[0, 0] += 1.0
    model.save_pretrained(copy_folder, safe_serialization=True)  # retrained: other weights
    run_study(tiny_config(str(copy_folder), regime_zipf_exponent=None), tmp_path / "out")
    assert len(counter.computed) == len(study.plan_runs(config))


def test_a_truncated_cache_file_is_detected_and_recomputed(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder, regime_zipf_exponent=None)
    first = run_study(config, tmp_path)
    victim = next((tmp_path / "runs").glob("run-zipf1.1-dft-seed0-*.json"))
    victim.write_bytes(victim.read_bytes()[:200])  # truncated mid-file
    study_file = next(tmp_path.glob("study-test-*.json"))
    text = study_file.read_text()
    study_file.write_text(text.replace('"validity": 1.0', '"validity": 0.5', 1))  # edited: hash no longer matches
    with pytest.raises(CorruptFileError, match="python -m dftlab.study"):
        load_results(config=config, out=tmp_path)
    counter = CountingRuns(monkeypatch)
    pd.testing.assert_frame_equal(run_study(config, tmp_path), first)
    assert counter.computed == ["zipf1.1-dft-seed0"]
    assert json.loads(victim.read_text())["sha256"]  # rewritten whole


def test_an_interrupted_study_resumes_from_the_finished_runs(tiny_model_folder, tmp_path, monkeypatch):
    config = tiny_config(tiny_model_folder, regime_zipf_exponent=None, seeds=(0, 1))
    runs = [run.run_id for run in study.plan_runs(config)]
    interrupted = CountingRuns(monkeypatch, interrupt_after=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, tmp_path)
    assert interrupted.computed == runs[:3]
    assert not list(tmp_path.glob("study-*.json"))
    resumed = CountingRuns(monkeypatch)
    run_study(config, tmp_path)
    assert resumed.computed == runs[3:]  # the first three are not recomputed


def test_a_worker_process_rebuilds_the_run_from_plain_json(tiny_model_folder, tmp_path):
    # --workers N ships each run to another process as JSON-able dicts; what it computes must not change.
    # (Across processes the last bits of token_l2 may differ: it sums over a set, whose order follows the hash seed.)
    config = tiny_config(tiny_model_folder, regime_zipf_exponent=None)
    run = next(r for r in study.plan_runs(config) if r.label == "dft")
    path = tmp_path / "run.json"
    assert study._worker(config.to_dict(), json.loads(json.dumps(study.asdict(run))), str(path)) == run.run_id
    from_worker = study.read_json_with_hash(path)
    direct = study.compute_run(config, run)
    assert from_worker["run"] == direct["run"] and from_worker["rows"] == direct["rows"]


def test_load_results_says_which_command_to_run(tiny_model_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m dftlab.study --quick"):
        load_results(quick=True, config=tiny_config(tiny_model_folder, name="quick"), out=tmp_path)


def test_true_completions_follow_the_prompts():
    tales = TinyTales(0, 1.1)
    prompts = [s["prompt"] for s in tales.splits(train=1, valid=1, test=3)["test"]]
    samples = study.true_completions(tales, prompts, per_prompt=4, seed=0)
    assert [s["prompt"] for s in samples] == [p for p in prompts for _ in range(4)]
    assert all(math.isfinite(tales.log_prob(s["prompt"], s["completion"])) for s in samples)
    assert samples == study.true_completions(tales, prompts, per_prompt=4, seed=0)


# ---- configuration and command line ----------------------------------------------------------------

def test_every_column_is_described():
    assert list(study.COLUMN_DESCRIPTIONS) == list(study.ID_COLUMNS + study.METRIC_COLUMNS)
    readme = study.results_readme()
    assert all(f"| {column} |" in readme for column in study.COLUMN_DESCRIPTIONS)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="regime_objectives"):
        StudyConfig(regime_objectives=("nope",))
    with pytest.raises(ValueError, match="labels must be unique"):
        StudyConfig(objectives=(ObjectiveSpec("a", "nll"), ObjectiveSpec("a", "dft")), regime_objectives=())
    with pytest.raises(ValueError, match="steps"):
        StudyConfig(steps=0)
    with pytest.raises(ValueError, match="workers"):
        run_study(StudyConfig(), workers=0)


def test_quick_config_keeps_every_objective_and_decoding():
    quick, full = study.default_config(quick=True), study.default_config()
    assert quick.objectives == full.objectives and quick.decodings == full.decodings
    assert quick.steps < full.steps and quick.regime_zipf_exponent == 0.3
    assert [d.name for d in full.decodings] == ["T=1", "T=0.7,top-p=0.9"] and full.decodings[1] == Decoding(
        "T=0.7,top-p=0.9", 0.7, 0.9)
    assert len(full.seeds) >= 3


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--seeds", "--objectives", "--out", "--force", "--workers", "--no-progress", "claims"):
        assert option in text
    with pytest.raises(SystemExit, match="unknown label"):
        study.main(["--objectives", "bogus", "--out", "/nonexistent"])


def test_claims_command_without_results_says_what_to_run(tiny_model_folder, tmp_path, monkeypatch):
    monkeypatch.setattr(study, "default_config", lambda quick=False: tiny_config(tiny_model_folder))
    with pytest.raises(SystemExit, match="python -m dftlab.study"):
        study.main(["claims", "--out", str(tmp_path)])
