"""dftlab.slop_score_data: the vendored slop-score data.

The reproduction tests measure every vendored model's outputs and compare with slop-score's published leaderboard
figures; the file tests work on a copy of the vendored folder."""

from __future__ import annotations

import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dftlab import slop_score_data
from dftlab.metrics import slop_list_rate, slop_score_tokens
from dftlab.slop_score_data import (load_slop_score_outputs, published_slop_figures, published_slop_hits, slop_score_models,
                               slop_score_prompts, slop_score_run_info)
from dftlab.storage import CorruptFileError, verify_checksums


ROOT = Path(__file__).resolve().parents[1]
ASSETS = slop_score_data.SLOP_SCORE_DIR
MIRROR = Path(os.environ.get("SLOP_SCORE_SOURCE", "/work/.mirror/sam-paech+slop-score/repo"))
# The published figures are reproduced exactly (same hits, same word counts); allow only float rounding.
RELATIVE_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def published():
    return published_slop_figures()


def test_the_vendored_models_span_six_families_and_include_the_antislop_pair(published):
    models = slop_score_models()
    assert {"gemma-3-27b-it", "gemma-3-27b-it-antislop"} <= set(models)
    families = {re.match(r"[a-z]+", name).group(0) for name in models}
    assert len(families) >= 6, families
    assert set(published.index) == set(models) | {"human-baseline"}


def test_every_vendored_file_matches_sha256sums_and_every_file_is_listed():
    verify_checksums(ASSETS, "restore src/dftlab/assets/slop_score")
    listed = {line.split("  ", 1)[1] for line in (ASSETS / "SHA256SUMS").read_text().splitlines()}
    present = {p.relative_to(ASSETS).as_posix() for p in ASSETS.rglob("*") if p.is_file()} - {"SHA256SUMS"}
    assert listed == present


def test_provenance_names_the_commit_the_licence_and_the_true_folder_size():
    provenance = (ASSETS / "PROVENANCE.md").read_text()
    licence = (ASSETS / "LICENSE").read_text()
    assert re.search(r"commit `[0-9a-f]{40}`", provenance) and "https://github.com/sam-paech/slop-score" in provenance
    assert "MIT License" in provenance and "Copyright (c) 2025 Sam Paech" in licence
    assert "Permission is hereby granted, free of charge" in licence
    stated = int(re.search(r"whole folder .*? is\s+([\d,]+) bytes", provenance, re.S).group(1).replace(",", ""))
    assert stated == sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())


def test_verbatim_files_decompress_to_the_upstream_blobs_named_in_provenance():
    rows = re.findall(r"^\| `([^`]+)` \| `([^`]+)` \| `([0-9a-f]{12})` \| all \d+ entries, verbatim",
                      (ASSETS / "PROVENANCE.md").read_text(), re.M)
    assert {name for name, _, _ in rows} == {"slop_list.json.xz", "slop_list_bigrams.json.xz",
                                             "slop_list_trigrams.json.xz", "prompts.json.xz"}
    for name, _, blob in rows:
        data = lzma.decompress((ASSETS / name).read_bytes())
        assert hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith(blob), name


def test_prompts_and_outputs_line_up():
    prompts = slop_score_prompts()
    assert len(prompts) == 300 and Counter(p["category"] for p in prompts) == {"creative": 150, "essay": 150}
    mentions_an_essay = [("essay" in p["prompt"].lower() or "summar" in p["prompt"].lower()) for p in prompts]
    assert not any(mentions_an_essay[:150]) and all(mentions_an_essay[150:])
    for model in ["qwen3-4b", "claude-sonnet-4-5"]:
        outputs = load_slop_score_outputs(model)
        assert sorted(o["prompt_index"] for o in outputs) == list(range(300))
        assert all(o["prompt"] == prompts[o["prompt_index"]]["prompt"] for o in outputs)
        assert all(o["output"] == "" for o in outputs if o["failed"])
    claude = load_slop_score_outputs("claude-sonnet-4-5")
    assert {o["category"] for o in claude if o["failed"]} == {"essay"}  # its published figures are creative only
    assert slop_score_run_info("qwen3-4b")["params"]["temperature"] == 0.7


def test_the_published_columns_are_the_leaderboards_keys(published):
    raw = {row["name"]: row["metrics"] for row in slop_score_data._read_json("leaderboard.json.xz")["rows"]}
    for name, metrics in raw.items():
        assert published.loc[name, "slop_words_per_1k"] == metrics["slop_list_matches_per_1k_words"]
        assert published.loc[name, "slop_trigrams_per_1k"] == metrics["slop_trigram_matches_per_1k_words"]
    assert published.loc["human-baseline", "slop_words_per_1k"] == pytest.approx(6.8986, abs=1e-4)
    assert list(published["slop_words_per_1k"]) == sorted(published["slop_words_per_1k"])


@pytest.mark.parametrize("model", slop_score_models())
def test_slop_list_rate_reproduces_the_published_figures(model, published):
    row = published.loc[model]
    ours = slop_list_rate([o["output"] for o in load_slop_score_outputs(model)])
    assert ours["texts_used"] == row["samples"] and ours["words"] == row["words"]
    for key in ["slop_words_per_1k", "slop_trigrams_per_1k"]:
        assert ours[key] == pytest.approx(row[key], rel=RELATIVE_TOLERANCE, abs=0), key


@pytest.mark.parametrize("model", ["gemma-3-27b-it", "gemma-3-27b-it-antislop"])
def test_the_hits_word_by_word_are_the_published_ones(model, lists):
    texts = [o["output"] for o in load_slop_score_outputs(model) if len(o["output"]) > 300]
    tokens = slop_score_tokens("\n\n".join(texts))
    words = {entry for entry in lists["words"] if "'" not in entry}  # entries with an apostrophe were misread
    trigrams = set(lists["trigrams"])
    word_counts = Counter(t for t in tokens if t in words)
    trigram_counts = Counter(" ".join(w) for w in zip(tokens, tokens[1:], tokens[2:]) if " ".join(w) in trigrams)
    hits = published_slop_hits(model)
    assert len(hits["words"]) == 50 and hits["trigrams"]
    assert all(word_counts[word] == count for word, count in hits["words"])
    assert all(trigram_counts[trigram] == count for trigram, count in hits["trigrams"])


def test_the_corrected_list_reading_differs_slightly(published):
    outputs = [o["output"] for o in load_slop_score_outputs("llama-4-maverick")]
    as_published, corrected = slop_list_rate(outputs), slop_list_rate(outputs, corrected_lists=True)
    assert as_published["slop_trigrams_per_1k"] == published.loc["llama-4-maverick", "slop_trigrams_per_1k"]
    # "today's fast paced" counts only when entries keep their apostrophe
    assert corrected["slop_trigram_hits"] > as_published["slop_trigram_hits"]
    assert corrected["slop_words_per_1k"] == pytest.approx(as_published["slop_words_per_1k"], rel=0.01)


def test_unknown_models_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="gemma-3-27b-it-antislop"):
        load_slop_score_outputs("gpt-4")
    with pytest.raises(ValueError, match="texts are not published"):
        load_slop_score_outputs("human-baseline")
    with pytest.raises(ValueError, match="human-baseline"):
        published_slop_hits("nobody")


@pytest.fixture
def asset_copy(tmp_path, monkeypatch):
    copy = tmp_path / "slop_score"
    shutil.copytree(ASSETS, copy)
    monkeypatch.setattr(slop_score_data, "SLOP_SCORE_DIR", copy)
    return copy


def _assert_restore_message(error, name):
    message = str(error.value)
    assert name in message and "python tools/vendor_slop_score.py" in message
    assert "git checkout -- src/dftlab/assets/slop_score" in message and "reinstall" in message


def test_a_tampered_list_is_refused_by_the_metric(asset_copy):
    assert slop_list_rate(["a tapestry"], drop_short=False)["slop_word_hits"] == 1  # the copy works
    path = asset_copy / "slop_list.json.xz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptFileError, match="altered or truncated") as error:
        slop_list_rate(["a tapestry"], drop_short=False)
    _assert_restore_message(error, "slop_list.json.xz")


def test_a_missing_output_file_or_checksum_file_is_named(asset_copy):
    (asset_copy / "outputs" / "qwen3-4b.json.xz").unlink()
    with pytest.raises(CorruptFileError, match="is missing") as error:
        load_slop_score_outputs("qwen3-4b")
    _assert_restore_message(error, "outputs/qwen3-4b.json.xz")
    (asset_copy / "SHA256SUMS").unlink()
    with pytest.raises(CorruptFileError, match="SHA256SUMS is missing") as error:
        published_slop_figures()
    _assert_restore_message(error, "SHA256SUMS")


def test_a_file_left_out_of_sha256sums_is_refused(asset_copy):
    sums = asset_copy / "SHA256SUMS"
    sums.write_text("".join(line + "\n" for line in sums.read_text().splitlines() if "prompts" not in line))
    with pytest.raises(CorruptFileError, match="prompts.json.xz is not listed"):
        slop_score_prompts()


@pytest.mark.skipif(not MIRROR.exists(), reason=f"no slop-score copy at {MIRROR} (set SLOP_SCORE_SOURCE)")
def test_the_vendor_script_regenerates_identical_files(tmp_path):
    out = tmp_path / "slop_score"
    subprocess.run([sys.executable, str(ROOT / "tools" / "vendor_slop_score.py"), str(MIRROR), "--out", str(out),
                    "--models", "claude-sonnet-4-5"], check=True, capture_output=True, timeout=120)
    for name in ["LICENSE", "slop_list.json.xz", "slop_list_trigrams.json.xz", "slop_list_bigrams.json.xz",
                 "prompts.json.xz", "outputs/claude-sonnet-4-5.json.xz"]:
        assert (out / name).read_bytes() == (ASSETS / name).read_bytes(), name
    verify_checksums(out, "rerun the script")
    assert not list(tmp_path.glob(".slop_score*")), "the staging folder was left behind"


@pytest.mark.parametrize("model", ["gemma-3-27b-it", "gemma-3-27b-it-antislop"])
def test_per_text_hits_add_up_to_the_published_word_rate(model, published):
    from dftlab.metrics import slop_list_word_hits

    texts = [o["output"] for o in load_slop_score_outputs(model) if len(o["output"]) > 300]
    hits, words = (sum(column) for column in zip(*slop_list_word_hits(texts)))
    assert hits / words * 1000 == pytest.approx(published.loc[model, "slop_words_per_1k"], rel=RELATIVE_TOLERANCE)
    assert slop_list_word_hits(["Tapestry, a tapestry!"]) == [(2, 3)]
