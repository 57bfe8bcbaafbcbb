"""dftlab.course.install: the one install command, built from _config.yml's repository."""
import pytest

from dftlab.course import install


def _config(tmp_path, text):
    path = tmp_path / "_config.yml"
    path.write_text(text)
    return path


def test_the_command_is_built_from_the_repository_url_and_branch(tmp_path):
    path = _config(tmp_path, "repository:\n  url: https://github.com/someone/dftlab.git/\n  branch: teaching\n")
    assert install.repository(path) == ("https://github.com/someone/dftlab", "teaching")
    assert install.install_command(path) == 'pip install "dftlab @ git+https://github.com/someone/dftlab@teaching"'
    cell = install.colab_cell_source(path)
    assert install.install_requirement(path) in cell and install.chat_model_requirement() in cell


@pytest.mark.parametrize("text, message", [
    ("repository:\n  url: http://example.com/x\n  branch: main\n", "must be an https:// URL"),
    ("repository:\n  url: https://example.com/x\n  branch: 'a b'\n", "must be a branch name"),
    ("title: no repository\n", "must be an https:// URL")])
def test_a_bad_repository_section_is_named(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        install.repository(_config(tmp_path, text))


def test_a_missing_config_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        install.repository(tmp_path / "_config.yml")


def test_the_readme_block_is_rewritten_between_its_markers_only(tmp_path):
    path = _config(tmp_path, "repository:\n  url: https://example.com/dftlab\n  branch: main\n")
    text = f"before\n{install.README_BEGIN}\nold\n{install.README_END}\nafter\n"
    rewritten = install.replace_readme_block(text, path)
    assert rewritten.startswith("before\n") and rewritten.endswith("\nafter\n") and "old" not in rewritten
    assert install.install_command(path) in rewritten
    with pytest.raises(ValueError, match="no .* block"):
        install.replace_readme_block("no markers here", path)


def test_the_notebook_environment_is_offline_and_seeded():
    assert install.NOTEBOOK_ENV["HF_HUB_OFFLINE"] == "1" and install.NOTEBOOK_ENV["PYTHONHASHSEED"] == "0"
    assert install.wheel_install_command("dftlab-0.1.0-py3-none-any.whl").startswith(f"pip install {install.TORCH_REQUIREMENT} && ")
