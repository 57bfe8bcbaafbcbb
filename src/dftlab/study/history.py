"""When each rule of CLAIMS.md was fixed relative to the data, and why it changed: reconstructed from git.

The rules were not all written down before the data. The record, `assets/study/rule_history.toml`, holds for every
claim and for the regime question and the reconstruction each version of its rule with the commit that made it, the
stage of the data at that moment and the reason for the change (from the commit, the code or the numbers it answered;
"reconstructed" where the commit gave none). This module reads it; CLAIMS.md renders it under each rule. The data, in
order:

- trial runs: the budget was raised to 300 steps because "with 240 steps or fewer, SFT has not yet learnt to keep
  the title's character" (e52aeb7): runs were looked at before the pilot;
- the pilot (51908bb, 2026-11-25 21:19): the first full study, one base model, 3 seeds, 42 runs, its CLAIMS.md;
- the full run (29caf60, 2026-12-02 19:51): the results CLAIMS.md is judged on today (two base models, 64 runs);
- the replication (the frozen rules on new seeds 5-9, after the changes of issue 25).
"""
from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

HISTORY_PATH = Path(__file__).resolve().parents[1] / "assets" / "study" / "rule_history.toml"

BEFORE_PILOT = "before the pilot"
WITH_PILOT = "with the pilot (in the minute its results were committed)"
AFTER_PILOT = "after the pilot, before the full run"
WITH_FULL_RUN = "with the full run (in the commit that added its results)"
AFTER_FULL_RUN = "after the full run"
BEFORE_ITS_DATA = "before its own runs (committed before they started)"
STAGES = (BEFORE_PILOT, WITH_PILOT, AFTER_PILOT, WITH_FULL_RUN, AFTER_FULL_RUN, BEFORE_ITS_DATA)
# How the record names each stage.
STAGE_KEYS = dict(zip(("before pilot", "with pilot", "after pilot", "with full run", "after full run",
                       "before its data"), STAGES))


@dataclass(frozen=True)
class RuleChange:
    """One version of a rule: the commit that wrote it, when (relative to the data), what it said and why."""
    commit: str
    date: str
    stage: str
    rule: str
    reason: str


def _rule_change(entry: dict, where: str) -> RuleChange:
    if set(entry) != {"commit", "date", "stage", "rule", "reason"} or entry["stage"] not in STAGE_KEYS:
        raise ValueError(f"{HISTORY_PATH}: {where} needs exactly commit, date, stage, rule and reason, with stage one "
                         f"of {sorted(STAGE_KEYS)}; got {entry}.")
    return RuleChange(**{**entry, "stage": STAGE_KEYS[entry["stage"]]})


def load_history(path: str | Path = HISTORY_PATH) -> tuple[tuple, tuple, dict]:
    """(data events, statistics history, rule history) from the record: each event a (commit, date, what) tuple,
    each history a tuple of `RuleChange`, oldest first; the rules keyed by claim number or name."""
    data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    events = tuple((e["commit"], e["date"], e["what"]) for e in data["data_events"])
    statistics = tuple(_rule_change(e, "[[statistics]]") for e in data["statistics"])
    rules = {int(key) if key.isdigit() else key: tuple(_rule_change(e, f'[[rules."{key}"]]') for e in changes)
             for key, changes in data["rules"].items()}
    return events, statistics, rules


DATA_EVENTS, STATISTICS_HISTORY, RULE_HISTORY = load_history()


def fixed_in_advance(key) -> bool:
    """Whether the rule has kept its first version's decision since before any of its data (no change after the pilot;
    for a follow-up, none after its own runs started)."""
    return all(change.stage in (BEFORE_PILOT, BEFORE_ITS_DATA) for change in RULE_HISTORY[key])


__all__ = ["AFTER_FULL_RUN", "AFTER_PILOT", "BEFORE_ITS_DATA", "BEFORE_PILOT", "DATA_EVENTS", "RULE_HISTORY",
           "RuleChange", "STAGES", "STATISTICS_HISTORY", "WITH_FULL_RUN", "WITH_PILOT", "fixed_in_advance",
           "load_history"]
