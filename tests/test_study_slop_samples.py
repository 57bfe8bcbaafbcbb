"""SmolLM2 on slop-score's prompts (dftlab.study.slop_samples): the subset, the resumable seeded build, the loader's
refusal of another config, and the leaderboard table with its bootstrap intervals."""
import json

import numpy as np
import pytest

from dftlab.study import slop_samples
from dftlab.chat_samples import batch_seed
from dftlab.metrics import slop_list_rate
from dftlab.slop_score_data import load_slop_score_outputs, published_slop_figures, slop_score_models
from dftlab.storage import read_json_with_hash, write_json_with_hash

VOCABULARY = ("the", "a", "of", "light", "sea", "tapestry", "testament", "whispered", "and", "river", "stone",
              "took", "deep", "breath", "voice", "barely", "whisper", "essay", "argues", "that")


class FakeModel:
    """generate(prompts, seed=..., max_new_tokens=..., **decoding): a text of random words, chosen by the seed."""

    def __init__(self):
        self.calls = []

    def __call__(self, prompts, *, seed, max_new_tokens, temperature, top_p, min_p=None):
        self.calls.append((tuple(prompts), seed, temperature, min_p))
        rng = np.random.default_rng(seed)
        return [{"prompt": p, "response": " ".join(rng.choice(VOCABULARY, size=80 + 10 * i)), "finished": False}
                for i, p in enumerate(prompts)]


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("DFTLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DFTLAB_RESULTS", str(tmp_path / "results"))
    return tmp_path


def test_the_subset_is_every_third_prompt_half_creative_half_essay():
    from dftlab.slop_score_data import slop_score_prompts

    indices = slop_samples.subset_prompt_indices()
    assert indices == list(range(0, 300, 3)) and len(indices) == 100
    categories = {p["prompt_index"]: p["category"] for p in slop_score_prompts()}
    assert sum(categories[i] == "creative" for i in indices) == 50
    assert sum(categories[i] == "essay" for i in indices) == 50
    assert slop_samples.subset_prompt_indices(quick=True) == [0, 3, 150, 153]
    config = slop_samples.slop_set_config()
    assert config["max_new_tokens"] == 256 and config["responses_per_prompt"] == 1
    assert config["decodings"][slop_samples.LEADERBOARD_DECODING] == {"temperature": 0.7, "top_p": 1.0, "min_p": 0.1}
    assert config["decodings"]["T=1"] == {"temperature": 1.0, "top_p": 1.0}


def test_the_prompts_source_matches_the_vendored_provenance():
    from dftlab.slop_score_data import SLOP_SCORE_DIR

    provenance = (SLOP_SCORE_DIR / "PROVENANCE.md").read_text()
    assert "289264ab2a0df1358ef81ced3c259610ea709514" in provenance and "`27f59e295193`" in provenance
    assert "289264ab2a0df1358ef81ced3c259610ea709514" in slop_samples.PROMPTS_SOURCE


def test_a_quick_build_is_seeded_per_batch_and_resumes_from_finished_batches(isolated):
    fake = FakeModel()
    path = slop_samples.build_slop_samples(quick=True, log=lambda line: None, generate=fake)
    assert path == slop_samples.default_slop_set_path(quick=True) and path.parent == isolated / "results"
    config = slop_samples.slop_set_config(quick=True)
    assert [call[1] for call in fake.calls] == [batch_seed(config["seed"], d, b) for d in range(2) for b in range(2)]
    assert [call[3] for call in fake.calls] == [0.1, 0.1, None, None]
    first = slop_samples.load_slop_samples(quick=True)
    assert [(r["decoding"], r["prompt_index"], r["category"]) for r in first["responses"]] == [
        (d, i, "creative" if i < 150 else "essay") for d in config["decodings"] for i in (0, 3, 150, 153)]
    assert first["provenance"]["model_sha256"] and "sampling_seconds" in first["provenance"]
    # an interrupted build: one batch is missing from the cache; only it is sampled again, with the same result
    runs = next((isolated / "cache").glob("slop-samples-runs-quick-*"))
    (runs / "1-0.json").unlink()
    again = FakeModel()
    slop_samples.build_slop_samples(quick=True, log=lambda line: None, generate=again)
    assert [call[1] for call in again.calls] == [batch_seed(config["seed"], 1, 0)]
    second = slop_samples.load_slop_samples(quick=True)
    assert second["responses"] == first["responses"] and second["config_hash"] == first["config_hash"]


def test_the_loader_refuses_a_missing_file_or_another_config(isolated):
    with pytest.raises(FileNotFoundError, match="python -m dftlab.study.slop_samples --quick"):
        slop_samples.load_slop_samples(quick=True)
    path = slop_samples.build_slop_samples(quick=True, log=lambda line: None, generate=FakeModel())
    payload = read_json_with_hash(path)
    payload["config"]["max_new_tokens"] = 999
    other = isolated / "other.json"
    write_json_with_hash(other, payload)
    with pytest.raises(ValueError, match=r"other settings.*`python -m dftlab.study.slop_samples --quick`"):
        slop_samples.load_slop_samples(other, quick=True)
    with pytest.raises(ValueError, match=r"`python -m dftlab.study.slop_samples`"):  # the quick file is not the full set
        slop_samples.load_slop_samples(path)
    wrapper = json.loads(path.read_text())
    wrapper["payload"]["responses"][0]["response"] = "edited"
    path.write_text(json.dumps(wrapper))
    with pytest.raises(Exception, match="sha256"):
        slop_samples.load_slop_samples(quick=True)


def test_rate_intervals_bracket_the_joined_rate_and_are_seeded():
    texts = [o["output"] for o in load_slop_score_outputs("qwen3-4b")]
    rates = slop_samples.rate_intervals(texts, bootstrap=300, seed=1)
    assert {k: rates[k] for k in slop_list_rate(texts)} == slop_list_rate(texts)
    for name in ("slop_words", "slop_trigrams"):
        assert rates[f"{name}_low"] < rates[f"{name}_per_1k"] < rates[f"{name}_high"]
    assert slop_samples.rate_intervals(texts, bootstrap=300, seed=1) == rates
    assert slop_samples.rate_intervals(texts, bootstrap=300, seed=2) != rates
    # per-text counts add up to the joined counts (the bootstrap recomputes the joined rate from them)
    counts = slop_samples._per_text_counts(texts).sum(0)
    assert tuple(counts) == (rates["words"], rates["slop_word_hits"], rates["slop_trigram_hits"])


@pytest.fixture(scope="module")
def leaderboard(tmp_path_factory):
    rng = np.random.default_rng(0)
    config = slop_samples.slop_set_config()
    outputs = [o["output"] for o in load_slop_score_outputs("mistral-nemo")]
    responses = [{"decoding": d, "prompt_index": i, "response": outputs[i] if rng.random() < 0.8 else "short",
                  "finished": False} for d in config["decodings"] for i in config["prompt_indices"]]
    return slop_samples.leaderboard_table({"config": config, "responses": responses}, bootstrap=300)


def test_the_leaderboard_table_has_every_row_and_its_intervals(leaderboard):
    table = leaderboard
    models = slop_score_models()
    smol = [f"SmolLM2-135M-Instruct, {d}" for d in slop_samples.DECODINGS]
    assert sorted(table.index) == sorted(models + smol + ["human-baseline"]) and len(table) == 11
    assert list(table["slop_words_per_1k"]) == sorted(table["slop_words_per_1k"])
    with_texts = table.drop(index="human-baseline")
    for name in ("slop_words", "slop_trigrams"):
        assert (with_texts[f"{name}_low"] <= with_texts[f"{name}_per_1k"]).all()
        assert (with_texts[f"{name}_per_1k"] <= with_texts[f"{name}_high"]).all()
        assert (with_texts[f"{name}_low"] < with_texts[f"{name}_high"]).all()
    human = table.loc["human-baseline"]
    assert np.isnan(human["slop_words_low"]) and np.isnan(human["slop_trigrams_high"])
    assert human["slop_words_per_1k"] == pytest.approx(6.8986, abs=1e-4) and human["words"] == 17_244_010
    published = published_slop_figures()
    for model in models:  # the vendored models' rates are the published ones
        expected = published.at[model, "slop_words_per_1k"]
        assert table.at[model, "slop_words_per_1k"] == pytest.approx(expected, rel=1e-12)
        assert table.at[model, "published_trigrams_per_1k"] == published.at[model, "slop_trigrams_per_1k"]
    assert (table.loc[smol, "source"] == "dftlab sample").all() and table.loc[smol, "prompts"].eq(100).all()
    assert table.loc[smol, "published_words_per_1k"].isna().all()


@pytest.mark.slow
def test_the_real_quick_build_is_deterministic_from_its_batch_seeds(tmp_path, monkeypatch):
    """The real model, --quick (4 prompts x 2 decodings of 48 tokens, about a minute on a quiet CPU). It uses the
    user cache, where the model is already converted: a batch sampled again gives the same responses."""
    from dftlab.models import cache_dir

    monkeypatch.setenv("DFTLAB_RESULTS", str(tmp_path))
    path = slop_samples.build_slop_samples(quick=True, log=lambda line: None)
    first = slop_samples.load_slop_samples(path, quick=True)
    config = slop_samples.slop_set_config(quick=True)
    batch = cache_dir() / f"slop-samples-runs-quick-{first['config_hash']}" / "0-1.json"
    batch.unlink()
    slop_samples.build_slop_samples(quick=True, log=lambda line: None)
    assert batch.exists() and slop_samples.load_slop_samples(quick=True)["responses"] == first["responses"]
    assert all(r["response"] for r in first["responses"]) and len(first["responses"]) == 4 * len(config["decodings"])
