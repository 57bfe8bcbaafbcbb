"""dftlab.study.distillation: cutting answers at a sentence, the run order, resuming and refusing runs, and the committed
study loading through its loader."""
from __future__ import annotations

import pytest

from dftlab import storage
from dftlab.study import distillation


class WordTokenizer:
    """One token per whitespace-separated word, enough to test cutting by token count: `decode` gives back the
    first words of the last text it tokenised."""

    def __call__(self, text, add_special_tokens=False):
        self.text = text
        return {"input_ids": list(range(len(text.split())))}

    def decode(self, ids):
        return " ".join(self.text.split()[:len(ids)])


def cut(text, max_tokens, finished=True):
    return distillation.cut_at_sentence(text, WordTokenizer(), max_tokens, finished)


def test_cut_at_sentence_keeps_whole_sentences_within_the_budget():
    text = "One two three. Four five six! Seven eight nine ten."
    assert cut(text, 100) == text
    assert cut(text, 7) == "One two three. Four five six!"
    assert cut(text, 4) == "One two three."
    assert cut("no sentence end here at all", 3) == "no sentence end"  # nothing to cut back to: kept as cut


def test_cut_at_sentence_trims_an_unfinished_sample_even_when_it_fits():
    assert cut("A whole one. And then it stop", 100, finished=False) == "A whole one."
    assert cut("A whole one. And then it stop", 100, finished=True) == "A whole one. And then it stop"
    assert cut('He said "no." Then he went', 100, finished=False) == 'He said "no."'


def test_runs_are_ordered_so_a_stopped_study_holds_every_arm_once():
    names = distillation.run_names({"teachers": {"original": "a", "antislop": "b"}, "objectives": ["nll", "dft"],
                                    "seeds": [0, 1]})
    assert names[0] == "base"
    assert names[1:5] == ["original-nll-seed0", "original-dft-seed0", "antislop-nll-seed0", "antislop-dft-seed0"]
    assert len(names) == 9 and len(set(names)) == 9


@pytest.fixture
def stand_in_study(tmp_path, monkeypatch):
    """build_distillation with the user cache in tmp_path, MMD replaced by a stub and a stand-in for training."""
    from dftlab import models

    monkeypatch.setattr(models, "cache_dir", lambda: tmp_path / "cache")
    monkeypatch.setattr(distillation, "_mmd_rows", lambda answers, config: [
        {"model": name, "teacher": teacher, "mmd2": 0.0, "p_value": 1.0}
        for name in answers for teacher in config["teachers"] if name != teacher])
    computed = []

    def compute(name, config, data):
        computed.append(name)
        teacher = "original" if name == "base" else name.split("-")[0]
        return {"name": name, "config_hash": storage.config_digest(config),
                "answers": [row[teacher] for row in data["held_out"]], "losses": [], "train_seconds": 0.0,
                "sample_seconds": 0.0, "device": "cpu", "threads": 1}

    return tmp_path, compute, computed


@pytest.mark.slow  # loads SmolLM2's tokenizer and cuts 600 answers with it
def test_an_interrupted_build_resumes_from_its_last_complete_run(stand_in_study):
    tmp_path, compute, computed = stand_in_study

    def interrupted(name, config, data):
        if len(computed) == 3:
            raise KeyboardInterrupt
        return compute(name, config, data)

    with pytest.raises(KeyboardInterrupt):
        distillation.build_distillation(tmp_path / "results", log=lambda *_: None, compute=interrupted)
    assert computed == ["base", "original-nll-seed0", "original-dft-seed0"]
    assert not (tmp_path / "results").exists()  # nothing half-written
    computed.clear()
    path = distillation.build_distillation(tmp_path / "results", log=lambda *_: None, compute=compute)
    assert "base" not in computed and len(computed) == 6
    study = distillation.load_distillation(tmp_path / "results")
    assert path == distillation.distillation_path(folder=tmp_path / "results")
    table = distillation.distillation_table(study, bootstrap=50)
    assert set(table["model"]) == {"original", "antislop", *distillation.run_names(study["config"])}
    # a stand-in student that copies its teacher's answers measures exactly as the teacher does
    copy = table[table["model"] == "original-nll-seed0"].set_index("measure")["value"]
    teacher = table[table["model"] == "original"].set_index("measure")["value"]
    assert (copy - teacher).abs().max() == pytest.approx(0.0)


@pytest.mark.slow  # loads SmolLM2's tokenizer and cuts 600 answers with it
def test_a_run_of_other_settings_is_refused_with_the_command(stand_in_study):
    tmp_path, compute, computed = stand_in_study
    config = distillation.distillation_config()
    run_file = tmp_path / "cache" / f"distillation-runs-{storage.config_digest(config)}" / "base.json"
    storage.write_json_with_hash(run_file, {"name": "base", "config_hash": "another", "answers": []})
    with pytest.raises(ValueError, match="python -m dftlab.study.distillation"):
        distillation.build_distillation(tmp_path / "results", log=lambda *_: None, compute=compute)
    assert computed == []


def test_results_of_other_settings_or_none_at_all_are_refused_with_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m dftlab.study.distillation"):
        distillation.load_distillation(tmp_path)
    config = distillation.distillation_config()
    storage.write_json_with_hash(distillation.distillation_path(config, tmp_path),
                                 {"config": {**config, "completion_tokens": 1}})
    with pytest.raises(ValueError, match="python -m dftlab.study.distillation"):
        distillation.load_distillation(tmp_path)


@pytest.mark.slow  # measures every answer of the committed study
def test_the_committed_study_loads_through_its_loader_with_every_run_and_both_seeds():
    study = distillation.load_distillation()
    config = study["config"]
    assert set(study["runs"]) == set(distillation.run_names(config))
    assert len(config["seeds"]) >= 2
    for name, run in study["runs"].items():
        assert len(run["answers"]) == len(study["held_out"]) == config["held_out_prompts"], name
        if name != "base":
            assert len(run["losses"]) == config["training"]["steps"], name
    held = {row["prompt_index"] for row in study["held_out"]}
    from dftlab.antislop import paired_answers

    pairs = paired_answers()
    assert held.isdisjoint(set(pairs.loc[pairs["half"] == 0, "prompt_index"]))  # no training prompt is measured
    differences = distillation.objective_differences(study, bootstrap=100)
    assert set(differences["teacher"]) == set(config["teachers"])
    assert (differences["ci_low"] <= differences["dft_minus_nll"] + 1e-12).all()
    assert (differences["dft_minus_nll"] <= differences["ci_high"] + 1e-12).all()
