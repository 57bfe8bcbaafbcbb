"""dftlab.study.history: every rule records when it was fixed and why."""

import pytest

from dftlab.study import history


@pytest.mark.parametrize("key", [1, 2, 3, 4, 5, "regime", "reconstruction"])
def test_every_rule_records_when_it_was_fixed_and_why(key):
    changes = history.RULE_HISTORY[key]
    assert changes and all(isinstance(c, history.RuleChange) for c in changes)
    assert all(c.stage in history.STAGES and c.rule and c.reason for c in changes)
    stages = [history.STAGES.index(c.stage) for c in changes]
    assert stages == sorted(stages) and [c.date for c in changes] == sorted(c.date for c in changes)
    assert changes[-1].commit == "issue 25" and changes[-1].stage == history.AFTER_FULL_RUN
    assert not history.fixed_in_advance(key)  # none kept its first version through the data


def test_the_histories_name_the_changes_the_review_found():
    assert any(c.stage == history.WITH_FULL_RUN and "prob_character" in c.rule
               for c in history.RULE_HISTORY["regime"])
    assert any(c.commit == "a94c17e" and c.stage == history.AFTER_FULL_RUN for c in history.RULE_HISTORY[1])
    assert {c.stage for c in history.RULE_HISTORY[4]} >= {history.BEFORE_PILOT, history.AFTER_PILOT}
    assert "issue 26" in history.RULE_HISTORY[1][-1].reason and "T = 0.7" in history.RULE_HISTORY[1][-1].reason


def test_a_malformed_record_is_refused_with_where_and_what(tmp_path):
    record = history.HISTORY_PATH.read_text(encoding="utf-8")
    bad = tmp_path / "rule_history.toml"
    bad.write_text(record.replace('stage = "before pilot"', 'stage = "before the pilots"', 1), encoding="utf-8")
    with pytest.raises(ValueError, match=r"\[\[statistics\]\] needs .* stage one of"):
        history.load_history(bad)
    assert history.load_history() == (history.DATA_EVENTS, history.STATISTICS_HISTORY, history.RULE_HISTORY)
