"""TinyTales: a corpus of short stories whose true distribution q is known exactly.

Chapter 3 introduces it, and every chapter after it that trains a tiny model uses it as the fine-tuning data.
Because every story comes from a small probabilistic grammar, we can score any text under the *true* distribution
(`log_prob`), compute the exact entropy of the data (`entropy`), and read off how often each formulaic choice
really occurs (`choice_distribution`). A fine-tuned model that opens 95% of its stories with
"Once upon a time," while the data does so about a third of the time is then plainly visible.

A story is a chain of choices. The prompt carries two of them, the rest go into the completion:

    prompt:     Title: The {character} and the {place}.\\nStory:
    completion: " {opener} a {adjective} {character} lived {place phrase}."     (opening sentence)
                " {connective} the {character} {action}."  x middle_count      (middle sentences)
                " At the end of the day, the {character} felt {feeling}."        (feeling sentence)
                " {ending}"                                                      (ending sentence)

Every choice point has an ordered option list. Option r (counting from 1) gets weight
1 / r**zipf_exponent, so the first options are the frequent, formulaic ones and the rest form a
long tail. Three choices depend on an earlier one: the place on the character (its home comes
first), the actions on the place, and the ending on the feeling (through the feeling's mood).
"""
from __future__ import annotations

import bisect
import itertools
import json
import math
import random
import re
from pathlib import Path

from dftlab.validation import check_int, check_number

# ---------------------------------------------------------------------------------------------
# The grammar, as plain data in assets/tinytales/grammar.json. Order matters: the first option of each
# list is the most frequent.
# ---------------------------------------------------------------------------------------------
_GRAMMAR = json.loads((Path(__file__).resolve().parent / "assets" / "tinytales" / "grammar.json").read_text("utf-8"))
PROMPT_TEMPLATE = _GRAMMAR["prompt_template"]
OPENING_TEMPLATE = _GRAMMAR["opening_template"]
MIDDLE_TEMPLATE = _GRAMMAR["middle_template"]
FEELING_TEMPLATE = _GRAMMAR["feeling_template"]
CHARACTERS = _GRAMMAR["characters"]        # character -> home place; the home is the most likely place for it
PLACES = _GRAMMAR["places"]                # place (the title word) -> where the character lives (the opening's phrase)
OPENERS = _GRAMMAR["openers"]
ADJECTIVES = _GRAMMAR["adjectives"]
MIDDLE_COUNTS = _GRAMMAR["middle_counts"]  # middle sentences; stories have middle_count + 3 sentences
CONNECTIVES = _GRAMMAR["connectives"]
ACTIONS = _GRAMMAR["actions"]              # place -> what a character can do there
FEELINGS = _GRAMMAR["feelings"]            # feeling -> mood; the ending depends on the feeling through its mood
ENDINGS = _GRAMMAR["endings"]              # mood -> endings
CHOICE_PARENTS = _GRAMMAR["choice_parents"]  # choice point -> the earlier choice it depends on (None: nothing)
DEFAULT_ZIPF_EXPONENT = 1.1
PRETRAINING_ZIPF_EXPONENT = 0.3


def _option_lists(name: str) -> dict:
    """parent option -> ordered option list for choice point `name` (parent None if independent)."""
    if name == "character":
        return {None: list(CHARACTERS)}
    if name == "place":  # the character's home first, the other places in table order
        return {c: [home] + [p for p in PLACES if p != home] for c, home in CHARACTERS.items()}
    if name == "action":
        return dict(ACTIONS)
    if name == "ending":
        return {feeling: ENDINGS[mood] for feeling, mood in FEELINGS.items()}
    flat = {"opener": OPENERS, "adjective": ADJECTIVES, "middle_count": MIDDLE_COUNTS,
            "connective": CONNECTIVES, "feeling": list(FEELINGS)}
    return {None: flat[name]}


def zipf_probabilities(n_options: int, zipf_exponent: float) -> list[float]:
    """Probabilities proportional to 1 / rank**zipf_exponent for ranks 1..n_options."""
    check_int(n_options, "n_options", hint="The number of options.")
    check_number(zipf_exponent, "zipf_exponent", hint=f"0 is uniform, {DEFAULT_ZIPF_EXPONENT} the default.")
    weights = [rank ** -zipf_exponent for rank in range(1, n_options + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def _entropy(probabilities) -> float:
    return -sum(p * math.log(p) for p in probabilities if p > 0)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


class TinyTales:
    """The TinyTales story generator with exact probabilities (see the module docstring).

    `seed` only picks which stories are drawn; the grammar and its probabilities depend on
    `zipf_exponent` alone (1.1: formulaic fine-tuning data; 0.3: flatter pretraining data).
    `max_options` keeps only the first options of every list, giving a grammar small enough to
    enumerate in full (tests and exercises use it).
    """

    def __init__(self, seed: int = 0, zipf_exponent: float = DEFAULT_ZIPF_EXPONENT,
                 max_options: int | None = None):
        check_int(seed, "TinyTales(seed)", None)
        check_number(zipf_exponent, "TinyTales(zipf_exponent)", 0.0,
                     hint=f"0 is uniform, {DEFAULT_ZIPF_EXPONENT} the default.")
        if max_options is not None:
            check_int(max_options, "TinyTales(max_options)", hint="Or None for every option.")
        self.seed, self.zipf_exponent, self.max_options = seed, float(zipf_exponent), max_options
        self.choice_names = list(CHOICE_PARENTS)
        # name -> parent option -> (options, probabilities, cumulative probabilities, {option: log prob})
        self._tables = {}
        for name in self.choice_names:
            self._tables[name] = {}
            for parent, options in _option_lists(name).items():
                options = options[:max_options]
                probs = zipf_probabilities(len(options), self.zipf_exponent)
                log_probs = {option: math.log(p) for option, p in zip(options, probs)}
                if len(log_probs) != len(options):
                    raise RuntimeError(f"TinyTales grammar bug: repeated option in {name!r}.")
                self._tables[name][parent] = (options, probs, list(itertools.accumulate(probs)), log_probs)
        self._prompts = {}  # prompt text -> (character, place)
        for character in self._tables["character"][None][0]:
            for place in self._tables["place"][character][0]:
                text = PROMPT_TEMPLATE.format(character=character, place=place)
                self._check_new(self._prompts, text, (character, place), "prompt")
        self._sentence_cache = {}

    # --- rendering and parsing ----------------------------------------------------------------
    @staticmethod
    def _check_new(table: dict, text: str, value, what: str) -> None:
        """Add text -> value, refusing anything that would make a derivation ambiguous."""
        if not text.isascii():
            raise RuntimeError(f"TinyTales grammar bug: non-ASCII {what} {text!r}.")
        if what != "prompt" and (text.find(".") != len(text) - 1 or text != text.strip()):
            raise RuntimeError(f"TinyTales grammar bug: a sentence must end with its only '.': {text!r}.")
        if text in table and table[text] != value:
            raise RuntimeError(f"TinyTales grammar bug: {what} {text!r} has two derivations.")
        table[text] = value

    def _sentences(self, character: str, place: str) -> dict:
        """For one prompt: each sentence role -> {sentence text: the choices that make it}.

        Building these tables proves unique derivations: each table is checked to be one-to-one,
        no sentence has a '.' before its end (so splitting a completion into sentences is
        unique), and the number of sentences fixes which role each sentence plays.
        """
        key = (character, place)
        if key not in self._sentence_cache:
            roles = {"opening": {}, "middle": {}, "feeling": {}, "ending": {}}
            for opener, adjective in itertools.product(self._options("opener"), self._options("adjective")):
                text = OPENING_TEMPLATE.format(opener=opener, article=_article(adjective), adjective=adjective,
                                               character=character, place_phrase=PLACES[place])
                self._check_new(roles["opening"], text, (opener, adjective), "opening sentence")
            for connective, action in itertools.product(self._options("connective"), self._options("action", place)):
                text = MIDDLE_TEMPLATE.format(connective=connective, character=character, action=action)
                self._check_new(roles["middle"], text, (connective, action), "middle sentence")
            for feeling in self._options("feeling"):
                text = FEELING_TEMPLATE.format(character=character, feeling=feeling)
                self._check_new(roles["feeling"], text, feeling, "feeling sentence")
                for ending in self._options("ending", feeling):
                    self._check_new(roles["ending"], ending, ending, "ending sentence")
            self._sentence_cache[key] = roles
        return self._sentence_cache[key]

    def check_unique_derivations(self) -> int:
        """Build the sentence tables of every prompt; raise RuntimeError on any ambiguity.

        Returns the number of (prompt, sentence) entries checked.
        """
        return sum(sum(len(table) for table in self._sentences(*key).values()) for key in self._prompts.values())

    def _options(self, name: str, parent: str | None = None) -> list[str]:
        return self._tables[name][parent][0]

    def _render(self, choices: dict) -> dict:
        c, p = choices["character"], choices["place"]
        sentences = [OPENING_TEMPLATE.format(opener=choices["opener"], article=_article(choices["adjective"]),
                                             adjective=choices["adjective"], character=c, place_phrase=PLACES[p])]
        for i in range(1, int(choices["middle_count"]) + 1):
            sentences.append(MIDDLE_TEMPLATE.format(connective=choices[f"connective_{i}"], character=c,
                                                    action=choices[f"action_{i}"]))
        sentences += [FEELING_TEMPLATE.format(character=c, feeling=choices["feeling"]), choices["ending"]]
        return {"prompt": PROMPT_TEMPLATE.format(character=c, place=p), "completion": " " + " ".join(sentences)}

    def parse(self, prompt: str, completion: str) -> dict | None:
        """The choices behind a story (choice name -> option), or None if the grammar cannot make it.

        Repeated choices are numbered: `connective_1`, `action_1`, ..., up to `middle_count`.
        """
        _check_text(prompt, "prompt")
        _check_text(completion, "completion")
        if prompt not in self._prompts or not completion.startswith(" ") or not completion.endswith("."):
            return None
        character, place = self._prompts[prompt]
        roles = self._sentences(character, place)
        sentences = [piece + "." for piece in completion[1:-1].split(". ")]
        middle_count = str(len(sentences) - 3)
        if middle_count not in self._tables["middle_count"][None][3]:
            return None
        opening, middles, feeling, ending = sentences[0], sentences[1:-2], sentences[-2], sentences[-1]
        if opening not in roles["opening"] or feeling not in roles["feeling"] \
                or any(m not in roles["middle"] for m in middles):
            return None
        choices = {"character": character, "place": place}
        choices["opener"], choices["adjective"] = roles["opening"][opening]
        choices["middle_count"] = middle_count
        for i, sentence in enumerate(middles, start=1):
            choices[f"connective_{i}"], choices[f"action_{i}"] = roles["middle"][sentence]
        choices["feeling"] = roles["feeling"][feeling]
        if ending not in self._tables["ending"][choices["feeling"]][3]:
            return None
        choices["ending"] = ending
        return choices

    # --- probabilities --------------------------------------------------------------------------
    def _choice_log_prob(self, name: str, choices: dict) -> float:
        """log q(this choice | its parent choice), for a (possibly numbered) choice name."""
        base = name.rsplit("_", 1)[0] if name[-1].isdigit() else name
        parent = CHOICE_PARENTS[base]
        return self._tables[base][choices[parent] if parent else None][3][choices[name]]

    def log_prob(self, prompt: str, completion: str) -> float:
        """Exact log q(completion | prompt) in nats; -inf for any text the grammar cannot make."""
        choices = self.parse(prompt, completion)
        if choices is None:
            return -math.inf
        return sum(self._choice_log_prob(name, choices) for name in choices if name not in ("character", "place"))

    def prompt_log_prob(self, prompt: str) -> float:
        """Exact log q(prompt) in nats: log q(character) + log q(place | character)."""
        _check_text(prompt, "prompt")
        if prompt not in self._prompts:
            return -math.inf
        character, place = self._prompts[prompt]
        return (self._tables["character"][None][3][character] + self._tables["place"][character][3][place])

    def choice_distribution(self, name: str, given: dict | None = None) -> dict[str, float]:
        """The exact distribution of choice point `name` (see `choice_names`).

        Without `given`, the marginal: a parent choice (the place of an action, the feeling of an
        ending) is summed out with its own marginal. With `given` (a dict holding the parent's
        option, e.g. the output of `parse`), the conditional distribution given that parent.
        For `connective` and `action` this is the distribution of any one middle sentence.
        """
        if name not in CHOICE_PARENTS:
            raise ValueError(f"choice_distribution(name={name!r}): unknown choice point. "
                             f"Use one of {self.choice_names}.")
        parent = CHOICE_PARENTS[name]
        if parent is None:
            options, probs = self._tables[name][None][:2]
            return dict(zip(options, probs))
        if given is not None:
            if not isinstance(given, dict) or given.get(parent) not in self._tables[name]:
                raise ValueError(f"choice_distribution({name!r}, given=...) needs a dict with a valid "
                                 f"{parent!r} option, e.g. given={{{parent!r}: "
                                 f"{next(iter(self._tables[name]))!r}}}; got {given!r}.")
            options, probs = self._tables[name][given[parent]][:2]
            return dict(zip(options, probs))
        marginal = {}
        for parent_option, parent_prob in self.choice_distribution(parent).items():
            for option, prob in zip(*self._tables[name][parent_option][:2]):
                marginal[option] = marginal.get(option, 0.0) + parent_prob * prob
        return marginal

    def entropy(self, prompt: str | None = None) -> float:
        """Exact H(completion | prompt) in nats, averaged over prompts (or for one `prompt`).

        Method: derivations are unique, so the entropy of the text equals the entropy of its
        choice sequence, and the chain rule splits that into one term per choice point:
          H = H(opener) + H(adjective) + H(middle_count)
              + E[middle_count] * (H(connective) + H(action | place))
              + H(feeling) + sum_f q(f) H(ending | f).
        The middle sentences are drawn independently given the place, so each adds the same
        term and their count contributes its mean. Only the action term depends on the prompt,
        which is then averaged with weights q(prompt).
        """
        def table_entropy(name, parent=None):
            return _entropy(self._tables[name][parent][1])

        count_dist = self.choice_distribution("middle_count")
        mean_middle = sum(int(k) * p for k, p in count_dist.items())
        fixed = (table_entropy("opener") + table_entropy("adjective") + table_entropy("middle_count")
                 + mean_middle * table_entropy("connective") + table_entropy("feeling")
                 + sum(p * table_entropy("ending", f) for f, p in self.choice_distribution("feeling").items()))
        if prompt is not None:
            _check_text(prompt, "prompt")
            if prompt not in self._prompts:
                raise ValueError(f"entropy(prompt={prompt!r}): the grammar cannot make this prompt. "
                                 f"Pass a prompt from sample() or omit it for the average.")
            return fixed + mean_middle * table_entropy("action", self._prompts[prompt][1])
        places = self.choice_distribution("place")
        return fixed + mean_middle * sum(p * table_entropy("action", place) for place, p in places.items())

    def prompt_entropy(self) -> float:
        """Exact H(prompt) in nats = H(character) + sum_c q(c) H(place | c), by the chain rule."""
        characters = self.choice_distribution("character")
        return _entropy(characters.values()) + sum(
            p * _entropy(self._tables["place"][c][1]) for c, p in characters.items())

    # --- drawing stories --------------------------------------------------------------------------
    def _draw(self, rng: random.Random, name: str, parent: str | None = None) -> str:
        options, _, cumulative, _ = self._tables[name][parent]
        # min() guards the last bucket against a cumulative sum that rounds to just below 1
        return options[min(bisect.bisect_right(cumulative, rng.random()), len(options) - 1)]

    def _sample_stream(self, stream: str, n: int) -> list[dict]:
        rng = random.Random(stream)  # a str seed is hashed with sha512: stable across runs and machines
        stories = []
        for _ in range(n):
            choices = {"character": self._draw(rng, "character")}
            choices["place"] = self._draw(rng, "place", choices["character"])
            choices["opener"] = self._draw(rng, "opener")
            choices["adjective"] = self._draw(rng, "adjective")
            choices["middle_count"] = self._draw(rng, "middle_count")
            for i in range(1, int(choices["middle_count"]) + 1):
                choices[f"connective_{i}"] = self._draw(rng, "connective")
                choices[f"action_{i}"] = self._draw(rng, "action", choices["place"])
            choices["feeling"] = self._draw(rng, "feeling")
            choices["ending"] = self._draw(rng, "ending", choices["feeling"])
            stories.append(self._render(choices))
        return stories

    def sample(self, n: int, seed: int | None = None) -> list[dict]:
        """Draw n stories as {"prompt", "completion"} dicts (completion starts with a space).

        Without `seed`, the stories come from the instance's own stream: the same call gives the same
        stories whatever ran before it (pass different seeds for fresh stories). With `seed`, the stories
        depend on that seed only.
        """
        _check_count(n, "n")
        if seed is None:
            stream = f"tinytales/sample/{self.seed}/0"  # "/0": the stream the first call always used
        else:
            stream = f"tinytales/sample-seed/{check_int(seed, 'sample(seed)', None, hint='Or None.')}"
        return self._sample_stream(stream, n)

    def splits(self, train: int = 3000, valid: int = 300, test: int = 300) -> dict[str, list[dict]]:
        """Fixed train/valid/test sets: each is the start of its own stream seeded by (seed, split).

        So the valid and test sets stay the same when the train size changes, and no draw is
        shared between splits. Identical stories can still occur in two splits, because the
        formulaic stories are frequent: that is part of what the data looks like.
        """
        sizes = {"train": train, "valid": valid, "test": test}
        for name, size in sizes.items():
            check_int(size, f"splits({name})", 0)
        if sum(sizes.values()) < 1:
            raise ValueError("splits(): all sizes are 0; ask for at least one story.")
        return {name: self._sample_stream(f"tinytales/split/{self.seed}/{name}", size)
                for name, size in sizes.items()}

    def enumerate_completions(self, prompt: str, limit: int = 100_000) -> dict[str, float]:
        """Every completion of `prompt` -> its log q, for grammars small enough (see max_options)."""
        _check_text(prompt, "prompt")
        if prompt not in self._prompts:
            raise ValueError(f"enumerate_completions(prompt={prompt!r}): the grammar cannot make this prompt.")
        character, place = self._prompts[prompt]
        per_middle = len(self._options("connective")) * len(self._options("action", place))
        size = (len(self._options("opener")) * len(self._options("adjective"))
                * sum(per_middle ** int(k) for k in self._options("middle_count"))
                * sum(len(self._options("ending", f)) for f in self._options("feeling")))
        if size > limit:
            raise ValueError(f"enumerate_completions: {size} completions exceed limit={limit}. "
                             f"Use TinyTales(max_options=2) for an enumerable grammar, or raise limit.")
        completions = {}
        base = {"character": character, "place": place}
        for opener, adjective, k, feeling in itertools.product(
                self._options("opener"), self._options("adjective"),
                self._options("middle_count"), self._options("feeling")):
            middle_pairs = itertools.product(self._options("connective"), self._options("action", place))
            for middles, ending in itertools.product(itertools.product(list(middle_pairs), repeat=int(k)),
                                                     self._options("ending", feeling)):
                choices = dict(base, opener=opener, adjective=adjective, middle_count=k, feeling=feeling,
                               ending=ending)
                for i, (connective, action) in enumerate(middles, start=1):
                    choices[f"connective_{i}"], choices[f"action_{i}"] = connective, action
                text = self._render(choices)["completion"]
                if text in completions:
                    raise RuntimeError(f"TinyTales grammar bug: {text!r} has two derivations.")
                completions[text] = sum(self._choice_log_prob(name, choices) for name in choices
                                        if name not in base)
        return completions

    def vocabulary(self) -> set[str]:
        """Every distinct word (lower-cased) the grammar can write, prompts included."""
        texts = [PROMPT_TEMPLATE, OPENING_TEMPLATE, MIDDLE_TEMPLATE, FEELING_TEMPLATE, "a an"]
        texts += list(PLACES.values())
        for name in self.choice_names:
            for options, *_ in self._tables[name].values():
                texts += options
        words = set()
        for text in texts:
            words.update(w.lower() for w in re.findall(r"[A-Za-z]+", re.sub(r"\{\w+\}", " ", text)))
        return words


def pretraining_text(n_stories: int, seed: int = 0, zipf_exponent: float = PRETRAINING_ZIPF_EXPONENT) -> list[str]:
    """TinyTales stories (prompt + completion) from a flatter grammar, for the base model's pretraining.

    The flat exponent (0.3) teaches the base model the domain (words, templates) but not the
    fine-tuning frequencies, so fine-tuning still has something to learn. The stream differs from
    those of `sample` and `splits`.
    """
    _check_count(n_stories, "n_stories")
    stories = TinyTales(seed, zipf_exponent)._sample_stream(f"tinytales/pretraining/{seed}", n_stories)
    return [story["prompt"] + story["completion"] for story in stories]


def _check_count(n, argument: str) -> None:
    check_int(n, argument, hint="The number of stories.")


def _check_text(text, argument: str) -> None:
    if not isinstance(text, str):
        raise ValueError(f"{argument} must be a str, got {type(text).__name__}. "
                         f"Pass the text of a story, e.g. from TinyTales().sample(1)[0][{argument!r}].")
