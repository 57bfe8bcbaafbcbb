"""dftlab.course.checks: the engine, the registry and the chapter modules (ch00 to ch09).

Right answers pass, stubs are "not attempted", typical mistakes are named, nothing raises; the package is an engine,
one module per chapter, and reference answers that call the package. The tests are parametrised over the registered
exercises, so each chapter module is checked through the exercises it registers.

The right answers come from the solution notebooks themselves (each function-definition cell is run in
a namespace with the notebook's imports), so these tests also prove that the solutions pass."""

import ast
import math
import re
import threading
import time
from collections import Counter
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import dftlab.course.checks as checks
from dftlab import metrics, objectives, toy
from dftlab.course import exercises
from dftlab.course.checks import EXERCISES, CheckResult, check, ch03, ch04, ch06, engine
from dftlab.course.checks.engine import FunctionExercise
from dftlab.metrics.words import words as course_words


ROOT = Path(__file__).resolve().parents[1]
FUNCTION_IDS = [exercise_id for exercise_id, text in EXERCISES.items() if text.startswith("implement")]


def _check_calls(notebook) -> list[tuple[str, ast.Call]]:
    """Every `check("id", ...)` call in the notebook's code cells, as (id, call node)."""
    calls = []
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                calls.append((node.args[0].value, node))
    return calls


def notebook_functions(folder: str) -> dict:
    """{exercise id: the function that folder's notebooks pass to `check`}, built by running the import
    cell and the function-definition cells of each notebook."""
    functions = {}
    for path in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        namespace = {}
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            statements = ast.parse(cell.source).body
            if statements and all(isinstance(s, (ast.Import, ast.ImportFrom, ast.FunctionDef)) for s in statements) \
                    and "google.colab" not in cell.source:
                exec(compile(cell.source, str(path), "exec"), namespace)
        for exercise_id, call in _check_calls(notebook):
            if len(call.args) == 2 and isinstance(call.args[1], ast.Name) and not call.keywords:
                functions[exercise_id] = namespace[call.args[1].id]
    return functions


SOLUTIONS = notebook_functions("solutions")


def test_every_function_exercise_has_a_solution():
    assert sorted(SOLUTIONS) == sorted(FUNCTION_IDS)


@pytest.mark.parametrize("exercise_id", FUNCTION_IDS)
def test_the_solution_passes(exercise_id):
    result = check(exercise_id, SOLUTIONS[exercise_id])
    assert isinstance(result, CheckResult)
    assert result.passed, result.feedback
    assert result.status == "passed" and "correct" in result.feedback


def test_independent_hand_written_answers_pass():
    """Written here without torch helpers, so a wrong reference in the checker would show up."""
    def entropy(probs):
        rows = probs.reshape(-1, probs.shape[-1]).tolist()
        return torch.tensor([-sum(p * math.log(p) for p in row if p > 0) for row in rows]).reshape(probs.shape[:-1])

    def distinct_n(texts, n):
        split = [course_words(t) for t in texts]
        grams = Counter(tuple(w[i:i + n]) for w in split for i in range(len(w) - n + 1))
        return len(grams) / sum(grams.values())

    assert check("ch01.entropy", entropy).passed
    assert check("ch06.distinct_n", distinct_n).passed


@pytest.mark.parametrize("exercise_id", FUNCTION_IDS)
def test_a_stub_is_not_attempted(exercise_id):
    def stub(*args):
        raise NotImplementedError("hint: think first")

    result = check(exercise_id, stub)
    assert not result.passed and not result.attempted
    assert result.status == "not attempted"
    assert "not attempted yet" in result.feedback and "hint: think first" in result.feedback


@pytest.mark.parametrize("exercise_id, stub", sorted(notebook_functions("exercises").items()))
def test_the_generated_exercise_stubs_are_not_attempted(exercise_id, stub):
    result = check(exercise_id, stub)
    assert not result.attempted and "not attempted yet" in result.feedback
    assert exercises.STUB_MESSAGE in result.feedback  # the hint itself is folded below the cell, not in the code


def _nll_terms(logits, targets):
    return -torch.log_softmax(logits, -1)[torch.arange(len(targets)), targets]


def _dft_no_detach(logits, targets):
    keep = targets != -100
    log_p = torch.log_softmax(logits[keep], -1)[torch.arange(int(keep.sum())), targets[keep]]
    return -(log_p.exp() * log_p).mean()


def _dft_all_positions(logits, targets):
    keep = targets != -100
    log_p = torch.log_softmax(logits[keep], -1)[torch.arange(int(keep.sum())), targets[keep]]
    return -(log_p.exp().detach() * log_p).sum() / len(targets)


def _dft_one_minus_p(logits, targets):
    keep = targets != -100
    log_p = torch.log_softmax(logits[keep], -1)[torch.arange(int(keep.sum())), targets[keep]]
    return -((1 - log_p.exp()).detach() * log_p).mean()


def _one_hot(probs, target):
    e = torch.zeros_like(probs)
    e[target] = 1.0
    return e


def _distinct_per_text(texts, n):
    ratios = []
    for text in texts:
        words = course_words(text)
        grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
        if grams:
            ratios.append(len(set(grams)) / len(grams))
    return sum(ratios) / len(ratios)


def _distinct_joined(texts, n):
    words = course_words(" ".join(texts))
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams)


def _distinct_on_whitespace(texts, n):
    grams = [tuple(t.split()[i:i + n]) for t in texts for i in range(len(t.split()) - n + 1)]
    return len(set(grams)) / len(grams)


def _l2_on_whitespace(samples, reference):
    def freq(texts):
        c = Counter(w for t in texts for w in t.split())
        return {w: k / sum(c.values()) for w, k in c.items()}
    p, q = freq(samples), freq(reference)
    return math.sqrt(sum((p.get(w, 0) - q.get(w, 0)) ** 2 for w in p.keys() | q.keys()))


def _counts_l2(samples, reference):
    p = Counter(w for t in samples for w in course_words(t))
    q = Counter(w for t in reference for w in course_words(t))
    return math.sqrt(sum((p[w] - q[w]) ** 2 for w in p.keys() | q.keys()))


def _squared_l2(samples, reference):
    def freq(texts):
        c = Counter(w for t in texts for w in course_words(t))
        return {w: k / sum(c.values()) for w, k in c.items()}
    p, q = freq(samples), freq(reference)
    return sum((p.get(w, 0) - q.get(w, 0)) ** 2 for w in p.keys() | q.keys())


def _nucleus_first(logits, temperature, top_p):
    probs = torch.softmax(logits, -1)  # the nucleus of the *untempered* distribution
    sorted_probs, order = torch.sort(probs, -1, descending=True)
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, sorted_probs.cumsum(-1) - sorted_probs < top_p)
    tempered = torch.softmax(logits / temperature, -1) * keep
    return tempered / tempered.sum(-1, keepdim=True)


def _no_renormalisation(logits, temperature, top_p):
    probs = torch.softmax(logits / temperature, -1)
    sorted_probs, order = torch.sort(probs, -1, descending=True)
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, sorted_probs.cumsum(-1) - sorted_probs < top_p)
    return probs * keep


def _mask_in_place(input_ids, prompt_length):
    input_ids[:prompt_length] = -100
    return input_ids


def _penalty_in_place(logits, previous_ids, penalty):
    for token in set(previous_ids.tolist()):
        logits[token] = logits[token] / penalty if logits[token] > 0 else logits[token] * penalty
    return logits


def _pair_counts(tokens, vocab_size):
    pairs = [(a, b) for a, b in zip(tokens[:-1].tolist(), tokens[1:].tolist())]
    return torch.tensor([[pairs.count((a, b)) for b in range(vocab_size)] for a in range(vocab_size)], dtype=torch.float64)


def _overuse_by_texts(texts, word):
    from dftlab.metrics.formulaic import english_frequency, words
    return sum(words(t).count(word) for t in texts) / len(texts) / english_frequency(word)


def _overuse_per_text(texts, word):
    from dftlab.metrics.formulaic import english_frequency, words
    return sum(words(t).count(word) / len(words(t)) for t in texts) / len(texts) / english_frequency(word)


def _list_rate_per_answer(texts):
    from dftlab.metrics.slop_score import slop_list_word_hits
    rates = [hits / words for hits, words in slop_list_word_hits(texts) if words]
    return sum(rates) / len(rates) * 1000


def _list_rate_split_words(texts):
    from dftlab.metrics.slop_score import slop_list_word_hits
    return sum(hits for hits, _ in slop_list_word_hits(texts)) / sum(len(t.split()) for t in texts) * 1000


def _pooled_list_share(texts):
    from dftlab.metrics.slop_score import slop_list_word_hits
    counts = slop_list_word_hits(texts)
    return sum(hits for hits, _ in counts) / sum(words for _, words in counts)


def _coverage_self_counted(reference, samples, k):
    radius = torch.cdist(reference, reference).sort(dim=1).values[:, k - 1]
    return (torch.cdist(samples, reference) <= radius).any(dim=1).double().mean().item()


def _nll_per_sequence(logits, labels):
    z, y = logits[:, :-1], labels[:, 1:]
    per_token = torch.nn.functional.cross_entropy(z.transpose(1, 2), y, ignore_index=-100, reduction="none")
    return (per_token.sum(1) / (y != -100).sum(1)).mean()


def _permutation_p(x, y, statistic, num_permutations, seed, strict=False, plus_one=True):
    import numpy as np
    pool, labels = np.concatenate([x, y]), np.arange(len(x) + len(y)) < len(x)
    observed, rng, values = statistic(x, y), np.random.default_rng(seed), []
    for _ in range(num_permutations):
        shuffled = rng.permutation(labels)
        values.append(statistic(pool[shuffled], pool[~shuffled]))
    count = sum(v > observed if strict else v >= observed for v in values)
    return (1 + count) / (1 + num_permutations) if plus_one else count / num_permutations


def _seed_values(results, objective, metric, decoding, base_model, steps):
    rows = results[(results["objective"] == objective) & (results["decoding"] == decoding)
                   & (results["base_model"] == base_model) & (results["steps"] == steps)]
    return rows.set_index("seed")[metric]


def _comparison_unpaired(results, metric, a, b, decoding, base_model, steps):
    from scipy import stats
    x = _seed_values(results, a, metric, decoding, base_model, steps)
    y = _seed_values(results, b, metric, decoding, base_model, steps)
    low, high = stats.ttest_ind(x, y, equal_var=False).confidence_interval()
    return x.mean() - y.mean(), low, high


def _comparison_numpy_std(results, metric, a, b, decoding, base_model, steps):
    from scipy import stats
    x = _seed_values(results, a, metric, decoding, base_model, steps)
    y = _seed_values(results, b, metric, decoding, base_model, steps)
    d = (x - y).dropna().to_numpy()
    half = stats.t.ppf(0.975, len(d) - 1) * d.std() / math.sqrt(len(d))
    return d.mean(), d.mean() - half, d.mean() + half


def _ece_by_hand(confidence, correct, bins, weighted=True, clip=True):
    confidence, correct = confidence.tolist(), [float(k) for k in correct.tolist()]
    groups = {}
    for c, k in zip(confidence, correct):
        b = int(c * bins)
        if b == bins and not clip:
            continue  # the mistake: a confidence of exactly 1 falls outside the last bin
        groups.setdefault(min(b, bins - 1), []).append((c, k))
    gaps = [(len(g), abs(sum(k for _, k in g) / len(g) - sum(c for c, _ in g) / len(g))) for g in groups.values()]
    if weighted:
        return sum(n * gap for n, gap in gaps) / sum(n for n, _ in gaps)
    return sum(gap for _, gap in gaps) / len(gaps)


def _opener_distance(openers, alpha, other_temperature=None, filtered=True):
    rows = openers[(openers["base_model"] == "tiny-gpt2") & (openers["steps"] == 200)] if filtered else openers
    def shares(objective, temperature):
        chosen = rows[(rows["objective"] == objective) & ((rows["temperature"] - temperature).abs() < 1e-9)]
        return chosen.groupby("opener")["share"].mean()
    trained = shares(f"power_{alpha:g}", 1.0)
    sampled = shares("nll", 1 - alpha if other_temperature is None else other_temperature)
    return 0.5 * float((trained - sampled.reindex(trained.index)).abs().sum())


MISTAKES = [
    # (exercise id, wrong answer, a phrase the feedback must contain)
    ("ch01.entropy", lambda p: -(p * torch.log2(p.clamp(min=1e-30))).sum(-1), "log base 2"),
    ("ch01.entropy", lambda p: (p * torch.log(p.clamp(min=1e-30))).sum(-1), "sign is flipped"),
    ("ch01.entropy", lambda p: -(p * torch.log(p)).sum(-1), "0 log 0"),
    ("ch01.entropy", lambda p: -(p * torch.log(p.clamp(min=1e-30))).sum(), "summed over every axis"),
    ("ch01.softmax_with_temperature", lambda z, t: torch.softmax(z, -1) / t, "applied temperature after softmax"),
    ("ch01.softmax_with_temperature", lambda z, t: torch.softmax(z * t, -1), "multiplied"),
    ("ch01.softmax_with_temperature", lambda z, t: torch.exp(z / t) / torch.exp(z / t).sum(-1, keepdim=True),
     "overflow"),
    ("ch01.top_k_filter", lambda z, k: z.masked_fill(z < torch.topk(z, k, -1).values[..., -1:], 0.0), "-inf"),
    ("ch01.top_k_filter", lambda z, k: z.masked_fill(z <= torch.topk(z, k, -1).values[..., -1:], -math.inf),
     "off by one"),
    ("ch01.top_k_filter", lambda z, k: torch.topk(z, k, -1).values, "only the k kept values"),
    ("ch02.categorical_mle", lambda s, v: torch.bincount(s, minlength=v).float(), "counts"),
    ("ch02.categorical_mle", lambda s, v: (torch.bincount(s, minlength=v) + 1.0) / (len(s) + v), "smoothed"),
    ("ch02.categorical_mle", lambda s, v: torch.bincount(s) / len(s), "minlength"),
    ("ch02.nll_loss", lambda z, y: _nll_terms(z, y).sum(), "summed instead of averaging"),
    ("ch02.nll_loss", lambda z, y: -z[torch.arange(len(y)), y].mean(), "raw logit"),
    ("ch02.nll_loss", lambda z, y: _nll_terms(z, y).mean().item(), "no gradient"),
    ("ch02.nll_loss", lambda z, y: -_nll_terms(z, y).mean(), "sign is flipped"),
    ("ch02.kl_divergence", lambda p, q: (torch.special.xlogy(q, q) - torch.special.xlogy(q, p)).sum(-1), "KL(q || p)"),
    ("ch02.kl_divergence", lambda p, q: (p * torch.log(p / q)).sum(-1), "0 log 0"),
    ("ch02.kl_divergence", lambda p, q: (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum(-1) / math.log(2),
     "log base 2"),
    ("ch01.top_k_filter", lambda z, k: torch.full_like(z, -math.inf).scatter(-1, torch.topk(z, min(k, z.shape[-1]), -1)
                                                                      .indices, torch.topk(z, min(k, z.shape[-1]), -1).values),
     "tied"),
    ("ch01.min_p_filter", lambda z, p: z.masked_fill(torch.softmax(z, -1) < p, -math.inf), "with p_base itself"),
    ("ch01.min_p_filter", lambda z, p: z.masked_fill(z < p * z.max(-1, keepdim=True).values, -math.inf),
     "compared the logits"),
    ("ch01.repetition_penalty", lambda z, ids, t: torch.where(torch.isin(torch.arange(len(z)), ids), z / t, z),
     "*negative* logit"),
    ("ch01.repetition_penalty", _penalty_in_place, "in place"),
    ("ch02.bigram_mle", _pair_counts, "pair counts"),
    ("ch02.bigram_mle", lambda t, v: _pair_counts(t, v) / _pair_counts(t, v).sum(-1, keepdim=True), "0 / 0 = nan"),
    ("ch02.bigram_mle", lambda t, v: _pair_counts(t, v) / (len(t) - 1), "joint frequency"),
    ("ch03.mask_prompt", lambda ids, n: torch.cat([torch.full((min(n + 1, len(ids)),), -100), ids[n + 1:]]),
     "one token too many (off by one)"),
    ("ch03.mask_prompt", lambda ids, n: ids.clone(), "forgot to mask the prompt"),
    ("ch03.mask_prompt", lambda ids, n: torch.cat([torch.zeros(n, dtype=ids.dtype), ids[n:]]), "-100"),
    ("ch03.mask_prompt", _mask_in_place, "in place"),
    ("ch03.shift_for_causal_lm", lambda z, y: (z, y), "did not shift"),
    ("ch03.shift_for_causal_lm", lambda z, y: (z[..., 1:, :], y[..., :-1]), "wrong way"),
    ("ch03.shift_for_causal_lm", lambda z, y: [z[:-1], y[1:]], "batch axis"),
    ("ch00.overuse_ratio", _overuse_by_texts, "number of texts"),
    ("ch00.overuse_ratio", _overuse_per_text, "averaged each text's frequency"),
    ("ch05.preference_optimum", lambda ref, r, beta: ref * torch.exp(r / beta), "did not normalise"),
    ("ch05.preference_optimum", lambda ref, r, beta: torch.softmax(r / beta, -1), "left out the reference"),
    ("ch06.coverage", _coverage_self_counted, "its own nearest neighbour"),
    ("ch06.coverage", lambda ref, samples, k: _coverage_self_counted(samples, ref, k + 1), "swapped the roles"),
    ("ch03.format_example", lambda p, c, eos, n: ((p + c)[:n], [-100] * len(p) + (p + c)[len(p):n]),
     "end-of-sequence"),
    ("ch03.format_example", lambda p, c, eos, n: ((p + c + [eos])[:n], (p + c + [eos])[:n]), "did not mask the prompt"),
    ("ch03.completion_nll", lambda z, y: torch.nn.functional.cross_entropy(z.reshape(-1, z.shape[-1]), y.reshape(-1)),
     "did not shift"),
    ("ch03.completion_nll", _nll_per_sequence, "averaged each sequence"),
    ("ch04.dft_loss", _dft_no_detach, "did you detach p"),
    ("ch04.dft_loss", _dft_all_positions, "included ignore_index targets"),
    ("ch04.dft_loss", lambda z, y: torch.nn.functional.cross_entropy(z, y), "plain NLL"),
    ("ch04.dft_loss", _dft_one_minus_p, "1 - p instead of p"),
    ("ch04.dft_logit_gradient", lambda p, y: p - _one_hot(p, y), "cross-entropy gradient"),
    ("ch04.dft_logit_gradient", lambda p, y: (1 + torch.log(p[y])) * p[y] * (p - _one_hot(p, y)), "stop-gradient"),
    ("ch04.dft_logit_gradient", lambda p, y: p[y] * (_one_hot(p, y) - p), "sign is flipped"),
    ("ch04.expected_calibration_error", lambda c, k, bins: _ece_by_hand(c, k, bins, weighted=False), "equal weights"),
    ("ch04.expected_calibration_error", lambda c, k, bins: _ece_by_hand(c, k, bins, clip=False), "exactly 1"),
    ("ch04.expected_calibration_error", lambda c, k, bins: abs(k.double().mean() - c.mean()), "overall accuracy"),
    ("ch05.power_fixed_point", lambda q, a: q ** (1 - a) / (q ** (1 - a)).sum(), "flattens it"),
    ("ch05.power_fixed_point", lambda q, a: q ** (1 / (1 - a)), "do not sum to 1"),
    ("ch05.power_fixed_point", lambda q, a: torch.softmax(q / (1 - a), -1), "*log*-probabilities"),
    ("ch05.dft_logit_step", lambda p, q, lr: lr * (q - p), "NLL step"),
    ("ch05.dft_logit_step", lambda p, q, lr: lr * (q - (q * p).sum()), "factor p_k"),
    ("ch05.dft_logit_step", lambda p, q, lr: lr * p * ((q * p).sum() - q), "sign is flipped"),
    ("ch05.temperature_match", lambda o, a: _opener_distance(o, a, other_temperature=1.0), "T = 1."),
    ("ch05.temperature_match", lambda o, a: 2 * _opener_distance(o, a), "*half*"),
    ("ch05.temperature_match", lambda o, a: _opener_distance(o, a, filtered=False), "other runs"),
    ("ch06.distinct_n", _distinct_per_text, "counted per text instead of over the corpus"),
    ("ch06.distinct_n", _distinct_joined, "cross from the end of one text"),
    ("ch06.distinct_n", _distinct_on_whitespace, "split the texts on whitespace"),
    ("ch06.token_l2_distance", _l2_on_whitespace, "split the texts on whitespace"),
    ("ch06.distinct_n", lambda texts, n: len({tuple(t[i:i + n]) for t in texts for i in range(len(t) - n + 1)})
     / sum(len(t) - n + 1 for t in texts if len(t) >= n), "characters"),
    ("ch06.token_l2_distance", _counts_l2, "raw counts"),
    ("ch06.token_l2_distance", _squared_l2, "square root"),
    ("ch07.decoding_distribution", _nucleus_first, "before applying the temperature"),
    ("ch07.decoding_distribution", _no_renormalisation, "renormalise"),
    ("ch07.decoding_distribution", lambda z, t, p: torch.softmax(z / t, -1), "top_p has no effect"),
    ("ch06.permutation_p_value", lambda *args: _permutation_p(*args, strict=True), "strictly greater"),
    ("ch06.permutation_p_value", lambda *args: _permutation_p(*args, plus_one=False), "+1 correction"),
    ("ch07.paired_comparison", _comparison_unpaired, "independent samples"),
    ("ch07.paired_comparison", _comparison_numpy_std, "ddof=0"),
    ("ch08.list_words_per_1000", _list_rate_per_answer, "averaged each answer's own rate"),
    ("ch08.list_words_per_1000", _list_rate_split_words, "str.split()"),
    ("ch08.list_words_per_1000", _pooled_list_share, "multiply the share"),
    ("ch09.step_loss", lambda losses, labels: torch.stack([l[y != -100].mean() for l, y in zip(losses, labels)]).mean(),
     "averaged each micro-batch's mean"),
    ("ch09.step_loss", lambda losses, labels: torch.cat(list(losses)).mean(), "the masked ones too"),
    ("ch09.step_loss", lambda losses, labels: torch.cat([l[y != -100] for l, y in zip(losses, labels)]).sum(),
     "returned the sum"),
]


def test_the_listed_words_put_into_chapter_8s_cases_are_on_slop_scores_list():
    from dftlab.course.checks import ch08
    from dftlab.metrics.slop_score import slop_list_word_hits

    assert all(hits == 1 for hits, _ in slop_list_word_hits(list(ch08.LISTED)))


def test_every_function_exercise_has_at_least_two_mistakes_here():
    counts = Counter(exercise_id for exercise_id, _, _ in MISTAKES)
    assert {exercise_id: counts[exercise_id] for exercise_id in FUNCTION_IDS if counts[exercise_id] < 2} == {}


@pytest.mark.parametrize("exercise_id, wrong, phrase", MISTAKES,
                         ids=[f"{m[0]}-{m[2]}" for m in MISTAKES])
def test_a_typical_mistake_is_named(exercise_id, wrong, phrase):
    result = check(exercise_id, wrong)
    assert not result.passed and result.attempted
    assert phrase in result.feedback, result.feedback


def test_feedback_is_deterministic():
    wrong = MISTAKES[0][1]
    assert repr(check("ch01.entropy", wrong)) == repr(check("ch01.entropy", wrong))
    assert check("ch01.entropy", wrong)._repr_html_() == check("ch01.entropy", wrong)._repr_html_()


def test_an_unrecognised_wrong_answer_gets_expected_and_actual_values():
    result = check("ch01.entropy", lambda p: torch.ones(p.shape[:-1]) * 0.123)
    assert not result.passed
    assert "0.123" in result.feedback and "1.04" in result.feedback  # H(0.5, 0.25, 0.25) = 1.0397 nats


def test_an_answer_that_raises_gets_feedback_not_an_exception():
    def broken(probs):
        return {}["missing"]

    result = check("ch01.entropy", broken)
    assert not result.passed and result.attempted
    assert "your function raised KeyError" in result.feedback


def test_an_error_only_on_ignored_targets_gets_a_hint():
    def ignores_nothing(logits, targets):
        log_p = torch.log_softmax(logits, -1)
        if (targets < 0).any():
            raise IndexError("index -100 is out of bounds")
        return -(log_p.exp().detach() * log_p)[torch.arange(len(targets)), targets].mean()

    result = check("ch04.dft_loss", ignores_nothing)
    assert "raised IndexError" in result.feedback and "must be left out" in result.feedback


def test_an_infinite_loop_is_stopped_by_the_time_limit():
    def forever(probs):
        while True:
            pass

    started = time.monotonic()
    result = check("ch01.entropy", forever, time_limit=0.2)
    assert time.monotonic() - started < 3
    assert not result.passed and "took longer than 0.2 s" in result.feedback


def test_a_loop_inside_try_except_exception_is_still_stopped():
    def guarded(probs):
        try:
            while True:
                pass
        except Exception:  # the time limit is not an Exception, so this cannot swallow it
            return probs

    result = check("ch01.entropy", guarded, time_limit=0.2)
    assert "took longer than" in result.feedback


def test_the_time_limit_works_off_the_main_thread():
    """Away from the main thread there is no SIGALRM; a worker thread and a timeout stand in for it."""
    def slow(probs):
        deadline = time.monotonic() + 1.0  # ends by itself, so the test leaves no thread spinning
        while time.monotonic() < deadline:
            pass
        return probs

    results = []
    worker = threading.Thread(target=lambda: results.append(check("ch01.entropy", slow, time_limit=0.2)))
    worker.start()
    worker.join(10)
    assert results and "took longer than 0.2 s" in results[0].feedback


def test_answers_that_are_not_functions():
    assert "expected a function" in check("ch01.entropy", 1.5).feedback
    assert "expected a function" in check("ch01.entropy", "lambda p: p").feedback  # strings are never evaluated
    assert "return" in check("ch01.entropy", lambda p: None).feedback
    assert not check("ch01.entropy", ...).attempted


def test_an_unknown_id_lists_the_known_ones():
    result = check("ch01.entopy", lambda p: p)
    assert not result.passed
    assert "unknown exercise id" in result.feedback and "ch01.entropy" in result.feedback
    assert all(exercise_id in result.feedback for exercise_id in EXERCISES)


def test_a_bad_time_limit_is_a_value_error():
    with pytest.raises(ValueError, match="time_limit"):
        check("ch01.entropy", lambda p: p, time_limit=0)


def test_a_close_prediction_passes_and_reports_the_measurement():
    result = check("ch02.uniform_model_nll", 1.1, measured=math.log(3))
    assert result.passed and "1.099" in result.feedback


def test_a_far_prediction_fails_and_names_the_misconception():
    result = check("ch02.uniform_model_nll", 0.80, measured=math.log(3))
    assert not result.passed and result.attempted and "H(q)" in result.feedback
    dft = check("ch04.dft_fixed_point", [0.40, 0.25, 0.15, 0.12, 0.08], measured=[0.99, 0.004, 0.002, 0.002, 0.002])
    assert not dft.passed and "cross-entropy ends" in dft.feedback
    assert check("ch04.dft_fixed_point", [1, 0, 0, 0, 0], measured=[0.99, 0.004, 0.002, 0.002, 0.002]).passed


@pytest.mark.parametrize("exercise_id, wrong, right, measured, words", [
    # chapter 2: the sample's frequencies, not q; the KL counts free probabilities, not tokens
    ("ch02.gradient_descent_fit", [0.40, 0.25, 0.15, 0.12, 0.08], [0.3, 0.4, 0.2, 0.0, 0.1],
     [0.2999, 0.3999, 0.1999, 0.0004, 0.0999], "only the 20"),
    ("ch02.bigram_kl_ratio", 3, 11, 11.25, "Three times the tokens"),
    ("ch02.bigram_kl_ratio", 9, 11, 11.25, "free"),
    # chapter 3: SFT copies the data's share of an opener, it does not collapse onto it
    ("ch03.sft_opener_share", "one", "data", "data", "DFT does"),
    ("ch03.sft_opener_share", "base", "data", "data", "first choices"),
    # chapter 4: the start's favourite does not survive DFT; the collapse of a real fine-tune; the NLL rises
    ("ch04.dft_fixed_point", [0.05, 0.05, 0.05, 0.05, 0.80], [1, 0, 0, 0, 0], [0.992, 0.003, 0.002, 0.001, 0.002],
     "start's favourite"),
    ("ch04.dft_opener_share", 0.33, 1.0, 1.0, "maximum likelihood"),
    ("ch04.dft_opener_share", 0.1, 0.95, 1.0, "base model"),
    ("ch04.dft_valid_nll", "lower", "higher", "higher", "does not minimise it"),
    # chapter 5: from a start that gives the mode almost nothing, DFT sharpens the start's favourite
    ("ch05.dft_weak_start", "data", "start", "start", "scaled by the model's own probability"),
])
def test_a_new_prediction_names_its_typical_mistake(exercise_id, wrong, right, measured, words):
    result = check(exercise_id, wrong, measured=measured)
    assert not result.passed and result.attempted and words in result.feedback, result.feedback
    assert check(exercise_id, right, measured=measured).passed


def test_predictions_not_made_yet_or_malformed():
    assert not check("ch01.zipf_top10_mass", ..., measured=0.3).attempted
    assert "should be a number" in check("ch01.zipf_top10_mass", "a lot", measured=0.3).feedback
    assert "one of 'yes', 'no'" in check("ch07.greedy_same_token", "maybe", measured="yes").feedback
    assert check("ch07.greedy_same_token", " YES ", measured="yes").passed
    assert "sum to 1" in check("ch04.dft_fixed_point", [1, 1, 0, 0, 0], measured=[1, 0, 0, 0, 0]).feedback
    assert "measured=" in check("ch01.zipf_top10_mass", 0.3).feedback
    assert "without `measured=`" in check("ch01.entropy", lambda p: p, measured=1.0).feedback


def test_reprs_are_one_deterministic_line():
    passed = check("ch02.uniform_model_nll", 1.1, measured=math.log(3))
    failed = check("ch02.uniform_model_nll", 3.0, measured=math.log(3))
    assert repr(passed).startswith("✔ ch02.uniform_model_nll: ")
    assert repr(failed).startswith("✘ ch02.uniform_model_nll: ")
    assert "#1a7f37" in passed._repr_html_() and "#cf222e" in failed._repr_html_()
    assert passed._repr_markdown_().startswith("✔ **ch02.uniform_model_nll**")
    for text in [repr(passed), passed._repr_html_(), passed._repr_markdown_()]:
        assert "\n" not in text and not re.search(r"0x[0-9a-f]{6,}", text)


def test_exercise_ids_and_descriptions():
    assert len(EXERCISES) >= 20
    for exercise_id, description in EXERCISES.items():
        assert re.fullmatch(r"ch0[0-9]\.[a-z0-9_]+", exercise_id)
        assert description.startswith(("implement `", "predict, then run: "))
    for required in ["ch01.entropy", "ch01.softmax_with_temperature", "ch02.nll_loss", "ch03.mask_prompt",
                     "ch04.dft_loss", "ch06.distinct_n"]:
        assert required in FUNCTION_IDS


def test_the_study_tables_of_the_checks_follow_dftlab_results(monkeypatch, tmp_path):
    """Changing DFTLAB_RESULTS after a first look must be seen: the cached tables are keyed by the results folder."""
    from dftlab.course.checks import ch05, ch07

    seen = []
    monkeypatch.setattr(ch05, "_openers_in", lambda folder: seen.append(("openers", folder)) or folder)
    monkeypatch.setattr(ch07, "_results_in", lambda folder: seen.append(("results", folder)) or folder)
    for folder in (tmp_path / "first", tmp_path / "second"):
        monkeypatch.setenv("DFTLAB_RESULTS", str(folder))
        assert ch05._study_openers() == (str(folder),) and ch07._study_results() == (str(folder),)
    assert seen == [(kind, (str(tmp_path / name),)) for name in ("first", "second") for kind in ("openers", "results")]


PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dftlab"
CHECKS = PACKAGE / "course" / "checks"
CHAPTER_MODULES = ["ch00", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09"]


def _imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_layout_is_an_engine_and_one_module_per_chapter():
    assert not (PACKAGE / "checks.py").exists()
    assert sorted(p.stem for p in CHECKS.glob("*.py")) == sorted(["__init__", "engine", *CHAPTER_MODULES])
    too_long = {p.name: n for p in CHECKS.glob("*.py") if (n := len(p.read_text().splitlines())) > 800}
    assert not too_long


def test_each_exercise_is_defined_in_its_chapters_module():
    for chapter in CHAPTER_MODULES:
        module = getattr(checks, chapter)
        for exercise in module.FUNCTIONS + module.PREDICTIONS:
            assert exercise.exercise_id.startswith(f"{chapter}.")
    registered = [exercise.exercise_id for chapter in CHAPTER_MODULES
                  for exercise in getattr(checks, chapter).FUNCTIONS + getattr(checks, chapter).PREDICTIONS]
    assert sorted(registered) == list(checks.EXERCISES) == list(engine.REGISTRY)


def test_registering_an_id_twice_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        checks.register(checks.CH01_ENTROPY)
    assert list(checks.EXERCISES) == sorted(checks.EXERCISES)


def test_the_import_graph_is_one_way():
    """dftlab.course.checks may import the modules the chapters derive; none of them imports dftlab.course.checks. Only the
    rest of the course machinery (the grader, which judges the answers' records) sits above the checks and imports them."""
    for path in PACKAGE.rglob("*.py"):
        if PACKAGE / "course" in path.parents:
            continue
        assert not any(name == "dftlab.course.checks" or name.startswith("dftlab.course.checks.")
                       for name in _imported_modules(path)), path
    # The engine knows no chapter; a chapter may build on an earlier one, never on a later one.
    assert not any(name.startswith("dftlab.course.checks.ch") for name in _imported_modules(CHECKS / "engine.py"))
    for index, chapter in enumerate(CHAPTER_MODULES):
        later = {f"dftlab.course.checks.{c}" for c in CHAPTER_MODULES[index:]}
        assert not _imported_modules(CHECKS / f"{chapter}.py") & later, chapter


# The function exercises whose answer the package has no function for: the exercise's answer is the definition
# itself, so its reference is written out in the checks.
DEFINED_IN_THE_EXERCISE = {
    "ch02.categorical_mle": "the maximum-likelihood categorical is the frequency count the chapter derives",
    "ch09.step_loss": "the mean over a step's supervised tokens is what the chapter asks for; the Trainer does it",
}


def _package_calls(function) -> set[str]:
    """The dftlab functions and modules outside dftlab.course that `function` reaches: itself if it is one, else the
    names its code (and the checks' own helpers it calls, and the modules it imports) resolve to."""
    import dis
    import inspect

    def is_package(obj) -> bool:
        name = obj.__name__ if inspect.ismodule(obj) else getattr(obj, "__module__", None) or ""
        return name.startswith("dftlab.") and not name.startswith("dftlab.course")

    found, seen, todo = set(), set(), [function]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if is_package(current):
            found.add(f"{current.__module__}.{current.__qualname__}")
            continue
        codes = [current.__code__]
        while codes:
            code = codes.pop()
            codes += [const for const in code.co_consts if inspect.iscode(const)]
            for name in code.co_names:
                obj = current.__globals__.get(name)
                if inspect.ismodule(obj) and is_package(obj):
                    found.add(obj.__name__)
                elif inspect.isfunction(obj):
                    todo.append(obj)
            found |= {f"dftlab.{i.argval}" for i in dis.get_instructions(code)
                      if i.opname == "IMPORT_FROM" and i.argval != "dftlab"}
    return found


def test_reference_answers_call_the_package_instead_of_copying_it():
    function_exercises = [exercise for exercise in engine.REGISTRY.values() if isinstance(exercise, FunctionExercise)]
    assert len(function_exercises) >= 25
    for exercise in function_exercises:
        calls = _package_calls(exercise.reference)
        if exercise.exercise_id in DEFINED_IN_THE_EXERCISE:
            assert not calls, f"{exercise.exercise_id} calls {calls}: take it off DEFINED_IN_THE_EXERCISE"
        else:
            assert calls, f"{exercise.exercise_id}'s reference calls no dftlab function: call the package's instead"
    assert set(DEFINED_IN_THE_EXERCISE) <= set(checks.EXERCISES)
    # No package function is copied into the checks: no function body of the checks is one of the package's.
    def bodies(paths):
        return {ast.dump(ast.Module(body=node.body[1:] if ast.get_docstring(node) else node.body, type_ignores=[])):
                node.name for path in paths for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.FunctionDef)}
    package = bodies(path for path in PACKAGE.rglob("*.py") if PACKAGE / "course" not in path.parents)
    copies = {name: package[body] for body, name in bodies(CHECKS.glob("*.py")).items() if body in package}
    assert not copies, f"functions of dftlab.course.checks that copy the package's: {copies}"
    assert ch03.CH03_SHIFT.reference is objectives.causal_shift
    assert ch06.ngrams is metrics.text.ngrams
    probs = torch.tensor([0.5, 0.25, 0.25])
    expected = toy.logit_gradient(probs, [0.0, 1.0, 0.0], "dft")
    np.testing.assert_allclose(ch04.CH04_DFT_GRADIENT.reference(probs, 1), expected)
    np.testing.assert_allclose(expected, 0.25 * (probs.numpy() - np.array([0.0, 1.0, 0.0])), rtol=1e-6)


def test_a_reference_that_copies_the_package_is_found():
    def copied_entropy(probs):
        return -(probs * probs.log()).sum(-1)

    assert not _package_calls(copied_entropy)
    assert _package_calls(lambda probs: metrics.distinct_n(probs, 2)) == {"dftlab.metrics"}


def test_causal_shift_drops_the_last_prediction_and_the_first_label():
    logits, labels = torch.arange(24.0).reshape(2, 4, 3), torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    shifted_logits, shifted_labels = objectives.causal_shift(logits, labels)
    assert torch.equal(shifted_logits, logits[:, :-1]) and torch.equal(shifted_labels, labels[:, 1:])
    one_logits, one_labels = objectives.causal_shift(logits[0], labels[0])  # one sequence [T, V], [T]
    assert torch.equal(one_logits, logits[0, :-1]) and torch.equal(one_labels, labels[0, 1:])
