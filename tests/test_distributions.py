"""dftlab.distributions: decoding rules, entropy, the KL fits and the bigram chain, against hand-computed values."""

import math

import numpy as np
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


def test_total_variation_takes_two_series_over_the_same_outcomes_and_refuses_others():
    import pandas as pd

    p = pd.Series([0.5, 0.3, 0.2], index=["a", "b", "c"])
    assert D.total_variation(p, pd.Series([0.2, 0.3, 0.5], index=["a", "b", "c"])).item() == pytest.approx(0.3)
    with pytest.raises(ValueError, match="different outcomes"):
        D.total_variation(p, pd.Series([0.2, 0.3, 0.5], index=["c", "b", "a"]))


def test_toy_power_family_distances_are_total_variations_of_the_check():
    import pandas as pd

    from dftlab import toy

    check = pd.DataFrame({"alpha": [0.5, 0.5], "opener": ["A", "B"], "model": [0.7, 0.3],
                          "closed_form": [0.6, 0.4], "sampled": [0.75, 0.25]})
    row = toy.power_family_distances(check).iloc[0]
    assert row["closed_form"] == pytest.approx(0.1) and row["sampled"] == pytest.approx(0.05)


def kept(logits) -> list[bool]:
    return (logits > -math.inf).tolist()


def test_min_p_keeps_tokens_above_a_share_of_the_top_probability():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.12, 0.06, 0.02]))
    # p_base = 0.2: threshold 0.1 keeps 0.5, 0.3, 0.12
    assert kept(D.min_p_filter(logits, 0.2)) == [True, True, True, False, False]
    assert kept(D.min_p_filter(logits, 1.0)) == [True, False, False, False, False]
    assert all(kept(D.min_p_filter(logits, 0.01)))
    # the threshold scales with confidence: a flat distribution keeps everything, a peaked one very little
    flat, peaked = torch.zeros(6), torch.tensor([8.0, 0, 0, 0, 0, 0])
    assert sum(kept(D.min_p_filter(flat, 0.1))) == 6 and sum(kept(D.min_p_filter(peaked, 0.1))) == 1


def test_min_p_is_independent_of_a_shift_and_works_on_batches():
    logits = torch.randn(3, 2, 7, generator=torch.Generator().manual_seed(0))
    assert torch.equal(D.min_p_filter(logits, 0.3) > -math.inf, D.min_p_filter(logits + 5.0, 0.3) > -math.inf)
    probs = torch.softmax(logits, -1)
    expected = probs >= 0.3 * probs.max(-1, keepdim=True).values
    assert torch.equal(D.min_p_filter(logits, 0.3) > -math.inf, expected)
    filtered = D.min_p_filter(logits, 0.3)
    assert torch.equal(filtered[expected], logits[expected])  # kept logits are unchanged


def test_typical_filter_ranks_by_distance_to_the_entropy_and_can_drop_the_top_token():
    probs = torch.tensor([0.4] + [0.03] * 20, dtype=torch.float64)
    # H = 2.47 nats; the top token's surprisal is 0.92, the others' 3.51: the others are more typical
    result = kept(D.typical_filter(probs.log(), 0.5))
    assert result[0] is False and sum(result) == 17  # 17 x 0.03 = 0.51 reaches the mass
    assert kept(D.typical_filter(probs.log(), 0.9))[0] is True  # 20 x 0.03 = 0.6 < 0.9, so the top is needed too
    uniform = torch.zeros(5)
    assert sum(kept(D.typical_filter(uniform, 0.5))) == 3  # every token is typical; stop once 0.6 >= 0.5


def test_typical_filter_always_keeps_one_token_and_ignores_ruled_out_tokens():
    logits = torch.tensor([[2.0, 1.0, float("-inf"), 0.0], [0.0, 5.0, 1.0, 1.0]])
    filtered = D.typical_filter(logits, 1e-6)
    assert ((filtered > -math.inf).sum(-1) == 1).all()
    assert D.typical_filter(logits, 1.0)[0, 2] == float("-inf")


def test_repetition_penalty_divides_positive_and_multiplies_negative_logits_of_seen_tokens():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0])
    penalised = D.repetition_penalty(logits, [0, 1, 0], 2.0)
    assert penalised.tolist() == [1.0, -2.0, 0.5, 3.0]  # token 0 once, however often it appeared
    assert logits.tolist() == [2.0, -1.0, 0.5, 3.0]  # the input is left as it was
    assert torch.equal(D.repetition_penalty(logits, [0, 1, 2, 3], 1.0), logits)
    batch = D.repetition_penalty(torch.tensor([[2.0, -1.0], [2.0, -1.0]]), [[0, 0], [1, 1]], 2.0)
    assert batch.tolist() == [[1.0, -1.0], [2.0, -2.0]]
    assert torch.equal(D.repetition_penalty(logits, [], 2.0), logits)


@pytest.mark.parametrize("call, match", [
    (lambda: D.min_p_filter(torch.ones(3), 0.0), "p_base must"),
    (lambda: D.min_p_filter(torch.ones(3), 1.5), "p_base must"),
    (lambda: D.typical_filter(torch.ones(3), 0.0), "mass must"),
    (lambda: D.repetition_penalty(torch.ones(3), [0], 0.0), "penalty must"),
    (lambda: D.repetition_penalty(torch.ones(3), [5], 1.2), "outside the vocabulary"),
    (lambda: D.repetition_penalty(torch.ones(2, 3), [0, 1], 1.2), "as many axes"),
])
def test_bad_decoding_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


GRID = torch.linspace(-6, 6, 121, dtype=torch.float64)
TWO_MODES = 0.6 * D.discretised_gaussian(GRID, -2.5, 0.8) + 0.4 * D.discretised_gaussian(GRID, 2.5, 0.8)


def test_forward_kl_covers_both_modes_and_reverse_kl_picks_the_larger_one():
    forward = D.fit_unimodal(TWO_MODES, GRID, "forward")
    reverse = D.fit_unimodal(TWO_MODES, GRID, "reverse")
    # forward: between the modes and wide enough to reach both (moment matching pulls the mean to -0.5ish)
    assert -1.5 < forward.mean < 0.5 and forward.std > 2.0
    # reverse: on the mode of weight 0.6, about as narrow as that mode
    assert reverse.mean == pytest.approx(-2.5, abs=0.1) and reverse.std == pytest.approx(0.8, abs=0.1)
    assert reverse.reverse_kl == pytest.approx(-math.log(0.6), abs=0.01)
    # each fit wins in its own direction
    assert forward.forward_kl < reverse.forward_kl and reverse.reverse_kl < forward.reverse_kl
    assert float(forward.probs.sum()) == pytest.approx(1.0)


def test_both_directions_recover_a_target_inside_the_family():
    target = D.discretised_gaussian(GRID, 1.0, 1.5)
    for direction in ("forward", "reverse"):
        fit = D.fit_unimodal(target, GRID, direction)
        assert fit.mean == pytest.approx(1.0, abs=0.02) and fit.std == pytest.approx(1.5, abs=0.02), direction


@pytest.mark.parametrize("call, match", [
    (lambda: D.fit_unimodal(TWO_MODES, GRID, "backward"), "direction"),
    (lambda: D.fit_unimodal(TWO_MODES, GRID[:10]), "same length"),
    (lambda: D.fit_unimodal(torch.tensor([0.5, 0.5, 0.0]), torch.arange(3.0)), "positive"),
])
def test_bad_fit_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


CHAIN = torch.tensor([[0.70, 0.20, 0.05, 0.05], [0.25, 0.25, 0.25, 0.25],
                      [0.10, 0.10, 0.40, 0.40], [0.05, 0.05, 0.05, 0.85]], dtype=torch.float64)


def test_stationary_distribution_is_left_invariant():
    pi = D.stationary_distribution(CHAIN)
    assert torch.allclose(pi @ CHAIN, pi) and float(pi.sum()) == pytest.approx(1.0)
    np.testing.assert_allclose(pi.numpy(), [2 / 9, 1 / 9, 1 / 9, 5 / 9], atol=1e-9)


def test_bigram_mle_counts_pairs_within_each_sequence():
    fitted = D.bigram_mle(torch.tensor([[0, 1, 1, 0], [2, 2, 2, 0]]), 4)
    assert fitted[0].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert fitted[1].tolist() == [0.5, 0.5, 0.0, 0.0]
    assert fitted[2].tolist() == pytest.approx([1 / 3, 0.0, 2 / 3, 0.0])  # 0 -> 2 across rows is not a pair
    assert fitted[3].tolist() == [0.25] * 4  # never seen as a context: uniform
    assert torch.equal(D.bigram_mle([0, 1, 1, 0], 4), D.bigram_mle(torch.tensor([[0, 1, 1, 0]]), 4))


def test_sampled_text_follows_the_chain_and_the_kl_shrinks_like_one_over_n():
    tokens = D.sample_bigram_tokens(CHAIN, 20_000, num_sequences=8, seed=0)
    assert tokens.shape == (8, 20_000) and torch.equal(tokens, D.sample_bigram_tokens(CHAIN, 20_000, 8, seed=0))
    fitted = D.bigram_mle(tokens, 4)
    assert torch.allclose(fitted, CHAIN, atol=0.01)
    counts = torch.bincount(tokens.flatten(), minlength=4).double()
    assert torch.allclose(counts / counts.sum(), D.stationary_distribution(CHAIN), atol=0.01)
    # the expected KL of the MLE is about C (V - 1) / (2 n) = 6 / n for this chain
    kls = [np.median([D.bigram_kl(CHAIN, D.bigram_mle(tokens[s, :n], 4)) for s in range(8)]) for n in (2000, 20_000)]
    assert 2e-3 < kls[0] < 5e-3 and 2e-4 < kls[1] < 5e-4
    assert D.bigram_kl(CHAIN, CHAIN) == pytest.approx(0.0, abs=1e-12)


def test_bigram_kl_is_infinite_when_a_possible_transition_was_never_seen():
    fitted = CHAIN.clone()
    fitted[0] = torch.tensor([0.75, 0.20, 0.05, 0.0], dtype=torch.float64)
    assert math.isinf(D.bigram_kl(CHAIN, fitted))


@pytest.mark.parametrize("call, match", [
    (lambda: D.bigram_mle(torch.tensor([0, 4]), 4), "outside"),
    (lambda: D.bigram_mle(torch.tensor([1]), 4), "at least two"),
    (lambda: D.sample_bigram_tokens(CHAIN[:3], 10), "square"),
    (lambda: D.bigram_kl(CHAIN, CHAIN[:2]), "shape"),
])
def test_bad_bigram_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_entropy_by_temperature_rises_with_temperature():
    from dftlab.distributions import entropy_by_temperature

    table = entropy_by_temperature(torch.tensor([3.0, 1.0, 0.0, -1.0]), [0.1, 1.0, 10.0])
    assert table["entropy (nats)"].is_monotonic_increasing
