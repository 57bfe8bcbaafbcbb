"""Test-wide set-up: offline by construction, quiet libraries, seeded; the website built once per session."""
import ipaddress
import math
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

os.environ["HF_HUB_OFFLINE"] = "1"  # before anything imports huggingface_hub, which reads it once

from dftlab.course.install import NOTEBOOK_ENV  # noqa: E402

import torch  # noqa: E402

# nbval's kernels and the tests' subprocesses inherit this environment (PYTHONHASHSEED included, and one torch thread,
# as every notebook was executed); the tests in this process keep every core.
_threads = torch.get_num_threads()
os.environ.update(NOTEBOOK_ENV)
torch.set_num_threads(_threads)

_original_connect = socket.socket.connect


def _loopback_only_connect(self, address):
    """Fail any network connection that leaves this machine (tests must never need the internet)."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            is_local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            is_local = host == "localhost"
        if not is_local:
            raise ConnectionRefusedError(f"tests are offline: blocked a connection to {address!r}")
    return _original_connect(self, address)


socket.socket.connect = _loopback_only_connect


# --- The website, built once per test session (tests/system/test_book.py and tests/system/test_browser.py use it) ---
ROOT = Path(__file__).resolve().parents[1]
TEST_SITE = ROOT / "_build" / "test-site"


@pytest.fixture(scope="session")
def toc_pages() -> list[str]:
    """The pages of _toc.yml in reading order, as paths without suffix (e.g. "chapters/01_token_distributions")."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            pages.append(chapter["file"])
            pages += [section["file"] for section in chapter.get("sections", [])]
    return pages


@pytest.fixture(scope="session")
def built_site() -> Path:
    """The HTML folder of the website, built warning-free from the notebooks' stored outputs.

    It renders the outputs as they are: nbval (run by the same `make test`) has already executed every
    notebook and compared its outputs, so executing them a second time would only double the time.
    `make book` executes them, through the execution cache.
    """
    shutil.rmtree(TEST_SITE, ignore_errors=True)  # a fresh build: an incremental one stays silent about old warnings
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "site.py"), "build", "--no-execute",
                             "--output", str(TEST_SITE)], capture_output=True, text=True, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, "book build failed:\n" + log[-6000:]
    assert not re.search(r"WARNING|ERROR", log), "the build printed warnings:\n" + log[-6000:]
    return TEST_SITE / "_build" / "html"


@pytest.fixture(scope="session")
def site_pages(built_site) -> list[Path]:
    """Every HTML page of the built site; asset folders (_static, _widgets, ...) hold templates, not pages."""
    return sorted(path for path in built_site.rglob("*.html") if not path.relative_to(built_site).parts[0].startswith("_"))


# --- The bad-input probe table (tests/system/test_bad_input.py), printed at the end of the run ---
_PROBE_ROWS = pytest.StashKey[list]()


@pytest.fixture
def probe_table(request) -> list:
    """The rows of the bad-input probe table: each probe appends {probe, expected, got, verdict}."""
    return request.config.stash.setdefault(_PROBE_ROWS, [])


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    rows = config.stash.get(_PROBE_ROWS, [])
    if not rows:
        return
    failed = sum(row["verdict"] != "ok" for row in rows)
    terminalreporter.section(f"bad-input probes: {len(rows) - failed} ok, {failed} failed")
    terminalreporter.line("| probe | expected | got | verdict |")
    terminalreporter.line("|---|---|---|---|")
    for row in rows:
        got = row["got"].replace("|", "\\|")
        terminalreporter.line(f"| {row['probe']} | {row['expected']} | {got} | {row['verdict']} |")


# ---------------------------------------------------------------------------------------------
# A tiny byte-level BPE tokenizer for fast unit tests (tests/test_data.py, tests/test_train.py).
# ---------------------------------------------------------------------------------------------

TINY_SENTENCES = ["the cat sat on the mat.", "the dog ate the bone.", "a bird sang in the tree.",
                  "question: what colour is the sky? answer: blue.", "once upon a time there was a fox."]


def _tiny_tokenizer(eos: bool = True):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(TINY_SENTENCES, trainer)
    if eos:
        return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>")
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer)


@pytest.fixture(scope="session")
def make_tiny_tokenizer():
    """A factory: make_tiny_tokenizer() has <|endoftext|> as EOS; make_tiny_tokenizer(eos=False) has no EOS."""
    return _tiny_tokenizer


# ---------------------------------------------------------------------------------------------
# The one tiny GPT-2 of the unit tests (1 layer, 2 heads, random weights), for any tokenizer.
# ---------------------------------------------------------------------------------------------

def _tiny_gpt2(vocab_size: int, *, n_positions: int = 64, n_embd: int = 32, seed: int | None = 0,
               dropout: bool = True, eos_token_id: int | None = None):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if seed is not None:
        torch.manual_seed(seed)
    extra = {} if dropout else {"resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}
    if eos_token_id is not None:
        extra.update(eos_token_id=eos_token_id, bos_token_id=eos_token_id)
    return GPT2LMHeadModel(GPT2Config(vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=1,
                                      n_head=2, **extra))


@pytest.fixture(scope="session")
def make_tiny_gpt2():
    """A factory: make_tiny_gpt2(vocab_size, n_positions=64, n_embd=32, seed=0, dropout=True, eos_token_id=None)."""
    return _tiny_gpt2


# ---------------------------------------------------------------------------------------------
# The fast tier, `make test-fast` (pytest -m "not slow"): the unit tests. Each system test says it is slow itself,
# with `pytest.mark.slow` on the test or `pytestmark = pytest.mark.slow` on its module, so a renamed test keeps its
# tier. Only the notebooks' cells (nbval items, which have no module to mark) are marked here, by their type.
# ---------------------------------------------------------------------------------------------

def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a system test, left out of the fast tier (make test-fast)")


def pytest_collection_modifyitems(config, items):
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: no notebook items either
        return
    for item in items:
        if isinstance(item, IPyNbCell):
            item.add_marker(pytest.mark.slow)


# ---------------------------------------------------------------------------------------------
# A test run leaves the checkout as it found it: no new untracked file or folder (a build/ of a wheel build, a
# scale-runs/ of a training run...). Outputs go to a temporary folder or under an ignored one (_build/).
# ---------------------------------------------------------------------------------------------

def _untracked_paths() -> set[str] | None:
    """The checkout's untracked, not ignored paths (a new folder as one entry); None outside a git checkout."""
    try:
        result = subprocess.run(["git", "ls-files", "--others", "--exclude-standard", "--directory"], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return set(result.stdout.splitlines()) if result.returncode == 0 else None


_UNTRACKED_BEFORE = pytest.StashKey[set]()


def pytest_sessionstart(session):
    before = _untracked_paths()
    if before is not None:
        session.config.stash[_UNTRACKED_BEFORE] = before


def pytest_sessionfinish(session, exitstatus):
    before = session.config.stash.get(_UNTRACKED_BEFORE, None)
    after = _untracked_paths() if before is not None else None
    new = sorted(after - before) if after is not None else []
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"the test run left new untracked files in the checkout (write them to a temporary "
                                f"folder instead): {', '.join(new)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# ---------------------------------------------------------------------------------------------
# Figures: every test closes the matplotlib figures it opened (tests/test_plots.py, tests/test_widgets.py, ...).
# ---------------------------------------------------------------------------------------------

@pytest.fixture(autouse=True)
def close_figures():
    """Close every figure a test drew; a test that never imported pyplot has none to close."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


# ---------------------------------------------------------------------------------------------
# The shipped study, loaded once per test module (tests/test_plots.py, tests/test_widgets.py, tests/test_study_*.py).
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results():
    """The shipped tiny study's results table."""
    from dftlab import study

    return study.load_results()


@pytest.fixture(scope="module")
def full():
    """The shipped tiny study's results table and its judgement."""
    from dftlab import study

    results = study.load_results()
    return results, study.judge(results)


@pytest.fixture(scope="module")
def summary():
    """The shipped tiny study's summary table (one row per objective and decoding, with intervals)."""
    from dftlab import study

    return study.summary_table(study.load_results())


# ---------------------------------------------------------------------------------------------
# Hand-made results tables for the statistics, the rules and the claims (tests/test_study_*.py).
# ---------------------------------------------------------------------------------------------

STRONG, WEAK = "tiny-gpt2", "tiny-gpt2-english"


def fake_results(values: dict, seeds=(0, 1, 2), decodings=("T=1", "T=0.7,top-p=0.9"), base_model=STRONG,
                 prior="strong", steps=200, names=None, zipf_exponent=1.1):
    """A results table from {objective: {metric: [value per seed]}}, every fine-tuning from `base_model` at `steps`.

    "truth" gets one "data" row per seed (no base model, steps 0), "base" is the base model (steps 0);
    `names` maps a label to its objective_name (default: the label itself).
    """
    import pandas as pd

    names = names or {}
    rows = []
    for objective, metrics in values.items():
        kind = objective if objective in ("truth", "base") else "finetuned"
        for decoding in (["data"] if kind == "truth" else decodings):
            for index, seed in enumerate(seeds):
                row = {"run_id": f"{objective}-{seed}", "kind": kind,
                       "base_model": "" if kind == "truth" else base_model, "prior": "" if kind == "truth" else prior,
                       "steps": steps if kind == "finetuned" else 0, "zipf_exponent": zipf_exponent,
                       "objective": objective, "objective_name": names.get(objective, objective if kind == "finetuned"
                                                                             else kind),
                       "decoding": decoding, "seed": seed}
                row.update({metric: per_seed[index] for metric, per_seed in metrics.items()})
                rows.append(row)
    return pd.DataFrame(rows)


def _table(a, b, metric="m", seeds=(0, 1, 2, 3, 4)):
    """A results table of two objectives "a" and "b" and the truth (all 0.0), one `metric` value per seed."""
    import pandas as pd

    rows = []
    for objective, values in (("a", a), ("b", b), ("truth", [0.0] * len(seeds))):
        for seed, value in zip(seeds, values):
            rows.append({"run_id": f"{objective}-{seed}", "kind": "truth" if objective == "truth" else "finetuned",
                         "base_model": "" if objective == "truth" else "tiny-gpt2",
                         "prior": "" if objective == "truth" else "strong",
                         "steps": 0 if objective == "truth" else 200, "objective": objective,
                         "decoding": "data" if objective == "truth" else "T=1", "seed": seed, metric: value,
                         "samples": 160})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------
# Tiny studies on two random GPT-2s (tests/test_study_run.py, tests/test_study_results.py, tests/test_study_cache.py,
# tests/test_study_cli.py, tests/test_study_measurement.py).
# ---------------------------------------------------------------------------------------------

def _tiny_model(folder, seed, make_tiny_gpt2):
    from dftlab.study.pretrain import train_tokenizer
    from dftlab.tinytales import TinyTales

    stories = TinyTales(0, 0.3).sample(300, seed=5)
    tokenizer = train_tokenizer([s["prompt"] + s["completion"] for s in stories], vocab_size=400)
    model = make_tiny_gpt2(len(tokenizer), n_positions=256, seed=seed, eos_token_id=tokenizer.eos_token_id)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def tiny_model_folder(tmp_path_factory, make_tiny_gpt2):
    """The 'strong prior' of the tiny studies (a random GPT-2: the names are what matter here). Its folder is always
    named strong0, whichever test module asks first: run ids and tables carry the folder's name."""
    return _tiny_model(tmp_path_factory.mktemp("prior") / "strong0", seed=0, make_tiny_gpt2=make_tiny_gpt2)


@pytest.fixture(scope="module")
def weak_model_folder(tmp_path_factory, make_tiny_gpt2):
    """The 'weak prior': the same architecture and tokenizer, other initial weights; its folder is always weak0."""
    return _tiny_model(tmp_path_factory.mktemp("prior") / "weak0", seed=1, make_tiny_gpt2=make_tiny_gpt2)


def tiny_config(folder, **changes):
    """A StudyConfig of two seconds' work on the model in `folder`; `changes` override any setting."""
    from dftlab.study import ObjectiveSpec, StudyConfig

    settings = dict(name="test", model=folder, weak_model=None, seeds=(0,), headline_seeds=(0,), budget_sweep=(),
                    train_size=24, valid_size=6, test_size=10, steps=2, batch_size=4, warmup_steps=1, eval_every=1,
                    max_length=256, num_prompts=2, samples_per_prompt=3, max_new_tokens=12, embedding="ngram",
                    mmd_texts=6, mmd_permutations=20, self_bleu_texts=6,
                    objectives=(ObjectiveSpec("nll", "nll"), ObjectiveSpec("dft", "dft")))
    settings.update(changes)
    return StudyConfig(**settings)


# ---------------------------------------------------------------------------------------------
# A word-level tokenizer, a uniform model and a three-choice grammar whose numbers are known by hand
# (tests/test_metrics_text.py, tests/test_metrics_model_stats.py, tests/test_metrics_exact.py).
# ---------------------------------------------------------------------------------------------

WORDS = ["<unk>", "<eos>", "once", "there", "was", "a", "cat", "dog", "fox", "ran", "slept", "home", "."]


def _word_tokenizer():
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    tokenizer = Tokenizer(WordLevel({word: i for i, word in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = Whitespace()
    return tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    """A word-level tokenizer of WORDS (one id a word), with <eos> as its end token."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=_word_tokenizer(), unk_token="<unk>", eos_token="<eos>")


class UniformLM(torch.nn.Module):
    """Logits all zero: every next token has probability 1/V, so every number is known by hand."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.config = SimpleNamespace(n_positions=32)

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=torch.zeros(*input_ids.shape, self.vocab_size) + 0 * self.anchor)


class FakeTales:
    """A three-choice grammar: '<hero> <ending>' plus an optional ' home' (present with probability 0.4)."""

    PROMPT = "once there was a"
    CHOICES = {"hero": {"cat": 0.5, "dog": 0.3, "fox": 0.2}, "ending": {"ran": 0.75, "slept": 0.25},
               "place": {"home": 0.4}}

    def parse(self, prompt, completion):
        words = completion.split()
        if prompt != self.PROMPT or len(words) not in (2, 3) or words[0] not in self.CHOICES["hero"] \
                or words[1] not in self.CHOICES["ending"] or (len(words) == 3 and words[2] != "home"):
            return None
        return {"hero": words[0], "ending": words[1], "place": words[2] if len(words) == 3 else None}

    def log_prob(self, prompt, completion):
        choices = self.parse(prompt, completion)
        if choices is None:
            return -math.inf
        place = 0.4 if choices["place"] else 0.6
        return math.log(self.CHOICES["hero"][choices["hero"]] * self.CHOICES["ending"][choices["ending"]] * place)

    def choice_distribution(self, name):
        return dict(self.CHOICES[name])

    def entropy(self):
        def h(probs):
            return -sum(p * math.log(p) for p in probs)
        return h([0.5, 0.3, 0.2]) + h([0.75, 0.25]) + h([0.4, 0.6])


def story(completion: str, prompt: str = FakeTales.PROMPT) -> dict:
    return {"prompt": prompt, "completion": completion}


# ---------------------------------------------------------------------------------------------
# Two clouds of points for the two-sample pictures (tests/test_metrics_two_sample.py, tests/test_plots.py).
# ---------------------------------------------------------------------------------------------

def _clouds(shift=3.0, seed=0):
    """A reference cloud of 40 points in 6 dimensions and a cloud of 30 shifted by `shift` along the third axis."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {"reference": rng.normal(size=(40, 6)), "shifted": rng.normal(size=(30, 6)) + shift * np.eye(6)[2]}


# ---------------------------------------------------------------------------------------------
# The real chat model, converted once per module (tests/test_models.py, tests/test_chat_samples.py).
# ---------------------------------------------------------------------------------------------

NAME = "smollm2-135m-instruct"


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """SmolLM2 converted from its GGUF file into a fresh cache (the first, converting load: ~40 s), once per session:
    the tests that use it only read the model."""
    from dftlab import models

    cache = tmp_path_factory.mktemp("dftlab-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DFTLAB_CACHE", str(cache))
        model, tokenizer = models.load_model(NAME)
    return cache, model, tokenizer


# ---------------------------------------------------------------------------------------------
# slop-score's word lists (tests/test_slop_score.py, tests/test_metrics_slop_score.py).
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def lists():
    """slop-score's vendored word, bigram and trigram lists."""
    from dftlab.slop_score_data import slop_word_lists

    return slop_word_lists()
