"""dftlab.study.cli: the command line of `python -m dftlab.study`."""

import pandas as pd
import pytest

from dftlab import study

from conftest import WEAK, tiny_config


def test_the_replication_command_refuses_other_settings():
    for extra in (["--quick"], ["--seeds", "3"], ["--real-model"], ["--objectives", "nll"]):
        with pytest.raises(SystemExit, match="--replication"):
            study.main(["--replication", *extra, "--out", "/nonexistent"])


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        study.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--seeds", "--objectives", "--out", "--force", "--workers", "--no-progress", "claims"):
        assert option in text
    with pytest.raises(SystemExit, match="unknown label"):
        study.main(["--objectives", "bogus", "--out", "/nonexistent"])


def test_the_command_line_builds_the_config_it_is_asked_for(monkeypatch, tmp_path, capsys):
    from dftlab.study import cli

    seen = {}

    def fake_run_study(config, out, force, workers, progress):
        seen.update(config=config, out=out, force=force, workers=workers)
        return pd.DataFrame({"a": [1, 2]})

    monkeypatch.setattr(cli, "run_study", fake_run_study)
    monkeypatch.setattr(cli, "fingerprints", lambda config: {m: "0" * 64 for m in config.base_models})
    assert study.main(["--quick", "--seeds", "3", "4", "--objectives", "nll", "power_0.5", "--out", str(tmp_path),
                       "--workers", "1", "--force", "--no-progress"]) == 0
    config = seen["config"]
    assert config.name == "custom" and config.seeds == config.headline_seeds == (3, 4)
    assert [o.label for o in config.objectives] == ["nll", "power_0.5"] and config.headline_objectives == ("nll",)
    assert config.steps == study.default_config(quick=True).steps and config.weak_model == WEAK
    assert seen["out"] == tmp_path and seen["force"] and seen["workers"] == 1
    assert "2 rows" in capsys.readouterr().out


@pytest.mark.slow
def test_claims_command_without_results_says_what_to_run(tiny_model_folder, tmp_path, monkeypatch):
    from dftlab.study import claims

    monkeypatch.setattr(claims, "default_config", lambda quick=False: tiny_config(tiny_model_folder))
    with pytest.raises(SystemExit, match="python -m dftlab.study"):
        study.main(["claims", "--out", str(tmp_path)])
    with pytest.raises(SystemExit, match="--seeds"):
        study.main(["claims", "--seeds", "1", "--out", str(tmp_path)])
