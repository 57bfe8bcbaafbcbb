"""Test-wide set-up: offline by construction, quiet libraries, seeded; the website built once per session."""
import ipaddress
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

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


# --- The website, built once per test session (tests/test_book.py and tests/test_browser.py both use it) ---
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


# --- The bad-input probe table (tests/test_bad_input.py), printed at the end of the run ---
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
