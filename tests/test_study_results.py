"""dftlab.study.results: the results tables, their columns, and the files they are read from."""

import pytest

from dftlab import study
from dftlab.storage import CorruptFileError
from dftlab.study import load_results

from conftest import tiny_config


def test_the_shipped_results_are_read_without_writing_to_the_package(monkeypatch, tmp_path):
    monkeypatch.delenv("DFTLAB_RESULTS", raising=False)
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path))
    assert len(study.load_results(quick=True)) > 0
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_load_results_says_which_command_to_run(tiny_model_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"python -m dftlab.study --quick"):
        load_results(quick=True, config=tiny_config(tiny_model_folder, name="quick"), out=tmp_path)


@pytest.mark.slow
def test_a_results_file_of_another_config_is_refused(tiny_model_folder, tmp_path):
    from dftlab.storage import write_json_with_hash

    config = tiny_config(tiny_model_folder, name="quick")
    other = tiny_config(tiny_model_folder, name="quick", steps=5)
    model_fingerprints = study.fingerprints(config)
    assert study.study_config_hash(other, model_fingerprints) != study.study_config_hash(config, model_fingerprints)
    # another config's study, under this config's file name (renamed by hand, or copied from another machine)
    payload = {"config": other.to_dict(), "config_hash": study.study_config_hash(other, model_fingerprints), "rows": []}
    write_json_with_hash(study.study_path(tmp_path, config, model_fingerprints), payload)
    with pytest.raises(CorruptFileError, match=r"another configuration.*`python -m dftlab\.study --quick`"):
        study.load_study(config=config, out=tmp_path)
    # ... and under its own name: not found for this config, with the stray file named
    study.study_path(tmp_path, config, model_fingerprints).unlink()
    stray = write_json_with_hash(study.study_path(tmp_path, other, model_fingerprints), payload)
    with pytest.raises(FileNotFoundError, match="python -m dftlab.study --quick") as error:
        study.load_study(config=config, out=tmp_path)
    assert stray.name in str(error.value) and "refused" in str(error.value)


@pytest.mark.slow
def test_a_missing_base_model_is_named_when_results_are_read(tiny_model_folder, tmp_path):
    config = tiny_config(tiny_model_folder, weak_model=str(tmp_path / "no-such-model"))
    with pytest.raises(FileNotFoundError, match=r"no-such-model.*keyed by the base models' files"):
        study.load_study(config=config, out=tmp_path)


def test_every_column_is_described():
    assert list(study.COLUMN_DESCRIPTIONS) == list(study.ID_COLUMNS + study.METRIC_COLUMNS)
    readme = study.results_readme()
    assert all(f"| {column} |" in readme for column in study.COLUMN_DESCRIPTIONS)
    assert {"base_model", "prior", "steps"} <= set(study.ID_COLUMNS)
    assert {"prob_character", "prob_other"} <= set(study.MODEL_METRICS)


def test_the_committed_results_have_the_study_design():
    results = study.load_results()
    config = study.default_config()
    assert {"base_model", "prior", "steps", "mmd_p_value"} <= set(results.columns)
    tuned = results[results["kind"] == "finetuned"]
    headline = tuned[(tuned["base_model"] == config.model) & (tuned["steps"] == config.steps)]
    for objective, seeds in (("nll", config.headline_seeds), ("dft", config.headline_seeds)):
        assert set(headline.loc[headline["objective"] == objective, "seed"]) == set(seeds)
    assert {o.label for o in config.objectives} == set(headline["objective"])
    assert set(tuned["steps"]) == {config.steps, *config.budget_sweep}
    assert set(tuned.loc[tuned["prior"] == "weak", "objective"]) == set(config.headline_objectives)
    truth = results[results["objective"] == "truth"]
    assert truth["mmd_p_value"].notna().all() and (truth["decoding"] == "data").all()
