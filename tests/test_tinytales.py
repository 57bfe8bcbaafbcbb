"""Tests for dftlab.tinytales: exact probabilities, unique derivations, sampling, splits."""
import collections
import math
import random
import re
import statistics

import pytest
from scipy.stats import chisquare

from dftlab import tinytales
from dftlab.tinytales import TinyTales, pretraining_text

N_SAMPLES = 20_000
PROMPT_CHOICES = ("character", "place")
P1_OF_2 = 1 / (1 + 2 ** -1.1)  # the first of two options under Zipf exponent 1.1


@pytest.fixture(scope="module")
def tales():
    return TinyTales(seed=0)


@pytest.fixture(scope="module")
def stories(tales):
    return tales.sample(N_SAMPLES, seed=123)


@pytest.fixture(scope="module")
def parsed(tales, stories):
    return [tales.parse(s["prompt"], s["completion"]) for s in stories]


def _one_per_story(choices, name):
    # connective and action occur several times per story; only slot 1 exists in every story
    return choices[f"{name}_1"] if f"{name}_1" in choices else choices[name]


@pytest.mark.parametrize("name", ["opener", "ending", "feeling", "middle_count", "character", "place",
                                  "adjective", "connective", "action"])
def test_monte_carlo_frequencies_match_choice_distribution(tales, parsed, name):
    distribution = tales.choice_distribution(name)
    assert math.isclose(sum(distribution.values()), 1.0, abs_tol=1e-12)
    counts = collections.Counter(_one_per_story(choices, name) for choices in parsed)
    assert set(counts) <= set(distribution)
    options = list(distribution)
    observed = [counts[o] for o in options]
    expected = [N_SAMPLES * distribution[o] for o in options]
    assert chisquare(observed, expected).pvalue > 0.001


def test_hand_computed_probabilities():
    # The full grammar: every ending list starts with "The end." and has 7 options, so its
    # marginal does not depend on the feeling; there are 16 openers.
    tales = TinyTales()
    assert math.isclose(tales.choice_distribution("opener")["Once upon a time,"],
                        1 / sum(r ** -1.1 for r in range(1, 17)), rel_tol=1e-12)
    assert math.isclose(tales.choice_distribution("ending")["The end."],
                        1 / sum(r ** -1.1 for r in range(1, 8)), rel_tol=1e-12)
    # The fox's home is the forest, so the forest is its most likely place.
    places = tales.choice_distribution("place", given={"character": "fox"})
    assert max(places, key=places.get) == "forest"

    small = TinyTales(max_options=2)
    assert small.choice_distribution("opener") == pytest.approx({"Once upon a time,": P1_OF_2,
                                                                 "Long ago,": 1 - P1_OF_2}, rel=1e-12)
    # Every choice at its first option: 2 in the prompt, 9 in the completion (two middle sentences).
    prompt = "Title: The fox and the forest.\nStory:"
    completion = (" Once upon a time, a small fox lived in the forest. One day, the fox found a big red apple."
                  " One day, the fox found a big red apple. At the end of the day, the fox felt happy. The end.")
    assert math.isclose(small.prompt_log_prob(prompt), 2 * math.log(P1_OF_2), rel_tol=1e-12)
    assert math.isclose(small.log_prob(prompt, completion), 9 * math.log(P1_OF_2), rel_tol=1e-12)
    # Under the full grammar the same story has the same structure but smaller probabilities.
    assert -math.inf < tales.log_prob(prompt, completion) < small.log_prob(prompt, completion)


def test_uniform_grammar_entropy_by_hand():
    # zipf_exponent=0 makes every choice uniform: H = sum of log(number of options),
    # with E[middle_count] = (1 + 2 + 3) / 3 = 2 middle sentences of 14 connectives x 12 actions.
    uniform = TinyTales(zipf_exponent=0)
    expected = (math.log(16) + math.log(24) + math.log(3) + 2 * (math.log(14) + math.log(12))
                + math.log(12) + math.log(7))
    assert math.isclose(uniform.entropy(), expected, rel_tol=1e-12)
    assert math.isclose(uniform.prompt_entropy(), math.log(16) + math.log(10), rel_tol=1e-12)


def test_enumerable_grammar_sums_to_one_and_entropy_is_exact():
    small = TinyTales(max_options=2)
    prompts = sorted({s["prompt"] for s in small.sample(500)})
    assert len(prompts) == 4  # 2 characters x 2 places each
    prompt_probs = [math.exp(small.prompt_log_prob(p)) for p in prompts]
    assert math.isclose(sum(prompt_probs), 1.0, abs_tol=1e-12)
    assert math.isclose(small.prompt_entropy(), -sum(q * math.log(q) for q in prompt_probs), rel_tol=1e-12)
    average_entropy = 0.0
    for prompt, prompt_prob in zip(prompts, prompt_probs):
        completions = small.enumerate_completions(prompt)
        # 2 openers x 2 adjectives x ((2x2)^2 + (2x2)^1 middle sentences) x 2 feelings x 2 endings
        assert len(completions) == 2 * 2 * (16 + 4) * 2 * 2
        log_probs = [small.log_prob(prompt, c) for c in completions]  # scored by parsing, independently
        assert log_probs == pytest.approx(list(completions.values()), abs=1e-12)
        assert abs(sum(math.exp(lp) for lp in log_probs) - 1.0) < 1e-9
        exact = -sum(math.exp(lp) * lp for lp in log_probs)
        assert math.isclose(small.entropy(prompt), exact, rel_tol=1e-12)
        average_entropy += prompt_prob * exact
    assert math.isclose(small.entropy(), average_entropy, rel_tol=1e-12)


def test_full_grammar_prompts_sum_to_one(tales):
    total = 0.0
    for character, p_character in tales.choice_distribution("character").items():
        for place in tales.choice_distribution("place", given={"character": character}):
            total += math.exp(tales.prompt_log_prob(f"Title: The {character} and the {place}.\nStory:"))
    assert abs(total - 1.0) < 1e-12


def test_every_sample_parses_and_log_prob_is_sum_of_choices(tales, stories, parsed):
    for story, choices in list(zip(stories, parsed))[:3000]:
        assert choices is not None
        completion_log_prob = sum(math.log(tales.choice_distribution(name.split("_")[0] if name[-1].isdigit()
                                                                     else name, given=choices)[option])
                                  for name, option in choices.items() if name not in PROMPT_CHOICES)
        log_prob = tales.log_prob(story["prompt"], story["completion"])
        assert math.isfinite(log_prob)
        assert math.isclose(log_prob, completion_log_prob, rel_tol=1e-12)
        prompt_log_prob = (math.log(tales.choice_distribution("character")[choices["character"]])
                           + math.log(tales.choice_distribution("place", given=choices)[choices["place"]]))
        assert math.isclose(tales.prompt_log_prob(story["prompt"]), prompt_log_prob, rel_tol=1e-12)
        k = int(choices["middle_count"])
        assert {f"action_{i}" for i in range(1, k + 1)} <= set(choices) and f"action_{k + 1}" not in choices


def test_unique_derivations(tales):
    # Every sentence of every prompt is checked to have one derivation.
    assert tales.check_unique_derivations() > 10_000


def test_ambiguous_grammar_is_caught(monkeypatch):
    # "Then" + "the fox the fox ran" and "Then the fox" + "ran" write the same sentence.
    monkeypatch.setattr(tinytales, "CONNECTIVES", ["Then", "Then the fox"])
    monkeypatch.setitem(tinytales.ACTIONS, "forest", ["ran", "the fox ran"])
    with pytest.raises(RuntimeError, match="two derivations"):
        TinyTales().check_unique_derivations()


def test_sentence_with_inner_full_stop_is_caught(monkeypatch):
    monkeypatch.setitem(tinytales.ENDINGS, "glad", ["The end. Really."])
    with pytest.raises(RuntimeError, match="only '.'"):
        TinyTales().check_unique_derivations()


def test_story_changed_by_one_word_is_impossible(tales, stories, parsed):
    rng = random.Random(0)
    for story in stories[:300]:
        words = story["completion"].split(" ")
        i = rng.randrange(1, len(words))
        words[i] = "zebra" + ("." if words[i].endswith(".") else "")
        changed = " ".join(words)
        assert tales.log_prob(story["prompt"], changed) == -math.inf
        assert tales.parse(story["prompt"], changed) is None
    prompt = "Title: The fox and the forest.\nStory:"
    story = (" Once upon a time, a small fox lived in the forest. Then the fox climbed a tall tree."
             " At the end of the day, the fox felt sad. The end.")
    assert math.isfinite(tales.log_prob(prompt, story))
    valid_looking_changes = [
        story.replace("Then the fox", "Then the owl"),           # a character, but not this prompt's
        story.replace("a small fox", "an small fox"),            # a word of the grammar, wrong article
        story.replace("a small fox", "a happy fox"),             # a feeling, not an adjective
        story.replace("climbed a tall tree", "climbed a tall hill"),
        story.replace("climbed a tall tree", "built a sand castle"),  # a beach action in the forest
        story.replace("The end.", "And they all lived happily ever after."),  # a glad ending after sad
        story.replace("The end.", "the end."),
        story.replace(" Then", "  Then"),
        story[:-len(" The end.")],                              # no ending sentence
        story[1:],                                               # no leading space
    ]
    for changed in valid_looking_changes:
        assert changed != story
        assert tales.log_prob(prompt, changed) == -math.inf, changed
        assert tales.parse(prompt, changed) is None
    assert tales.log_prob("Title: The fox and the moon.\nStory:", story) == -math.inf
    assert tales.prompt_log_prob("Title: The fox and the moon.\nStory:") == -math.inf


def test_entropy_matches_monte_carlo(tales, stories):
    neg_log_probs = [-tales.log_prob(s["prompt"], s["completion"]) for s in stories]
    standard_error = statistics.stdev(neg_log_probs) / math.sqrt(len(neg_log_probs))
    assert abs(statistics.mean(neg_log_probs) - tales.entropy()) < 4 * standard_error
    prompt_neg_log_probs = [-tales.prompt_log_prob(s["prompt"]) for s in stories]
    standard_error = statistics.stdev(prompt_neg_log_probs) / math.sqrt(len(prompt_neg_log_probs))
    assert abs(statistics.mean(prompt_neg_log_probs) - tales.prompt_entropy()) < 4 * standard_error


def test_flatter_exponent_has_higher_entropy_and_same_support(tales, stories):
    flat = TinyTales(zipf_exponent=0.3)
    assert flat.entropy() > tales.entropy()
    assert flat.prompt_entropy() > tales.prompt_entropy()
    assert flat.choice_distribution("opener")["Once upon a time,"] < tales.choice_distribution("opener")["Once upon a time,"]
    for s in stories[:50]:
        assert math.isfinite(flat.log_prob(s["prompt"], s["completion"]))


def test_seed_changes_samples_not_probabilities(tales, stories):
    other = TinyTales(seed=5)
    for s in stories[:20]:
        assert other.log_prob(s["prompt"], s["completion"]) == tales.log_prob(s["prompt"], s["completion"])
    assert other.entropy() == tales.entropy()
    assert TinyTales(seed=3).sample(20) == TinyTales(seed=3).sample(20)
    assert TinyTales(seed=3).sample(20) != TinyTales(seed=4).sample(20)
    instance = TinyTales(seed=3)
    first = instance.sample(20)
    instance.sample(5)
    assert instance.sample(20) == first  # the same call gives the same stories, whatever ran before it
    assert TinyTales(seed=1).sample(20, seed=7) == TinyTales(seed=2).sample(20, seed=7)


def test_story_format(tales, stories):
    vocabulary = tales.vocabulary()
    assert 200 <= len(vocabulary) <= 2000
    for s in stories[:2000]:
        assert set(s) == {"prompt", "completion"}
        assert re.fullmatch(r"Title: The [a-z]+ and the [a-z]+\.\nStory:", s["prompt"])
        assert s["completion"].startswith(" ") and not s["completion"].startswith("  ")
        text = s["prompt"] + s["completion"]
        assert text.isascii()
        assert 2 <= s["completion"].count(". ") + 1 <= 6
        assert 25 <= len(s["completion"].split()) <= 70
        assert {w.lower() for w in re.findall(r"[A-Za-z]+", text)} <= vocabulary


def test_splits_are_fixed_and_separate():
    splits = TinyTales(seed=0).splits(train=200, valid=30, test=30)
    assert {k: len(v) for k, v in splits.items()} == {"train": 200, "valid": 30, "test": 30}
    assert splits == TinyTales(seed=0).splits(train=200, valid=30, test=30)
    assert splits != TinyTales(seed=1).splits(train=200, valid=30, test=30)
    # each split has its own stream: no draw shared, and valid/test do not move with the train size
    assert splits["valid"] != splits["train"][:30] and splits["test"] != splits["valid"]
    assert TinyTales(seed=0).splits(train=50, valid=30, test=30)["valid"] == splits["valid"]
    assert TinyTales(seed=0).sample(30) != splits["train"][:30]


def test_pretraining_text():
    texts = pretraining_text(300, seed=0)
    assert len(texts) == 300 and texts == pretraining_text(300, seed=0)
    flat, sharp = TinyTales(zipf_exponent=0.3), TinyTales()
    for text in texts:
        prompt, completion = text.split("\nStory:")
        assert math.isfinite(flat.log_prob(prompt + "\nStory:", completion))
    share = sum(" Once upon a time," in t for t in texts) / len(texts)
    assert share < sharp.choice_distribution("opener")["Once upon a time,"] - 0.1


@pytest.mark.parametrize("call, match", [
    (lambda t: t.sample(0), r"n must be a positive int \(>= 1\)"),
    (lambda t: t.sample(2.0), r"n must be a positive int \(>= 1\)"),
    (lambda t: t.sample(2, seed="x"), "seed"),
    (lambda t: t.log_prob(None, " x."), "prompt must be a str"),
    (lambda t: t.log_prob("Title:", 3), "completion must be a str"),
    (lambda t: t.parse(b"Title:", " x."), "prompt must be a str"),
    (lambda t: t.prompt_log_prob(1), "prompt must be a str"),
    (lambda t: t.choice_distribution("hero"), "Use one of .*opener"),
    (lambda t: t.choice_distribution("action", given={"place": "moon"}), "valid 'place'"),
    (lambda t: t.entropy(prompt="Title: nothing"), "cannot make this prompt"),
    (lambda t: t.splits(train=-1), "train"),
    (lambda t: t.enumerate_completions("Title: The fox and the forest.\nStory:"), "exceed limit"),
    (lambda t: TinyTales(zipf_exponent=-1.0), "zipf_exponent"),
    (lambda t: TinyTales(seed=1.5), "seed"),
    (lambda t: TinyTales(max_options=0), "max_options"),
    (lambda t: pretraining_text(0), r"n_stories must be a positive int \(>= 1\)"),
])
def test_bad_input_raises_value_error(tales, call, match):
    with pytest.raises(ValueError, match=match):
        call(tales)
