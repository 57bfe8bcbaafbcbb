"""dftlab.study.cache: the config hashes and file names that key every cached run and study."""

from dataclasses import replace

import pytest

from dftlab import study
from dftlab.study import cache
from dftlab.study.config import REAL_MODEL, StudyConfig, plan_runs, real_model_config

from conftest import STRONG, WEAK, tiny_config


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


@pytest.mark.slow
def test_the_claims_file_is_named_after_the_default_studies(tiny_model_folder, weak_model_folder, tmp_path):
    from dataclasses import replace

    from dftlab.study.cache import claims_path

    fake = {tiny_model_folder: "0" * 64, weak_model_folder: "1" * 64}
    for quick, name in ((False, "CLAIMS.md"), (True, "CLAIMS-quick.md")):
        default = study.default_config(quick)
        installed_elsewhere = replace(default, model=tiny_model_folder, weak_model=weak_model_folder)
        assert claims_path(tmp_path, installed_elsewhere, fake) == tmp_path / name
    config = tiny_config(tiny_model_folder)
    assert claims_path(tmp_path, config, fake).name == f"CLAIMS-test-{study.study_config_hash(config, fake)}.md"


def test_the_config_hash_depends_on_the_files_not_the_names():
    config = StudyConfig()
    fake = {STRONG: "0" * 64, WEAK: "1" * 64}
    from dataclasses import replace

    renamed = replace(config, model="/a/strong", weak_model="/b/weak")
    assert study.study_config_hash(renamed, {"/a/strong": "0" * 64, "/b/weak": "1" * 64}) == study.study_config_hash(config, fake)
    assert study.study_config_hash(config, {STRONG: "0" * 64, WEAK: "2" * 64}) != study.study_config_hash(config, fake)
    swapped = {STRONG: "1" * 64, WEAK: "0" * 64}  # which model is the strong prior matters
    assert study.study_config_hash(config, swapped) != study.study_config_hash(config, fake)
    assert study.study_config_hash(replace(config, weak_model=None), {STRONG: "0" * 64}) != study.study_config_hash(config, fake)
