"""exercises/ is generated from solutions/: it is up to date, leaks no solution, and uses only known ids.

Executing the notebooks is nbval's job (`make test` runs exercises/ and solutions/ with --nbval); here we
read their stored outputs, which is what nbval compares against.
"""
import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from dftlab.course import exercises
from dftlab.course.checks import EXERCISES

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS, EXERCISES_DIR = ROOT / "solutions", ROOT / "exercises"
TOPICS = ["00_formulaic_writing", "01_token_distributions", "02_maximum_likelihood", "03_sft", "04_dft",
          "05_dft_in_the_study", "06_distribution_matching", "07_back_to_mle", "08_real_model_writing",
          "09_scaling_up"]
INSTALL_LINE = 'if "google.colab" in sys.modules and importlib.util.find_spec("dftlab") is None:'


def read(path: Path):
    return nbformat.read(path, as_version=4)


def check_ids(notebook) -> list[str]:
    ids = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
                    assert node.args and isinstance(node.args[0], ast.Constant), ast.unparse(node)
                    ids.append(node.args[0].value)
    return ids


def solution_blocks(source: str) -> list[list[str]]:
    blocks, current = [], None
    for line in source.split("\n"):
        if line.strip() == exercises.SOLUTION_BEGIN:
            current = []
        elif line.strip() == exercises.SOLUTION_END:
            blocks.append(current)
            current = None
        elif current is not None:
            current.append(line)
    return blocks


# ---------------------------------------------------------------------------------------------
# The generated copies are up to date.
# ---------------------------------------------------------------------------------------------

def test_one_notebook_per_chapter_in_both_folders():
    assert [p.stem for p in sorted(SOLUTIONS.glob("*.ipynb"))] == TOPICS
    assert [p.stem for p in sorted(EXERCISES_DIR.glob("*.ipynb"))] == TOPICS


def test_exercises_are_up_to_date_with_the_solutions(tmp_path):
    written = exercises.build(SOLUTIONS, tmp_path, execute=False, log=lambda message: None)
    assert [p.name for p in written] == [f"{topic}.ipynb" for topic in TOPICS]
    for path in written:
        generated, committed = read(path), read(EXERCISES_DIR / path.name)
        assert [(c.cell_type, c.source) for c in generated.cells] == \
               [(c.cell_type, c.source) for c in committed.cells], \
               f"{path.name} is out of date: run `python -m dftlab.course.exercises build` and commit exercises/"
    assert exercises.outdated(SOLUTIONS, EXERCISES_DIR) == []


def test_check_command_notices_drift(tmp_path):
    shutil.copytree(SOLUTIONS, tmp_path / "solutions")
    exercises.build(tmp_path / "solutions", tmp_path / "exercises", execute=False, log=lambda message: None)
    assert exercises.main(["check", "--root", str(tmp_path)]) == 0

    path = tmp_path / "solutions" / "01_token_distributions.ipynb"
    notebook = read(path)
    notebook.cells[0].source += "\n\nA new sentence."
    nbformat.write(notebook, path)
    assert exercises.main(["check", "--root", str(tmp_path)]) == 1

    exercises.build(tmp_path / "solutions", tmp_path / "exercises", execute=False, log=lambda message: None)
    assert exercises.main(["check", "--root", str(tmp_path)]) == 0
    (tmp_path / "exercises" / "07_extra.ipynb").write_text(path.read_text())
    assert exercises.main(["check", "--root", str(tmp_path)]) == 1


@pytest.mark.slow
def test_check_command_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "dftlab.course.exercises", "check", "--root", str(ROOT)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_outputs_are_not_compared(tmp_path):
    """Re-executing a notebook changes outputs only; that must not count as out of date."""
    shutil.copytree(SOLUTIONS, tmp_path / "solutions")
    shutil.copytree(EXERCISES_DIR, tmp_path / "exercises")
    path = tmp_path / "exercises" / "02_maximum_likelihood.ipynb"
    notebook = read(path)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbformat.write(notebook, path)
    assert exercises.outdated(tmp_path / "solutions", tmp_path / "exercises") == []


# ---------------------------------------------------------------------------------------------
# Nothing leaks.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("topic", TOPICS)
def test_no_solution_code_or_model_answer_reaches_the_exercises(topic):
    solution, exercise = read(SOLUTIONS / f"{topic}.ipynb"), read(EXERCISES_DIR / f"{topic}.ipynb")
    exercise_text = "\n".join(cell.source for cell in exercise.cells)
    exercise_lines = {line.strip() for line in exercise_text.split("\n")}
    assert exercises.SOLUTION_BEGIN not in exercise_text and exercises.SOLUTION_END not in exercise_text
    assert exercises.ANSWER_MARKER not in exercise_text and "Model answer" not in exercise_text

    solution_lines = [line.strip() for cell in solution.cells if cell.cell_type == "code"
                      for block in solution_blocks(cell.source) for line in block]
    code_lines = [line for line in solution_lines if line and not line.startswith("#")]
    assert code_lines, "the solution notebook has no solution code"
    assert [line for line in code_lines if line in exercise_lines] == []

    answers = [cell.source for cell in solution.cells if exercises.is_answer_cell(cell)]
    assert answers, "the solution notebook has no written answer"
    for answer in answers:
        for sentence in re.split(r"(?<=[.!?])\s+", answer.split("\n", 1)[1]):
            if len(sentence) > 30:
                assert sentence not in exercise_text
    placeholders = [cell for cell in exercise.cells if cell.source == exercises.ANSWER_PLACEHOLDER]
    assert len(placeholders) == len(answers)


@pytest.mark.parametrize("topic", TOPICS)
def test_exercise_outputs_show_no_solution(topic):
    """The stored outputs were made by the stubs: every check is "not attempted yet" (a prediction's check cell
    stores no output at all: test_every_prediction_keeps_its_answer_hidden)."""
    notebook = read(EXERCISES_DIR / f"{topic}.ipynb")
    answers = {index for _, cells in exercises.prediction_answers(notebook) for index in cells}
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and "check(" in cell.source and index not in answers:
            shown = [output["data"]["text/plain"] for output in cell.outputs if "data" in output]
            assert len(shown) == 1 and "not attempted yet" in shown[0], cell.source


def test_every_prediction_keeps_its_answer_hidden():
    """Every "predict, then run" exercise: the cells that run the experiment and check the prediction are stored
    without outputs (the committed notebook is what the website's download button and Colab open), tagged
    hide-output (the website folds their output once `make book` has executed them) and nbval-ignore-output (nbval
    runs them but has nothing to compare). Every prediction check of every chapter is among those cells."""
    predictions = 0
    for topic in TOPICS:
        notebook = read(EXERCISES_DIR / f"{topic}.ipynb")
        checked = []
        for prediction, answers in exercises.prediction_answers(notebook):
            where = f"{topic}, cell {prediction}"
            assert answers, f"{where}: a prediction with no cell after it that runs the experiment"
            for index in answers:
                cell = notebook.cells[index]
                assert cell.outputs == [] and cell.execution_count is None, f"{where}: cell {index} shows its answer"
                assert set(exercises.ANSWER_TAGS) <= set(cell.metadata.get("tags", [])), f"{where}: cell {index}"
            checked += check_ids(nbformat.v4.new_notebook(cells=[notebook.cells[i] for i in answers]))
            assert checked, f"{where}: no check() of the prediction in the cells after it"
            predictions += 1
        expected = [exercise_id for exercise_id in check_ids(notebook)
                    if not EXERCISES[exercise_id].startswith("implement")]
        assert sorted(checked) == sorted(expected), topic
    assert predictions >= 19


def test_building_stores_no_answer_of_a_prediction():
    """`build` executes every cell, then drops the answers' outputs; what it stores is what the test above reads."""
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("prediction = ...  # your answer"),
        nbformat.v4.new_markdown_cell(exercises.hint_cell_source(["think"])),
        nbformat.v4.new_code_cell("print(2 + 2)", outputs=[nbformat.v4.new_output("stream", text="4\n")]),
        nbformat.v4.new_code_cell("check('x', prediction, measured=4)"),
        nbformat.v4.new_markdown_cell("## Next exercise"),
        nbformat.v4.new_code_cell("print(1)", outputs=[nbformat.v4.new_output("stream", text="1\n")]),
    ])
    assert exercises.prediction_answers(notebook) == [(0, [2, 3])]
    exercises.hide_answers(notebook)
    assert [cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"][1:] == [[], [], [
        nbformat.v4.new_output("stream", text="1\n")]]
    assert notebook.cells[2].metadata["tags"] == list(exercises.ANSWER_TAGS)
    assert "tags" not in notebook.cells[5].metadata


@pytest.mark.parametrize("topic", TOPICS)
def test_solution_outputs_pass_every_check(topic):
    notebook = read(SOLUTIONS / f"{topic}.ipynb")
    results = [output["data"]["text/plain"] for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.outputs if "data" in output and "text/plain" in output["data"]]
    checked = [text for text in results if re.match(r"[✔✘○] ch0\d\.", text)]
    assert len(checked) == len(check_ids(notebook)) and all(text.startswith("✔") for text in checked), checked


# ---------------------------------------------------------------------------------------------
# Content and conventions.
# ---------------------------------------------------------------------------------------------

def test_every_id_in_the_notebooks_exists_and_every_exercise_is_used():
    used = []
    for folder in [SOLUTIONS, EXERCISES_DIR]:
        for path in sorted(folder.glob("*.ipynb")):
            ids = check_ids(read(path))
            assert set(ids) <= set(EXERCISES), (path.name, sorted(set(ids) - set(EXERCISES)))
            assert all(exercise_id.startswith(f"ch{path.name[:2]}.") for exercise_id in ids), path.name
            used += ids
    assert set(used) == set(EXERCISES)


@pytest.mark.parametrize("topic", TOPICS)
def test_each_notebook_mixes_at_least_four_exercises(topic):
    notebook = read(SOLUTIONS / f"{topic}.ipynb")
    kinds = {"function": 0, "prediction": 0, "written": 0}
    for exercise_id in check_ids(notebook):
        kinds["function" if EXERCISES[exercise_id].startswith("implement") else "prediction"] += 1
    kinds["written"] = sum(exercises.is_answer_cell(cell) for cell in notebook.cells)
    assert sum(kinds.values()) >= 4 and kinds["function"] >= 1 and kinds["written"] >= 1, kinds
    assert kinds["prediction"] >= 1, kinds


@pytest.mark.parametrize("folder", [SOLUTIONS, EXERCISES_DIR], ids=["solutions", "exercises"])
@pytest.mark.parametrize("topic", TOPICS)
def test_notebook_conventions(folder, topic):
    notebook = read(folder / f"{topic}.ipynb")
    first = notebook.cells[0]
    title = exercises.SOLUTION_TITLE if folder == SOLUTIONS else exercises.EXERCISE_TITLE
    assert first.cell_type == "markdown" and first.source.startswith(f"{title}{int(topic[:2])}: ")
    assert f"`{topic}`" in first.source  # the chapter is named in plain text
    install = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert INSTALL_LINE in install.source and install.metadata.get("tags") == ["remove-cell"]
    markdown = "\n".join(cell.source for cell in notebook.cells if cell.cell_type == "markdown")
    assert not re.search(r"\]\([^)]*\.(ipynb|md)\)", markdown), "no relative links: some chapters are not written yet"
    assert sum(line.startswith("# ") for line in markdown.split("\n")) == 1  # one title; sections are ##


# ---------------------------------------------------------------------------------------------
# The generator on small examples.
# ---------------------------------------------------------------------------------------------

def test_a_block_in_a_function_becomes_a_stub_and_its_hint_is_folded_below_the_cell():
    source = ("def f(x):\n    \"\"\"Doc.\"\"\"\n    ### BEGIN SOLUTION\n    # HINT: add one\n    y = x + 1\n"
              "    return y\n    ### END SOLUTION\n\nprint('after')")
    assert exercises.exercise_source(source) == \
        f'def f(x):\n    """Doc."""\n    raise NotImplementedError("{exercises.STUB_MESSAGE}")\n\nprint(\'after\')'
    assert exercises.solution_hints(source) == ["add one"]
    solution = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    cells = exercises.exercise_notebook(solution).cells
    assert [c.cell_type for c in cells] == ["code", "markdown"]
    assert cells[1].source.startswith("<details>\n<summary>Hint</summary>") and "add one" in cells[1].source
    assert "add one" not in cells[0].source  # the hint is not given away in the code


def test_a_top_level_block_becomes_ellipses():
    source = "# predict\n### BEGIN SOLUTION\n# HINT: a number\nprediction = 0.3\nlow, high = 0, 1\n### END SOLUTION"
    assert exercises.exercise_source(source) == \
        "# predict\nprediction = ...  # your answer\nlow = ...  # your answer\nhigh = ...  # your answer"


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n### END SOLUTION", "HINT"),
    ("def f():\n    ### BEGIN SOLUTION\n    # HINT: h\n    return 1", "not closed"),
    ("x = 1\n### END SOLUTION", "no `### BEGIN SOLUTION`"),
    ("### BEGIN SOLUTION\n# HINT: h\nprint(1)\n### END SOLUTION", "must assign a variable"),
])
def test_malformed_blocks_are_value_errors(source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        exercises.exercise_source(source, "test cell")


def test_a_model_answer_becomes_a_placeholder():
    notebook = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Solutions 9: a topic\n\nText."),
        nbformat.v4.new_markdown_cell("<!-- BEGIN ANSWER -->\nThe secret answer."),
        nbformat.v4.new_markdown_cell("A question."),
        nbformat.v4.new_code_cell("x = 1", outputs=[nbformat.v4.new_output("stream", text="1")], execution_count=3),
    ])
    result = exercises.exercise_notebook(notebook)
    assert [cell.source for cell in result.cells] == \
        ["# Exercises 9: a topic\n\nText.", exercises.ANSWER_PLACEHOLDER, "A question.", "x = 1"]
    assert result.cells[3].outputs == [] and result.cells[3].execution_count is None
    assert notebook.cells[1].source.endswith("The secret answer.")  # the solution itself is untouched


# ---------------------------------------------------------------------------------------------
# The student zip.
# ---------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_student_zip(tmp_path):
    """The zip works on its own: notebooks without outputs, a dftlab wheel, and a README with the command for it."""
    assert exercises.main(["student", "--root", str(ROOT), "--out", str(tmp_path / "student.zip")]) == 0
    with zipfile.ZipFile(tmp_path / "student.zip") as archive:
        names = archive.namelist()
        wheels = [name for name in names if name.endswith(".whl")]
        assert [Path(name).name for name in wheels] == ["dftlab-0.1.0-py3-none-any.whl"]
        assert sorted(names) == sorted([f"dftlab-exercises/{t}.ipynb" for t in TOPICS]
                                       + ["dftlab-exercises/README.md"] + wheels)
        readme = archive.read("dftlab-exercises/README.md").decode()
        assert "pip install torch==2.13.0 && pip install ./dftlab-0.1.0-py3-none-any.whl" in readme
        assert "\npip install dftlab\n" not in readme  # dftlab is not on PyPI
        assert all(f"{topic}.ipynb" in readme for topic in TOPICS)
        for topic in TOPICS:
            notebook = nbformat.reads(archive.read(f"dftlab-exercises/{topic}.ipynb").decode(), as_version=4)
            assert all(cell.outputs == [] for cell in notebook.cells if cell.cell_type == "code")
            assert exercises.SOLUTION_BEGIN not in str(notebook)
        (tmp_path / "wheel").mkdir()
        wheel = tmp_path / "wheel" / Path(wheels[0]).name
        wheel.write_bytes(archive.read(wheels[0]))
        with zipfile.ZipFile(wheel) as built:
            shipped = built.namelist()
            assert "dftlab/course/checks/engine.py" in shipped and "dftlab/assets/tiny-gpt2/model.safetensors" in shipped
    again = exercises.write_student_zip(EXERCISES_DIR, tmp_path / "again.zip", wheel)
    assert again.read_bytes() == (tmp_path / "student.zip").read_bytes()  # reproducible, byte for byte


def test_student_zip_needs_a_wheel(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a dftlab wheel"):
        exercises.write_student_zip(EXERCISES_DIR, tmp_path / "student.zip", tmp_path / "missing.whl")
