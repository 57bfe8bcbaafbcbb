"""The verdict cards of chapter 7 (dftlab.study.cards): readable, faithful to the judgement, evidence folded."""
import re

import pytest

from dftlab import study
from dftlab.study import cards


@pytest.fixture(scope="module")
def judgement():
    return study.judge(study.load_results())


def test_each_card_names_claim_verdict_rule_and_control_in_plain_words(judgement):
    for item in judgement.claims:
        card = study.verdict_card(item, judgement)
        text = repr(card)
        assert f"Claim {item.number}: {item.claim}" in text and f"Verdict: {item.verdict}." in text
        assert cards.RULE_IN_ONE_SENTENCE[item.number] in text and "Negative control:" in text
        assert 1 <= len(card.numbers) <= 3
        # no code names, no p = 0, no zero-width intervals
        assert not re.search(r"\b(top_opener_share|token_l2_1|dft_minus_nll|ci_low|predictive_entropy)\b", text)
        assert "p = 0 " not in text and "p 0:" not in text and "[+0, +0]" not in text


def test_a_cards_numbers_are_its_decisive_comparisons(judgement):
    item = judgement.claims[1]  # claim 2: token L2 and KL decide it
    card = study.verdict_card(item, judgement)
    decisive = list(judgement.decisions.claims[2].decisive.values())
    for comparison in decisive:
        assert any(cards._number(comparison.mean_a) in line and cards._number(comparison.mean_b) in line
                   for line in card.numbers)
    significant = [c for c in decisive if c.adjusted_p < 0.05]
    assert sum(line.endswith(": significant.") for line in card.numbers) == len(significant)


def test_the_full_evidence_is_folded_in_the_html(judgement):
    item = judgement.claims[4]
    html = study.verdict_card(item, judgement)._repr_html_()
    assert html.count("<details>") == 1 and "<summary>The full evidence</summary>" in html
    body, fold = html.split("<details>")
    assert all(line.split(";")[0] not in body for line in item.evidence)  # the raw evidence only in the fold
    assert "<script" not in html


def test_a_card_needs_a_judgement_that_kept_its_tests(judgement):
    from dataclasses import replace

    with pytest.raises(ValueError, match="study.judge"):
        study.verdict_card(judgement.claims[0], replace(judgement, decisions=None))
