"""dftlab.study.scale: TRL's SFTTrainer with a dftlab objective, in process and under `accelerate launch`, LoRA and chat."""

import os
import shutil
import subprocess
import sys

import pytest
import trl  # noqa: F401 -- pinned in pyproject.toml: a missing trl is a broken environment, not a skip

import dftlab
from dftlab.study import scale


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


def test_tinytales_dataset_is_prompt_completion_pairs():
    dataset = scale.tinytales_dataset(5)
    assert dataset.column_names == ["prompt", "completion"] and len(dataset) == 5
    assert dataset[0]["prompt"].startswith("Title:") and dataset[0]["completion"].startswith(" ")
    with pytest.raises(ValueError, match="positive int"):
        scale.tinytales_dataset(0)


def test_build_trainer_records_a_loss_per_step_and_saves_nothing(tmp_path, capsys):
    model, tokenizer = dftlab.load_model("tiny-gpt2")
    trainer = scale.build_trainer(model, tokenizer, scale.tinytales_dataset(8), "dft", steps=2, batch_size=4,
                                  lr=1e-3, output_dir=tmp_path, use_cpu=True)
    losses = scale.run_trainer(trainer)
    assert list(losses["step"]) == [1, 2] and (losses["loss"] > 0).all()
    assert {"entropy", "mean_token_accuracy"} <= set(losses.columns)
    assert capsys.readouterr().out == ""  # quiet: no progress bar, no printed log dicts
    assert not list(tmp_path.rglob("*.safetensors"))


def test_refuses_objectives_a_trainer_cannot_compute(capsys):
    with pytest.raises(SystemExit, match="asft"):
        scale.main(["--objective", "asft", "--steps", "1"])
    with pytest.raises(SystemExit, match=r"\['nll', 'dft'\]"):
        scale.main(["--objective", "power", "--trl-loss", "--steps", "1"])


@pytest.mark.slow
def test_accelerate_launch_recipe_runs_two_steps(tmp_path):
    """The chapter's command, on one CPU process: `accelerate launch -m dftlab.study.scale ...`."""
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which("accelerate")
    if accelerate is None:
        pytest.skip("accelerate's launcher is not installed")
    command = [accelerate, "launch", "--cpu", "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "no",
               "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1", "-m", "dftlab.study.scale",
               "--objective", "power", "--objective-kwarg", "alpha=0.5", "--model", "tiny-gpt2", "--steps", "2",
               "--examples", "16", "--batch-size", "4", "--output-dir", str(tmp_path / "run"), "--save"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "dftlab objective 'power', 2 steps on 1 process(es)" in done.stdout
    assert len([line for line in done.stdout.splitlines() if line.split()[:1] in (["1"], ["2"])]) == 2
    assert (tmp_path / "run" / "model.safetensors").exists()
