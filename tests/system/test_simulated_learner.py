"""A simulated learner works through the exercise notebooks at a real Jupyter kernel.

The learner does what people do: runs cells out of order, runs a cell twice, restarts the kernel half-way
and reruns only some cells, pastes the solutions in, and pastes typical wrong answers in. Every `check(...)`
must answer with feedback (a tick, a cross naming the mistake, or "not attempted"), never a traceback.
The only tracebacks allowed are Python's own NameErrors for a name the learner has not defined yet.

Cells are picked by their source, not their position, so the test survives edits to the notebooks.
Notebooks 01, 02 and 04 are used: none of them fine-tunes a model, so the whole file runs in well under 90 s.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from jupyter_client import KernelManager

from dftlab.course.install import NOTEBOOK_ENV

pytestmark = pytest.mark.slow  # drives notebook kernels like a learner: `make test` only, not the fast tier

ROOT = Path(__file__).resolve().parents[2]
CELL_TIMEOUT_SECONDS = 60


def code_cells(path: Path) -> list[str]:
    return [cell.source for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"
            and "google.colab" not in cell.source]


def cell_with(cells: list[str], text: str) -> str:
    """The one code cell whose source contains `text`."""
    matches = [source for source in cells if text in source]
    assert len(matches) == 1, f"expected one cell containing {text!r}, found {len(matches)}"
    return matches[0]


def check_ids(source: str) -> list[str]:
    return re.findall(r'check\("([^"]+)"', source)


@dataclass
class Ran:
    """What one cell showed: its text outputs (stdout, results, tracebacks) and the error name, if any."""
    text: str
    error: str | None


class Learner:
    """A learner at a live kernel started in exercises/, offline, as a course participant would have it."""

    def __init__(self):
        env = {**os.environ, **NOTEBOOK_ENV}
        env.pop("PYTEST_CURRENT_TEST", None)
        self.manager = KernelManager(kernel_name="python3")
        self.manager.start_kernel(cwd=str(ROOT / "exercises"), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=CELL_TIMEOUT_SECONDS)

    def run(self, source: str) -> Ran:
        texts, errors = [], []

        def collect(message):
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                texts.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                texts.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                errors.append(content["ename"])
                texts.append("\n".join(content["traceback"]))

        self.client.execute_interactive(source, output_hook=collect, timeout=CELL_TIMEOUT_SECONDS, store_history=False)
        return Ran("".join(texts), errors[0] if errors else None)

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self.client.wait_for_ready(timeout=CELL_TIMEOUT_SECONDS)

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


@pytest.fixture
def learner():
    learner = Learner()
    yield learner
    learner.close()


def assert_feedback(ran: Ran, exercise_id: str, mark: str, *words: str) -> None:
    """The cell showed `check`'s one-line feedback with `mark` (✔ passed, ✘ failed, ○ not attempted) and no traceback."""
    assert ran.error is None, f"{exercise_id}: the cell crashed with {ran.error}:\n{ran.text[-2000:]}"
    assert "Traceback" not in ran.text, ran.text
    assert f"{mark} {exercise_id}:" in ran.text, f"{exercise_id}: expected {mark!r} feedback, got:\n{ran.text}"
    for word in words:
        assert word in ran.text, f"{exercise_id}: the feedback does not mention {word!r}:\n{ran.text}"


def paste_every_solution_and_see_every_check_pass(learner: Learner, name: str) -> None:
    """Run the exercise notebook top to bottom with each answer cell replaced by the solution's cell."""
    exercise, solution = code_cells(ROOT / "exercises" / name), code_cells(ROOT / "solutions" / name)
    assert len(exercise) == len(solution)
    checked = []
    for exercise_source, solution_source in zip(exercise, solution):
        ran = learner.run(solution_source)
        assert ran.error is None, f"{name}: a solution cell crashed:\n{ran.text[-2000:]}"
        for exercise_id in check_ids(solution_source):
            assert_feedback(ran, exercise_id, "✔")
            checked.append(exercise_id)
    every_id = [exercise_id for source in exercise for exercise_id in check_ids(source)]
    assert checked == every_id and every_id, f"{name}: checked {checked}, the notebook has {every_id}"


# ---------------------------------------------------------------------------------------------
# Chapter 1: the whole routine, restart included.
# ---------------------------------------------------------------------------------------------

FUNCTION_IDS_01 = ["ch01.softmax_with_temperature", "ch01.entropy", "ch01.top_k_filter"]

WRONG_ANSWERS_01 = [  # (exercise id, a typical wrong answer, words the feedback must contain)
    ("ch01.entropy", "def entropy(probs):\n    return -(probs * torch.log2(probs)).sum(dim=-1)", ("log base 2",)),
    ("ch01.entropy", "def entropy(probs):\n    return -torch.special.xlogy(probs, probs).sum()", ("last axis",)),
    ("ch01.softmax_with_temperature",
     "def softmax_with_temperature(logits, temperature):\n    return torch.softmax(logits * temperature, dim=-1)",
     ("multiplied the logits by the temperature",)),
    ("ch01.top_k_filter", "def top_k_filter(logits, k):\n    return logits.topk(k).values.no_such_attribute",
     ("raised AttributeError",)),
    ("ch01.top_k_filter", "def top_k_filter(logits, k):\n    while True:\n        pass", ("took longer than",)),
]


def test_a_learner_in_notebook_01_gets_feedback_out_of_order_twice_and_after_a_restart(learner):
    exercise = code_cells(ROOT / "exercises" / "01_token_distributions.ipynb")
    solution = code_cells(ROOT / "solutions" / "01_token_distributions.ipynb")
    setup = cell_with(exercise, "from dftlab.course.checks import check")
    check_cell = {exercise_id: cell_with(exercise, f'check("{exercise_id}"') for exercise_id in FUNCTION_IDS_01}
    function_name = {exercise_id: exercise_id.split(".")[1] for exercise_id in FUNCTION_IDS_01}
    stub = {exercise_id: cell_with(exercise, f"def {function_name[exercise_id]}(") for exercise_id in FUNCTION_IDS_01}
    answer = {exercise_id: cell_with(solution, f"def {function_name[exercise_id]}(") for exercise_id in FUNCTION_IDS_01}
    prediction_stub = cell_with(exercise, "prediction = ")
    prediction_answer = cell_with(solution, "prediction = ")
    experiment = cell_with(exercise, 'check("ch01.zipf_top10_mass"')

    # Out of order, before the set-up cell: Python's own NameError for `check`, and the kernel lives on.
    assert learner.run(check_cell["ch01.entropy"]).error == "NameError"
    assert learner.run(setup).error is None

    # The notebook as handed out: every check says "not attempted", nothing crashes.
    for exercise_id in FUNCTION_IDS_01:
        assert learner.run(stub[exercise_id]).error is None
        assert_feedback(learner.run(check_cell[exercise_id]), exercise_id, "○", "not attempted")
    assert learner.run(prediction_stub).error is None
    assert_feedback(learner.run(experiment), "ch01.zipf_top10_mass", "○")

    # Typical wrong answers get feedback that names the mistake.
    for exercise_id, wrong_answer, words in WRONG_ANSWERS_01:
        assert learner.run(wrong_answer).error is None
        assert_feedback(learner.run(check_cell[exercise_id]), exercise_id, "✘", *words)
    for wrong_prediction, words in (('prediction = "thirty percent"', ("should be a number",)),
                                    ("prediction = 0.001", ("uniform answer",))):
        assert learner.run(wrong_prediction).error is None
        assert_feedback(learner.run(experiment), "ch01.zipf_top10_mass", "✘", *words)

    # The solutions pasted in, checked in the reverse order of the notebook.
    for exercise_id in reversed(FUNCTION_IDS_01):
        assert learner.run(answer[exercise_id]).error is None
        assert_feedback(learner.run(check_cell[exercise_id]), exercise_id, "✔", "correct")

    # The same cell run twice gives the same feedback.
    first, second = learner.run(check_cell["ch01.entropy"]), learner.run(check_cell["ch01.entropy"])
    assert first == second

    # A restart half-way loses every name; rerunning the set-up and the answer cells brings the checks back.
    learner.restart()
    assert learner.run(check_cell["ch01.entropy"]).error == "NameError"
    assert learner.run(setup).error is None
    assert learner.run(answer["ch01.entropy"]).error is None
    assert learner.run(prediction_answer).error is None
    assert_feedback(learner.run(check_cell["ch01.entropy"]), "ch01.entropy", "✔")
    assert_feedback(learner.run(experiment), "ch01.zipf_top10_mass", "✔", "well predicted")

    # And, in a fresh kernel, the whole notebook with every solution pasted in passes every check.
    learner.restart()
    paste_every_solution_and_see_every_check_pass(learner, "01_token_distributions.ipynb")


# ---------------------------------------------------------------------------------------------
# Chapters 2 and 4: solutions pass, the chapter's typical mistakes get named.
# ---------------------------------------------------------------------------------------------

SUMMED_NLL = """def nll_loss(logits, targets):
    log_probs = torch.log_softmax(logits, dim=-1)
    return -log_probs[torch.arange(len(targets)), targets].sum()"""

UNDETACHED_DFT = """def dft_loss(logits, targets):
    supervised = targets != -100
    log_probs = torch.log_softmax(logits[supervised], dim=-1)
    target_log_probs = log_probs[torch.arange(int(supervised.sum())), targets[supervised]]
    return -(target_log_probs.exp() * target_log_probs).mean()"""


@pytest.mark.parametrize("name, exercise_id, wrong_answer, words", [
    ("02_maximum_likelihood.ipynb", "ch02.nll_loss", SUMMED_NLL, ("summed instead of averaging",)),
    ("04_dft.ipynb", "ch04.dft_loss", UNDETACHED_DFT, ("detach",)),
    ("04_dft.ipynb", "ch04.dft_fixed_point", "prediction = [0.40, 0.25, 0.15, 0.12, 0.08]",
     ("data distribution q",)),
], ids=["02-summed-nll", "04-undetached-dft-weight", "04-predicts-q-for-dft"])
def test_a_learner_pastes_a_typical_wrong_answer_then_the_solutions(learner, name, exercise_id, wrong_answer, words):
    exercise = code_cells(ROOT / "exercises" / name)
    assert learner.run(cell_with(exercise, "from dftlab.course.checks import check")).error is None
    check_cell = cell_with(exercise, f'check("{exercise_id}"')
    assert learner.run(wrong_answer).error is None
    assert_feedback(learner.run(check_cell), exercise_id, "✘", *words)
    paste_every_solution_and_see_every_check_pass(learner, name)
