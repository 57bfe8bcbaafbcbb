import math

import pytest
import torch

from dftlab import distributions as D


def test_softmax_with_temperature_by_hand():
    # softmax([ln 1, ln 3]) = [1/4, 3/4]; at T = 1/2 the logits double: [1, 9]/10
    logits = torch.tensor([0.0, math.log(3.0)])
    assert torch.allclose(D.softmax_with_temperature(logits, 1.0), torch.tensor([0.25, 0.75]))
    assert torch.allclose(D.softmax_with_temperature(logits, 0.5), torch.tensor([0.1, 0.9]))
    assert torch.allclose(D.softmax_with_temperature(logits, 1e6), torch.tensor([0.5, 0.5]), atol=1e-5)


def test_entropy_by_hand_and_on_batches():
    assert D.entropy(torch.tensor([0.5, 0.5])).item() == pytest.approx(math.log(2))
    assert D.entropy(torch.tensor([1.0, 0.0, 0.0])).item() == 0.0  # 0 log 0 = 0
    batch = torch.tensor([[0.25] * 4, [1.0, 0, 0, 0]])
    assert torch.allclose(D.entropy(batch), torch.tensor([math.log(4), 0.0]))


def test_kl_by_hand():
    p, q = torch.tensor([0.5, 0.5]), torch.tensor([0.25, 0.75])
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert D.kl_divergence(p, q).item() == pytest.approx(expected)
    assert D.kl_divergence(p, p).item() == pytest.approx(0.0)
    assert math.isinf(D.kl_divergence(p, torch.tensor([1.0, 0.0])).item())


def test_top_k_and_top_p():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    assert torch.isinf(D.top_k_filter(logits, 2)).tolist() == [False, False, True, True]
    # cumulative 0.5, 0.8, 0.95: p = 0.8 keeps two tokens, p = 0.81 three, p = 0.4 one
    assert (D.top_p_filter(logits, 0.8) > -math.inf).sum() == 2
    assert (D.top_p_filter(logits, 0.81) > -math.inf).sum() == 3
    assert (D.top_p_filter(logits, 0.4) > -math.inf).sum() == 1
    q = D.decoding_distribution(logits, top_p=0.8)
    assert torch.allclose(q, torch.tensor([0.625, 0.375, 0, 0]))


def test_top_p_works_on_unsorted_batches():
    logits = torch.log(torch.tensor([[0.05, 0.5, 0.15, 0.3], [0.7, 0.1, 0.1, 0.1]]))
    kept = D.top_p_filter(logits, 0.8) > -math.inf
    assert kept.tolist() == [[False, True, False, True], [True, True, False, False]]


@pytest.mark.parametrize("call, match", [
    (lambda: D.softmax_with_temperature(torch.ones(3), 0), "temperature"),
    (lambda: D.softmax_with_temperature(torch.ones(3), -1.0), "temperature"),
    (lambda: D.softmax_with_temperature(torch.ones(3, dtype=torch.long), 1.0), "floating"),
    (lambda: D.entropy(torch.tensor([0.5, 0.6])), "sum to 1"),
    (lambda: D.entropy(torch.tensor([-0.5, 1.5])), "negative"),
    (lambda: D.entropy(torch.tensor([float("nan"), 1.0])), "NaN"),
    (lambda: D.entropy(torch.tensor([])), "at least one"),
    (lambda: D.top_k_filter(torch.ones(3), 0), "k must"),
    (lambda: D.top_p_filter(torch.ones(3), 1.5), "p must"),
    (lambda: D.kl_divergence(torch.tensor([1.0, 0]), torch.tensor([1.0, 0, 0])), "same shape"),
])
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_total_variation_is_half_the_l1_distance_over_the_last_axis():
    assert D.total_variation([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]).item() == pytest.approx(0.5)
    assert D.total_variation([1.0, 0.0], [0.0, 1.0]).item() == pytest.approx(1.0)  # nothing in common
    batch = D.total_variation(torch.tensor([[0.2, 0.8], [0.6, 0.4]]), torch.tensor([[0.2, 0.8], [0.4, 0.6]]))
    assert batch.tolist() == pytest.approx([0.0, 0.2])
    with pytest.raises(ValueError, match="same shape"):
        D.total_variation([0.5, 0.5], [1.0, 0.0, 0.0])


def test_toy_power_family_distances_are_total_variations_of_the_check():
    import pandas as pd

    from dftlab import toy

    check = pd.DataFrame({"alpha": [0.5, 0.5], "opener": ["A", "B"], "model": [0.7, 0.3],
                          "closed_form": [0.6, 0.4], "sampled": [0.75, 0.25]})
    row = toy.power_family_distances(check).iloc[0]
    assert row["closed_form"] == pytest.approx(0.1) and row["sampled"] == pytest.approx(0.05)
