"""The real-model study (SmolLM2-135M-Instruct through TRL and LoRA): its config, cache keys, chat format and results."""
import json
from dataclasses import replace

import pytest

from dftlab.study import scale
from dftlab.chat_samples import chat_examples, story_from_response
from dftlab.study import cache
from dftlab.study.config import (REAL_MODEL, RealModelStudyConfig, StudyConfig, config_from_dict, default_config,
                                 plan_runs, real_model_config)


class TemplateTokenizer:
    """Just enough of a chat tokenizer: a template that wraps the user's turn."""
    chat_template = "stub"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt):
        assert not tokenize and add_generation_prompt
        return f"<user>{messages[0]['content']}</user><assistant>\n"


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


@pytest.mark.parametrize("changes, message", [
    (dict(weak_model="tiny-gpt2"), "one base model"),
    (dict(open_prompts=61), "cannot exceed the 60 open writing prompts"),
    (dict(lora_rank=0), "lora_rank"),
    (dict(lora_alpha=-1.0), "lora_alpha"),
])
def test_bad_real_model_settings_are_refused_with_their_name(changes, message):
    with pytest.raises(ValueError, match=message):
        RealModelStudyConfig(**changes)


def test_a_run_from_another_config_or_model_never_shares_a_cache_file(tmp_path):
    config = real_model_config()
    fingerprints = cache.fingerprints(config)  # the GGUF file's recorded sha256: no conversion needed
    run = [r for r in plan_runs(config) if r.kind == "finetuned"][0]
    path = cache.run_path(tmp_path, config, run, fingerprints)
    assert path.name.startswith("run-smollm2-135m-instruct-nll-")
    for other in (replace(config, lora_rank=8), replace(config, lr=1e-4), replace(config, max_new_tokens=64)):
        assert cache.run_path(tmp_path, other, run, fingerprints) != path
    other_model = {REAL_MODEL: "0" * 64}
    assert cache.run_path(tmp_path, config, run, other_model) != path
    assert cache.claims_path(tmp_path, config, fingerprints).name.startswith("CLAIMS-smollm2-")
    assert cache.recompute_command(config) == "python -m dftlab.study --real-model"
    assert cache.recompute_command(real_model_config(quick=True)) == "python -m dftlab.study --real-model --quick"


def test_chat_examples_put_the_title_in_the_users_turn_and_back():
    story = {"prompt": "Title: The cat and the park.\nStory:", "completion": " Once upon a time, a cat sat."}
    [chat] = chat_examples(TemplateTokenizer(), [story])
    assert chat == {"prompt": "<user>Title: The cat and the park.\nStory:</user><assistant>\n",
                    "completion": "Once upon a time, a cat sat."}
    assert story_from_response(story["prompt"], chat["completion"] + "\n") == story
    dataset = scale.examples_dataset([story], chat_tokenizer=TemplateTokenizer())
    assert dataset[0] == chat


def test_lora_trains_only_the_adapters_of_a_tiny_model(tmp_path):
    import dftlab

    model, tokenizer = dftlab.load_model("tiny-gpt2")
    trainer = scale.build_trainer(model, tokenizer, scale.tinytales_dataset(8), "dft", steps=2, batch_size=4, lr=1e-3,
                                  output_dir=tmp_path, use_cpu=True, lora_rank=4, lora_targets=("c_attn",))
    losses = scale.run_trainer(trainer)
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in name for name in trainable)
    assert list(losses["step"]) == [1, 2]
    merged = trainer.model.merge_and_unload()
    assert not any("lora_" in name for name, _ in merged.named_parameters())


@pytest.mark.parametrize("argv, message", [
    (["--lora-rank", "-1"], "--lora-rank must be 0"),
    (["--chat-template", "--model", "tiny-gpt2"], "has no chat template"),
])
def test_scale_command_line_names_bad_lora_and_chat_settings(argv, message):
    with pytest.raises(SystemExit, match=message):
        scale.main(argv + ["--steps", "1", "--examples", "4"])


# --- the committed results ------------------------------------------------------------------------------------------

def test_the_committed_real_model_study_has_every_run_and_reads_like_the_tiny_one():
    from dftlab.study import load_results, load_study

    config = real_model_config()
    results = load_results(config=config)
    tuned = results[results["kind"] == "finetuned"]
    assert sorted(set(tuned["objective"])) == ["dft", "nll"]
    assert all(sorted(set(tuned.loc[tuned["objective"] == o, "seed"])) == [0, 1, 2] for o in ("nll", "dft"))
    assert (results.loc[results["kind"] != "truth", "base_model"] == REAL_MODEL).all()
    assert results.loc[results["kind"] != "truth", "kl"].notna().all()
    study = load_study(config=config)
    assert set(study["open_responses"]) == set(results.loc[results["kind"] != "truth", "run_id"])
    assert "open_responses" not in load_study()  # the tiny-model study's file is unchanged in shape


def test_the_committed_real_model_claims_file_is_what_the_claims_code_writes():
    from dftlab.study import load_study
    from dftlab.storage import reading_results_dir
    from dftlab.study.claims import claims_markdown
    from dftlab.study.results import study_table

    config = real_model_config()
    study = load_study(config=config)
    path = cache.claims_path(reading_results_dir(), config, cache.fingerprints(config))
    assert path.read_text() == claims_markdown(study_table(study), study)


@pytest.mark.slow
def test_an_interrupted_real_model_study_resumes_and_refuses_foreign_runs(tmp_path, monkeypatch):
    """The quick study, computed once; a second call computes nothing, a damaged run file is recomputed."""
    from dftlab.study import run as study_run

    config = real_model_config(quick=True)
    study_run.run_study(config, tmp_path, progress=False)
    run_files = sorted((tmp_path / "runs").glob("run-*.json"))
    assert len(run_files) == len(plan_runs(config))
    computed = []
    real = study_run._compute_and_store
    monkeypatch.setattr(study_run, "_compute_and_store", lambda c, r, p: computed.append(r.run_id) or real(c, r, p))
    study_run.run_study(config, tmp_path, progress=False)
    assert computed == []
    damaged = [p for p in run_files if "-nll-" in p.name][0]
    stored = json.loads(damaged.read_text())
    stored["payload"]["rows"][0]["kl"] = 0.0  # edited by hand: its sha256 no longer matches
    damaged.write_text(json.dumps(stored))
    study_run.run_study(config, tmp_path, progress=False)
    assert computed == [f"{REAL_MODEL}-nll-{config.steps}steps-seed0"]


def test_carry_over_lines_up_two_studies_and_names_bad_input():
    from dftlab.study import load_results
    from dftlab.study import carry_over
    from dftlab.study.carry_over import carry_over_table, open_prompt_habits, verdicts_side_by_side

    tiny = load_results()
    table = carry_over_table({"a": tiny, "b": tiny})
    assert list(table["study"].unique()) == ["a", "b"] and set(table["metric"]) >= {"kl", "validity"}
    kl = table[table["metric"] == "kl"].iloc[0]
    assert kl["dft"] > kl["nll"] and kl["ci_low"] <= kl["difference"] <= kl["ci_high"]
    assert table.loc[table["significant"], "agrees"].eq(True).all()  # a study always agrees with itself
    assert (table["adjusted_p"] >= table["p_value"]).all() and table["family_size"].gt(len(set(table["metric"]))).all()
    # sample statistics are judged by their distance to the truth: dft's distinct-2 is lower than nll's, but the
    # comparison is |dft - truth| - |nll - truth|, which is what the row's difference must be
    distinct = table[(table["metric"] == "distinct_2")].iloc[0]
    assert distinct["compared"] == "|distinct_2 - truth|"
    per_seed = tiny[(tiny["steps"] == 200) & (tiny["decoding"] == "T=1") & (tiny["base_model"] == "tiny-gpt2")]
    truth = tiny[tiny["objective"] == "truth"].set_index("seed")["distinct_2"]
    distance = {o: (per_seed[per_seed["objective"] == o].set_index("seed")["distinct_2"] - truth).abs().dropna()
                for o in ("nll", "dft")}
    assert distinct["difference"] == pytest.approx((distance["dft"] - distance["nll"]).dropna().mean())
    sides = verdicts_side_by_side({"a": tiny, "b": tiny})
    assert (sides["a"] == sides["b"]).all() and len(sides) == 5
    with pytest.raises(ValueError, match="at least two"):
        carry_over_table({"a": tiny})
    with pytest.raises(ValueError, match="open prompts"):
        from dftlab.study import load_study
        carry_over.collapse_table(load_study(), tiny)
    with pytest.raises(ValueError, match="no answers to open prompts"):
        from dftlab.study import load_study
        open_prompt_habits(load_study())


def test_the_collapse_table_finds_each_runs_own_opening():
    from dftlab.study import load_results, load_study
    from dftlab.study.carry_over import collapse_table, opening_entropy

    assert opening_entropy(["Once upon a time"] * 4) == 0.0
    assert opening_entropy(["a b", "c d", "e f", "g h"]) == pytest.approx(2.0)
    config = real_model_config()
    table = collapse_table(load_study(config=config), load_results(config=config))
    assert len(table) == 3 * len(config.seeds) and list(dict.fromkeys(table["objective"])) == ["base", "nll", "dft"]
    assert table["own_top_opening_share"].between(0, 1).all() and (table["opening_entropy_bits"] >= 0).all()
    assert (table["answers"] == config.open_prompts * config.open_responses_per_prompt).all()
