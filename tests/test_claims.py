"""The claims' rules can fail and are honest about it (issue 25): every rule gives a null verdict on its negative
control, a difference without spread gets an exact p-value (never 0), each test enters the Holm family once, shares
keep their intervals inside [0, 1], every rule carries its history, and the frozen rules are the ones the
replication on new seeds ran under. All from the committed results: nothing is trained here."""
import hashlib
import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dftlab import storage, study
from dftlab.study import claims, control, history, rules, stats
from dftlab.study.config import default_config, real_model_config, replication_config

RESULTS = storage.reading_results_dir()  # the shipped results unless you recomputed them
CLAIMS_FILES = sorted(RESULTS.glob("CLAIMS*.md"))


@pytest.fixture(scope="module")
def full():
    results = study.load_results()
    return results, study.judge(results)


# ---- the negative control ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [default_config(), default_config(quick=True), real_model_config()],
                         ids=["full", "quick", "smollm2"])
def test_every_rule_gives_the_null_verdict_on_its_control(config):
    results = study.load_results(config=config)
    judgement = study.judge(results, real_model_words=None)
    assert judgement.control is not None, f"no cached control for {config.name}: run `python -m dftlab.study claims`"
    for item in judgement.claims:
        assert item.control_verdict in rules.NULL_VERDICTS[item.number], (
            f"{config.name}, claim {item.number}: the rule gives {item.control_verdict!r} with the truth in place of "
            f"the models: {item.control_reason}")
        assert item.control_null is True


def test_the_control_would_catch_a_rule_that_finds_a_difference_between_two_truths(full):
    results, _ = full
    table = control.control_table(results, study.load_control())
    shifted = table.copy()
    arm_c = shifted["objective"] == "dft"  # truth sample c, in dft's place: make it look like a worse model
    shifted.loc[arm_c, "kl"] += np.tile([5.0, 5.5, 6.0, 5.2, 5.8], 2)
    shifted.loc[arm_c, "token_l2_1"] += np.tile([0.05, 0.055, 0.06, 0.052, 0.058], 2)
    judgement = study.judge(results, real_model_words=None, control=shifted)
    assert judgement.claims[1].control_verdict == study.VERDICTS[2] and judgement.claims[1].control_null is False


def test_the_control_table_puts_two_truth_samples_where_the_models_were(full):
    results, _ = full
    payload = study.load_control()
    table = control.control_table(results, payload)
    truth = results[results["objective"] == "truth"]
    assert set(table["objective"]) == {"truth", "nll", "dft"}
    assert set(table.loc[table["objective"] != "truth", "objective_name"]) == {"truth_control"}
    assert (table.loc[table["objective"] == "truth"].reset_index(drop=True)
            .equals(truth.reset_index(drop=True)))
    arms = pd.DataFrame(payload["rows"])
    assert sorted(set(arms["seed"])) == sorted(default_config().headline_seeds) and set(arms["arm"]) == {"b", "c"}
    assert (arms["validity"] == 1.0).all()  # true stories are valid
    assert arms["kl"].abs().max() < 1.0  # KL(q || q) = 0, estimated with sampling noise
    # three different samples per seed: the truth row and the two arms differ in their measured text metrics
    for seed, rows in arms.groupby("seed"):
        own = truth.loc[truth["seed"] == seed, "token_l2_1"].iloc[0]
        assert len({own, *rows["token_l2_1"]}) == 3
    assert payload["truth_sha256"] == control.truth_fingerprint(results)


def test_the_control_streams_are_new_samples_of_the_truth():
    from dftlab.study.measurement import run_inputs, true_completions

    config = default_config(quick=True)
    tales, _, prompts, _ = run_inputs(config, study.RunSpec("truth", 0))
    drawn = {stream: true_completions(tales, prompts, 2, seed=0, stream=stream)
             for stream in ("samples", "reference", "control_b", "control_c")}
    assert all([s["prompt"] for s in stories] == [p for p in prompts for _ in range(2)] for stories in drawn.values())
    texts = {stream: [s["completion"] for s in stories] for stream, stories in drawn.items()}
    assert len({tuple(t) for t in texts.values()}) == 4


def test_a_judgement_of_a_hand_made_table_finds_no_control():
    table = pd.DataFrame({"objective": ["truth"], "seed": [0], "validity": [1.0]})
    assert control.find_control(table) is None


# ---- exact tests, the Holm family, bounded intervals ------------------------------------------------------------

def _table(a, b, metric="m", seeds=(0, 1, 2, 3, 4)):
    rows = []
    for objective, values in (("a", a), ("b", b), ("truth", [0.0] * len(seeds))):
        for seed, value in zip(seeds, values):
            rows.append({"run_id": f"{objective}-{seed}", "kind": "truth" if objective == "truth" else "finetuned",
                         "base_model": "" if objective == "truth" else "tiny-gpt2",
                         "prior": "" if objective == "truth" else "strong",
                         "steps": 0 if objective == "truth" else 200, "objective": objective,
                         "decoding": "data" if objective == "truth" else "T=1", "seed": seed, metric: value,
                         "samples": 160})
    return pd.DataFrame(rows)


def test_a_difference_without_spread_gets_the_smallest_exact_p_value_not_zero():
    comparison = study.compare(_table([0.9] * 5, [0.2] * 5), "m", "a", "b")
    assert comparison.test == "exact" and comparison.no_spread
    assert comparison.p_value == study.minimum_p_value(5) == 2 / 32 > 0
    assert not comparison.significant  # 5 seeds cannot make it significant, however large
    text = comparison.text()
    assert "p = 0.0625" in text and "the smallest two-sided p-value 5 seeds can give" in text
    assert not re.search(r"p = 0(?![.\d])", text) and "[+0.7, +0.7]" not in text
    # one-sample, against a constant: the same
    assert study.compare(_table([1.0] * 5, [0.0] * 5), "m", "a", 0.33).p_value == 2 / 32
    # no difference at all: p = 1, and the text says so instead of "+0 [+0, +0]"
    same = study.compare(_table([0.5] * 5, [0.5] * 5), "m", "a", "b")
    assert same.p_value == 1.0 and "no difference in any of the 5 seeds" in same.text()
    assert "+0" not in same.text()


def test_the_exact_sign_flip_test_by_brute_force():
    values = [1.0, 2.0, -0.5, 0.25]
    observed = abs(sum(values))
    patterns = list(itertools.product((1, -1), repeat=len(values)))
    expected = sum(abs(sum(s * v for s, v in zip(signs, values))) >= observed - 1e-12
                   for signs in patterns) / len(patterns)
    assert study.sign_flip_p_value(values) == pytest.approx(expected)
    assert study.sign_flip_p_value([0.3] * 7) == study.minimum_p_value(7) == 2 / 128
    assert study.sign_flip_p_value([0.0, 0.0]) == 1.0 and math.isnan(study.sign_flip_p_value([]))
    assert study.seed_test([0.1, 0.2, 0.4]) == (pytest.approx(stats.t_test_p_value([0.1, 0.2, 0.4])), "t")
    assert study.seed_test([0.2, 0.2]) == (0.5, "exact")


def test_each_test_enters_the_holm_family_once(full):
    results, judgement = full
    decisions = rules.decide(results, None)
    comparisons = [c for d in [*decisions.claims.values(), decisions.regime, *decisions.reconstruction.values()]
                   for c in d.decisive.values()]
    keys = [c.key for c in comparisons]
    assert all(keys) and decisions.family_size == len(set(keys)) == len(keys) - 1  # one test decides two claims
    kl_2, kl_3 = decisions.claims[2].decisive["kl"], decisions.claims[3].decisive["kl"]
    assert kl_2.key == kl_3.key and kl_2.adjusted_p == kl_3.adjusted_p
    assert judgement.shared_tests == [("kl: dft vs nll", ["claim 2", "claim 3"])]
    assert judgement.family_size == decisions.family_size
    # the adjustment by hand: the shared test counted twice would raise every other adjusted p-value
    unique = {c.key: c.p_value for c in comparisons}
    assert sorted(set(c.adjusted_p for c in comparisons)) == sorted(set(study.holm(list(unique.values()))))


def test_two_copies_of_one_test_are_one_test():
    first = study.compare(_table([0.9, 0.8, 1.0, 0.85, 0.95], [0.2, 0.3, 0.1, 0.25, 0.2]), "m", "a", "b")
    copy = study.compare(_table([0.9, 0.8, 1.0, 0.85, 0.95], [0.2, 0.3, 0.1, 0.25, 0.2]), "m", "a", "b")
    other = study.Comparison("x", "a", "b", "T=1", 0, 0, 0, 0, 0, 5, p_value=0.04, key=("x",))
    assert rules.adjust([rules.Decision({"one": first}), rules.Decision({"two": copy, "x": other})]) == 2
    assert first.adjusted_p == copy.adjusted_p == pytest.approx(2 * first.p_value)


@pytest.mark.parametrize("shares", [[1.0] * 5, [0.0] * 5, [0.959, 0.96, 0.95, 0.97, 0.96], [0.0, 1.0, 0.0, 1.0, 1.0],
                                    [0.99], [0.5, 0.51], [0.001, 0.0, 0.002]])
def test_share_intervals_stay_inside_zero_and_one(shares):
    mean, low, high = study.share_interval(shares, 160)
    assert 0.0 <= low <= mean <= high <= 1.0 and high > low
    t_mean, t_low, t_high = study.t_interval(shares)
    if len(shares) > 1 and np.std(shares) > 0.1:  # a bimodal share: the t-interval leaves [0, 1]
        assert t_low < 0 or t_high > 1


def test_every_bounded_interval_of_the_judgement_stays_inside_its_range(full):
    results, _ = full
    decisions = rules.decide(results, None)
    comparisons = [c for d in [*decisions.claims.values(), decisions.regime, *decisions.reconstruction.values()]
                   for c in [*d.decisive.values(), *d.context] if isinstance(c, study.Comparison)]
    wilson = [c for c in comparisons if c.interval == "wilson"]
    assert {c.raw_metric for c in wilson} == set(study.BOUNDED_SHARES)
    for c in wilson:
        assert 0.0 <= c.a_low <= c.mean_a <= c.a_high <= 1.0, c.text()
        assert -1.0 <= c.low <= c.difference <= c.high <= 1.0, c.text()
    assert all(c.interval == "t" for c in comparisons if c.raw_metric not in study.BOUNDED_SHARES)


@pytest.mark.parametrize("path", CLAIMS_FILES, ids=[p.name for p in CLAIMS_FILES])
def test_no_claims_file_prints_a_p_value_of_zero_or_a_zero_width_interval(path):
    text = path.read_text()
    assert not re.search(r"p = 0(?![.\d])", text), "a p-value of 0 is printed"
    assert not re.search(r"(?<![\w-])[+-]0(?![.\w])", text), "a signed zero (+0 or -0) is printed"
    for low, high in re.findall(r"\[([+-]?[\d.e+-]+), ([+-]?[\d.e+-]+)\]", text):
        assert low != high, f"a zero-width interval [{low}, {high}]"


# ---- rules that can fail ----------------------------------------------------------------------------------------

def _claim_1_table(nll_t1, nll_t07, dft_t1, seeds=(0, 1, 2, 3, 4)):
    rows = []
    for seed in seeds:
        rows.append({"run_id": f"truth-{seed}", "kind": "truth", "base_model": "", "prior": "", "steps": 0,
                     "objective": "truth", "decoding": "data", "seed": seed, "top_opener_share": 0.33,
                     "top_opener_true_prob": 0.33, "overuse_formulaic": 1.0})
        for objective, by_decoding in (("nll", {"T=1": nll_t1, "T=0.7,top-p=0.9": nll_t07}),
                                       ("dft", {"T=1": dft_t1, "T=0.7,top-p=0.9": dft_t1})):
            for decoding, shares in by_decoding.items():
                rows.append({"run_id": f"{objective}-{seed}", "kind": "finetuned", "base_model": "tiny-gpt2",
                             "prior": "strong", "steps": 200, "objective": objective, "decoding": decoding,
                             "seed": seed, "top_opener_share": shares[seed], "top_opener_true_prob": 0.33,
                             "overuse_formulaic": 1.0, "samples": 160})
    return pd.DataFrame(rows)


def test_claim_one_is_decided_at_t_1_not_by_low_temperature_decoding():
    near = [0.32, 0.35, 0.33, 0.31, 0.34]
    decoding_only = _claim_1_table(near, [0.55, 0.52, 0.58, 0.5, 0.54], near)
    ctx = rules.context_of(decoding_only)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    verdict, reason = rules.claim_1_verdict(decision, ctx)
    assert verdict != "true" and "Decoding, a finding of its own" in reason
    over = _claim_1_table(near, near, [0.6, 0.62, 0.58, 0.65, 0.61])
    ctx = rules.context_of(over)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    assert rules.claim_1_verdict(decision, ctx)[0] == "true"
    below = _claim_1_table([0.3, 0.31, 0.29, 0.32, 0.3], near, [0.3, 0.31, 0.3, 0.29, 0.33])
    ctx = rules.context_of(below)
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    assert rules.claim_1_verdict(decision, ctx)[0] == "false"  # the rule can come out false


def test_the_real_models_habit_words_are_reported_but_do_not_decide_claim_one():
    near = [0.32, 0.35, 0.33, 0.31, 0.34]
    table = _claim_1_table(near, near, near)
    words = pd.DataFrame({"word": ["tapestry", "bustling"], "discovery_ratio": [600.0, 500.0],
                          "held_out_ratio": [300.0, 800.0]})
    ctx = rules.context_of(table)
    ctx.real_model_words = words
    decision = rules.claim_1_evidence(ctx)
    rules.adjust([decision])
    verdict, reason = rules.claim_1_verdict(decision, ctx)
    assert verdict != "true" and "2 habit words" in reason and "reported, not counted" in reason


def test_claim_one_habit_rule_finds_habit_words_in_the_truth_itself(full):
    _, judgement = full
    habit = judgement.control_habit_words
    assert habit and all(h["raw"] for h in habit)  # the uncontrolled rule calls true stories formulaic
    assert any(h["controlled"] for h in habit)  # and so does the controlled one: it cannot decide the claim


# ---- the history of every rule ----------------------------------------------------------------------------------

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


@pytest.mark.parametrize("path", CLAIMS_FILES, ids=[p.name for p in CLAIMS_FILES])
def test_no_claims_file_says_a_rule_was_fixed_in_advance(path):
    text = path.read_text().lower()
    assert "in advance" not in text and "before looking" not in text and "pre-registered" not in text
    assert "the rules were not all written before the data" in text
    judged = [int(n) for n in re.findall(r"^## claim (\d)", text, flags=re.M)]  # the replication's file: 2, 3, 5
    assert judged in ([1, 2, 3, 4, 5], list(claims.REPLICATED_CLAIMS))
    for key in judged:
        for change in history.RULE_HISTORY[key]:
            assert f"- {change.commit} ({change.date}), {change.stage}:".lower() in text


# ---- the frozen rules and the replication -----------------------------------------------------------------------

def test_the_rules_hash_is_the_sha256_of_the_frozen_sources():
    folder = Path(claims.__file__).parent
    digest = hashlib.sha256()
    for name in ("rules.py", "stats.py"):
        digest.update(name.encode() + b"\0" + (folder / name).read_bytes().replace(b"\r\n", b"\n") + b"\0")
    assert claims.FROZEN_SOURCES == ("rules.py", "stats.py") and claims.rules_sha256() == digest.hexdigest()
    assert f"sha256 `{claims.rules_sha256()}`" in (RESULTS / "CLAIMS.md").read_text()


def test_the_frozen_rules_are_the_ones_the_replication_ran_under():
    replication = claims.read_replication()
    assert replication is not None, "no replication: run `python -m dftlab.study --replication`"
    assert replication["record"]["rules_sha256"] == claims.rules_sha256(), (
        "rules.py or stats.py changed since the replication ran: the rules are frozen. Revert the change, or run a "
        "new replication on new seeds (`python -m dftlab.study --replication`, with new REPLICATION_SEEDS).")


def test_the_replication_ran_nll_and_dft_on_new_seeds_at_the_headline_budget():
    replication = claims.read_replication()
    assert replication is not None
    config, full_config = replication_config(), default_config()
    seeds = set(replication["record"]["seeds"])
    used = set(full_config.seeds) | set(full_config.headline_seeds) | set(default_config(True).seeds) | set(
        real_model_config().seeds) | set(real_model_config().headline_seeds)
    assert len(seeds) >= 5 and not seeds & used and seeds == set(config.headline_seeds)
    results = study.results.study_table(replication["study"])
    tuned = results[results["kind"] == "finetuned"]
    assert set(tuned["objective"]) == {"nll", "dft"} and set(tuned["steps"]) == {full_config.steps}
    assert set(tuned["base_model"]) == {"tiny-gpt2"} and set(tuned["seed"]) == seeds
    assert replication["control"] is not None
    judgement = study.judge(results, real_model_words=None, control=replication["control"],
                            claims=claims.REPLICATED_CLAIMS)
    assert [c.number for c in judgement.claims] == [2, 3, 5]
    assert all(item.control_null for item in judgement.claims)
    text = (RESULTS / "CLAIMS.md").read_text()
    assert "## The frozen-rule replication" in text and "The rules have not changed since" in text
    for item in judgement.claims:
        assert f"Claim {item.number} on the new seeds: **{item.verdict}.**" in text


def test_the_replication_command_refuses_other_settings():
    for extra in (["--quick"], ["--seeds", "3"], ["--real-model"], ["--objectives", "nll"]):
        with pytest.raises(SystemExit, match="--replication"):
            study.main(["--replication", *extra, "--out", "/nonexistent"])
