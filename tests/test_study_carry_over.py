"""dftlab.study.carry_over: the tiny study and the real-model study side by side."""

import pytest

from dftlab.study.config import real_model_config


def test_carry_over_lines_up_two_studies_and_names_bad_input():
    from dftlab.study import load_results
    from dftlab.study import carry_over
    from dftlab.study.carry_over import carry_over_table, open_prompt_habits, verdicts_side_by_side

    tiny = load_results()
    table = carry_over_table({"a": tiny, "b": tiny})
    assert list(table["study"].unique()) == ["a", "b"] and set(table["metric"]) >= {"kl", "validity"}
    kl = table[table["metric"] == "kl"].iloc[0]
    assert kl["dft"] > kl["nll"] and kl["ci_low"] <= kl["difference"] <= kl["ci_high"]
    assert table.loc[table["significant"], "agrees"].eq(True).all()  # a study always agrees with itself
    assert (table["adjusted_p"] >= table["p_value"]).all() and table["family_size"].gt(len(set(table["metric"]))).all()
    # sample statistics are judged by their distance to the truth: dft's distinct-2 is lower than nll's, but the
    # comparison is |dft - truth| - |nll - truth|, which is what the row's difference must be
    distinct = table[(table["metric"] == "distinct_2")].iloc[0]
    assert distinct["compared"] == "|distinct_2 - truth|"
    per_seed = tiny[(tiny["steps"] == 200) & (tiny["decoding"] == "T=1") & (tiny["base_model"] == "tiny-gpt2")]
    truth = tiny[tiny["objective"] == "truth"].set_index("seed")["distinct_2"]
    distance = {o: (per_seed[per_seed["objective"] == o].set_index("seed")["distinct_2"] - truth).abs().dropna()
                for o in ("nll", "dft")}
    assert distinct["difference"] == pytest.approx((distance["dft"] - distance["nll"]).dropna().mean())
    sides = verdicts_side_by_side({"a": tiny, "b": tiny})
    assert (sides["a"] == sides["b"]).all() and len(sides) == 5
    with pytest.raises(ValueError, match="at least two"):
        carry_over_table({"a": tiny})
    with pytest.raises(ValueError, match="open prompts"):
        from dftlab.study import load_study
        carry_over.collapse_table(load_study(), tiny)
    with pytest.raises(ValueError, match="no answers to open prompts"):
        from dftlab.study import load_study
        open_prompt_habits(load_study())


def test_the_collapse_table_finds_each_runs_own_opening():
    from dftlab.study import load_results, load_study
    from dftlab.study.carry_over import collapse_table, opening_entropy

    assert opening_entropy(["Once upon a time"] * 4) == 0.0
    assert opening_entropy(["a b", "c d", "e f", "g h"]) == pytest.approx(2.0)
    config = real_model_config()
    table = collapse_table(load_study(config=config), load_results(config=config))
    assert len(table) == 3 * len(config.seeds) and list(dict.fromkeys(table["objective"])) == ["base", "nll", "dft"]
    assert table["own_top_opening_share"].between(0, 1).all() and (table["opening_entropy_bits"] >= 0).all()
    assert (table["answers"] == config.open_prompts * config.open_responses_per_prompt).all()
