"""dftlab.study.levers: the same paired measures for every lever, and the committed studies side by side."""
from __future__ import annotations

import pytest

from dftlab.study import levers

STORY = ("The old town hummed with life. A tapestry of voices rose over the market, and the baker waved to the "
         "children who ran past his door. Nobody noticed the cat on the roof, watching everything with patient eyes.")
PLAIN = ("The old town was busy. People talked in the market, and the baker waved to the children who ran past his "
         "door. Nobody noticed the cat on the roof, watching everything with patient eyes and a full belly.")


def test_no_change_gives_no_change_with_a_zero_width_interval():
    answers = [[STORY], [PLAIN], [STORY + " " + PLAIN]]
    for row, none in zip(levers.paired_change(answers, answers, bootstrap=200), (1.0, 0.0, 0.0)):
        assert row["change"] == pytest.approx(none) and row["ci_low"] == pytest.approx(none)
        assert row["ci_high"] == pytest.approx(none)


def test_a_listed_word_removed_shows_as_a_fall_in_the_list_rate():
    before, after = [[STORY]] * 6, [[PLAIN]] * 6
    rows = {row["measure"]: row for row in levers.paired_change(before, after, bootstrap=200)}
    listed = rows[levers.MEASURES[0]]
    assert listed["before"] > 0 and listed["after"] == 0 and listed["change"] == pytest.approx(0.0)


def test_sides_of_different_prompts_are_refused():
    with pytest.raises(ValueError, match="same prompts"):
        levers.paired_change([[STORY]], [[STORY], [PLAIN]])


@pytest.mark.slow  # measures about 3,000 cached answers
def test_every_lever_of_the_committed_studies_is_measured_alike():
    side = levers.levers_side_by_side(bootstrap=200)
    assert set(side["lever"]) == {"data", "objective", "decoding"}
    assert len(side) == 3 * side["comparison"].nunique()
    assert (side["ci_low"] <= side["change"] + 1e-9).all() and (side["change"] <= side["ci_high"] + 1e-9).all()
    from dftlab import antislop

    measures = antislop.load_comparison()["measures"].set_index("measure")
    listed = measures.loc["slop-score's list words per 1,000 words"]
    teacher = side[(side["comparison"].str.startswith("27B")) & (side["measure"] == levers.MEASURES[0])].iloc[0]
    assert teacher["change"] == pytest.approx(listed["antislop"] / listed["original"], rel=1e-9)
