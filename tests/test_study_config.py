"""dftlab.study.config: the study designs (tiny and real-model), their runs, and bad configs refused."""

import dataclasses
import json

import pytest

from dftlab import study
from dftlab.study import Decoding, ObjectiveSpec, run_study
from dftlab.study.config import (REAL_MODEL, RealModelStudyConfig, StudyConfig, config_from_dict, default_config,
                                 plan_runs, real_model_config)

from conftest import STRONG, WEAK


def test_the_real_model_study_trains_nll_and_dft_with_three_seeds_from_smollm2():
    config = real_model_config()
    assert config.model == REAL_MODEL and config.weak_model is None and config.base_models == (REAL_MODEL,)
    runs = plan_runs(config)
    tuned = [(r.label, r.seed) for r in runs if r.kind == "finetuned"]
    assert sorted(tuned) == [(label, seed) for label in ("dft", "nll") for seed in (0, 1, 2)]
    assert all(r.steps == config.steps for r in runs if r.kind == "finetuned")  # no budget sweep, no weak prior


def test_its_config_round_trips_and_leaves_the_tiny_study_keys_alone():
    config = real_model_config()
    assert config_from_dict(config.to_dict()) == config
    assert type(config_from_dict(default_config().to_dict())) is StudyConfig
    assert "lora_rank" not in default_config().to_dict()  # the tiny study's hashes (and cached results) do not move


def test_the_real_model_study_is_the_tiny_design_with_its_settings_changed():
    config = real_model_config()
    assert config.model == REAL_MODEL and config.weak_model is None and config.decodings == (Decoding("T=1", 1.0),)
    with pytest.raises(ValueError, match="real_model_config"):  # its own defaults are the tiny study's, two models
        RealModelStudyConfig()


def test_every_study_setting_says_what_it_means():
    meanings = {f.name: f.metadata.get("meaning") for f in dataclasses.fields(RealModelStudyConfig)}
    assert set(meanings) >= set(default_config().to_dict()) and all(meanings.values()), meanings


@pytest.mark.parametrize("changes, message", [
    (dict(weak_model="tiny-gpt2"), "one base model"),
    (dict(open_prompts=61), "cannot exceed the 60 open writing prompts"),
    (dict(lora_rank=0), "lora_rank"),
    (dict(lora_alpha=-1.0), "lora_alpha"),
])
def test_bad_real_model_settings_are_refused_with_their_name(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(real_model_config(), **changes)


def test_plan_runs_gives_the_headline_objectives_more_seeds_a_sweep_and_the_weak_prior():
    config = StudyConfig()  # nll and dft with seeds 0-4 at 200 steps; the sweep (50, 100) and the weak prior with 0-2
    runs = study.plan_runs(config)
    assert len({run.run_id for run in runs}) == len(runs)
    finetuned = [r for r in runs if r.kind == "finetuned"]
    by_key = {}
    for run in finetuned:
        by_key.setdefault((run.label, run.base_model, run.steps), []).append(run.seed)
    for label in ("nll", "dft"):
        assert by_key[(label, STRONG, 200)] == [0, 1, 2, 3, 4]
        assert by_key[(label, STRONG, 50)] == by_key[(label, STRONG, 100)] == [0, 1, 2]
        assert by_key[(label, WEAK, 200)] == [0, 1, 2]
    others = [o.label for o in config.objectives if o.label not in ("nll", "dft")]
    for label in others:
        assert by_key[(label, STRONG, 200)] == [0, 1, 2]
    assert len(by_key) == 2 * 4 + len(others)  # no sweep and no weak prior for the other objectives
    assert len(finetuned) == 2 * (5 + 2 * 3 + 3) + 3 * len(others)
    assert [r.seed for r in runs if r.kind == "truth"] == [0, 1, 2, 3, 4]
    assert sorted((r.base_model, r.seed) for r in runs if r.kind == "base") == sorted(
        (model, seed) for model in (STRONG, WEAK) for seed in range(5))
    assert all(r.steps == 0 and r.objective is None for r in runs if r.kind != "finetuned")
    # grouped by seed, so that shared inputs (the splits, the reference) are built once
    seeds = [r.seed for r in runs]
    assert seeds == sorted(seeds)


def test_plan_runs_without_a_weak_prior_or_a_sweep():
    config = StudyConfig(weak_model=None, budget_sweep=(), headline_seeds=(0, 1, 2))
    runs = study.plan_runs(config)
    assert {r.base_model for r in runs if r.kind != "truth"} == {STRONG}
    assert {r.steps for r in runs if r.kind == "finetuned"} == {200}
    assert len(runs) == 3 * (1 + 1 + len(config.objectives))
    # the headline seeds need not include the others' seeds: every seed gets its truth and base runs
    config = StudyConfig(weak_model=None, budget_sweep=(), seeds=(0,), headline_seeds=(1,))
    plan = [(r.kind, r.label, r.seed) for r in study.plan_runs(config)]
    assert ("finetuned", "nll", 1) in plan and ("finetuned", "nll", 0) not in plan
    assert ("finetuned", "power_0.5", 0) in plan and ("finetuned", "power_0.5", 1) not in plan
    assert ("truth", "truth", 0) in plan and ("truth", "truth", 1) in plan


def test_run_ids_name_the_base_model_the_budget_and_the_seed():
    nll_spec = ObjectiveSpec("nll", "nll")
    assert study.RunSpec("finetuned", 3, "/some/folder/tiny-gpt2-english", 50, nll_spec).run_id == \
        "tiny-gpt2-english-nll-50steps-seed3"
    assert study.RunSpec("base", 1, STRONG).run_id == "tiny-gpt2-base-seed1"
    assert study.RunSpec("truth", 2).run_id == "truth-seed2"
    run = study.RunSpec("finetuned", 3, STRONG, 200, ObjectiveSpec("power_0.5", "power", {"alpha": 0.5}))
    plain = json.loads(json.dumps(dataclasses.asdict(run)))
    assert study.RunSpec.from_dict(plain) == run and study.RunSpec.from_dict(
        json.loads(json.dumps(dataclasses.asdict(study.RunSpec("truth", 0))))) == study.RunSpec("truth", 0)


def test_bad_configs_are_refused():
    with pytest.raises(ValueError, match="headline_objectives"):
        StudyConfig(headline_objectives=("nope",))
    with pytest.raises(ValueError, match="labels must be unique"):
        StudyConfig(objectives=(ObjectiveSpec("a", "nll"), ObjectiveSpec("a", "dft")), headline_objectives=())
    with pytest.raises(ValueError, match="not 'base' or 'truth'"):
        StudyConfig(objectives=(ObjectiveSpec("truth", "nll"),), headline_objectives=())
    with pytest.raises(ValueError, match="steps"):
        StudyConfig(steps=0)
    with pytest.raises(ValueError, match="budget_sweep"):
        StudyConfig(budget_sweep=(200,))  # the headline budget itself
    with pytest.raises(ValueError, match="budget_sweep"):
        StudyConfig(budget_sweep=(0,))
    with pytest.raises(ValueError, match="headline_seeds"):
        StudyConfig(headline_seeds=())
    with pytest.raises(ValueError, match="model"):
        StudyConfig(model=None)
    with pytest.raises(ValueError, match="weak_model"):
        StudyConfig(weak_model="  ")
    with pytest.raises(ValueError, match="workers"):
        run_study(StudyConfig(), workers=0)
    assert StudyConfig(weak_model=None).base_models == (STRONG,)
    assert StudyConfig().base_models == (STRONG, WEAK)


def test_quick_config_keeps_every_objective_decoding_and_base_model():
    quick, full = study.default_config(quick=True), study.default_config()
    assert quick.objectives == full.objectives and quick.decodings == full.decodings
    assert (quick.model, quick.weak_model) == (full.model, full.weak_model) == (STRONG, WEAK)
    assert quick.headline_objectives == full.headline_objectives == ("nll", "dft")
    assert quick.steps < full.steps and quick.budget_sweep and all(b < quick.steps for b in quick.budget_sweep)
    assert [d.name for d in full.decodings] == ["T=1", "T=0.7,top-p=0.9"] and full.decodings[1] == Decoding(
        "T=0.7,top-p=0.9", 0.7, 0.9)
    assert full.seeds == (0, 1, 2) and full.headline_seeds == (0, 1, 2, 3, 4) and full.budget_sweep == (50, 100)
