"""dftlab.runtime: torch's thread count and global generator, changed for a with-block only."""
import os

import pytest
import torch

from dftlab.runtime import default_transformers_verbosity_to_error, torch_global_seed, torch_threads


def test_torch_threads_sets_the_count_inside_and_restores_it_after_an_error():
    before = torch.get_num_threads()
    wanted = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="inside"):
        with torch_threads(wanted):
            assert torch.get_num_threads() == wanted
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_torch_threads_refuses_a_count_that_is_not_a_positive_int(threads):
    before = torch.get_num_threads()
    with pytest.raises(ValueError, match="threads"):
        with torch_threads(threads):
            pass
    assert torch.get_num_threads() == before


def test_torch_global_seed_draws_what_manual_seed_draws_and_gives_the_generator_back():
    torch.manual_seed(7)
    expected_inside = torch.rand(4)
    torch.manual_seed(123)
    outside_before = torch.random.get_rng_state()
    with torch_global_seed(7):
        inside = torch.rand(4)
    assert torch.equal(inside, expected_inside)
    assert torch.equal(torch.random.get_rng_state(), outside_before), "the global generator was left changed"


def test_torch_global_seed_refuses_a_seed_that_is_not_an_int():
    with pytest.raises(ValueError, match="seed"):
        with torch_global_seed(1.5):
            pass


def test_quiet_transformers_sets_a_default_and_keeps_a_choice(monkeypatch):
    monkeypatch.delenv("TRANSFORMERS_VERBOSITY", raising=False)
    default_transformers_verbosity_to_error()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "error"
    monkeypatch.setenv("TRANSFORMERS_VERBOSITY", "info")
    default_transformers_verbosity_to_error()
    assert os.environ["TRANSFORMERS_VERBOSITY"] == "info"
