"""The one sampler (dftlab.sampling): its order of operations, its rule for ties, transformers' warpers, and the
decoding explorer's expressions run under Node on the same logits."""
import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch

from dftlab import distributions, widgets
from dftlab.sampling import (SamplerSettings, processed_logits, sampling_distribution,
                             transformers_generate_settings)

# ranks 2-4 tie, ranks 5-6 tie, ranks 8-9 tie
TIED_LOGITS = torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 0.0, -1.0, -1.0, -5.0], dtype=torch.float64)


def test_top_k_keeps_every_token_tied_with_the_kth_largest():
    probs = sampling_distribution(TIED_LOGITS, SamplerSettings(top_k=2))
    assert (probs > 0).tolist() == [True] * 4 + [False] * 6
    expected = torch.softmax(TIED_LOGITS[:4], -1)
    assert torch.allclose(probs[:4], expected, atol=1e-15)
    assert (sampling_distribution(TIED_LOGITS, SamplerSettings(top_k=1)) > 0).sum() == 1  # no tie at the top


def test_the_temperature_comes_before_top_p_and_min_p_sees_what_top_p_left():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64))
    # at T = 2 the distribution flattens, so top-p 0.8 needs three tokens (at T = 1 it would need two)
    kept = sampling_distribution(logits, SamplerSettings(temperature=2.0, top_p=0.8)) > 0
    assert kept.tolist() == [True, True, True, False]
    # min-p 0.5 after top-p: the threshold is half the top token's renormalised probability; the top token keeps it
    settings = SamplerSettings(temperature=2.0, top_p=0.8, min_p=0.5)
    scaled = processed_logits(logits, settings)
    after_top_p = torch.softmax(distributions.top_p_filter(logits / 2.0, 0.8), -1)
    assert torch.equal(torch.isfinite(scaled), after_top_p >= 0.5 * after_top_p.max())


def test_the_repetition_penalty_comes_before_the_temperature():
    logits = torch.tensor([2.0, 1.0, -1.0], dtype=torch.float64)
    probs = sampling_distribution(logits, SamplerSettings(temperature=0.5, repetition_penalty=2.0), [0, 2])
    assert torch.allclose(probs, torch.softmax(torch.tensor([1.0, 1.0, -2.0], dtype=torch.float64) / 0.5, -1))
    with pytest.raises(ValueError, match="previous_ids"):
        sampling_distribution(logits, SamplerSettings(repetition_penalty=2.0))


def test_greedy_puts_all_the_probability_on_the_penalised_argmax():
    logits = torch.tensor([2.0, 1.9, 0.0], dtype=torch.float64)
    assert sampling_distribution(logits, SamplerSettings(greedy=True)).tolist() == [1.0, 0.0, 0.0]
    assert sampling_distribution(logits, SamplerSettings(greedy=True, repetition_penalty=1.2), [0]).tolist() == [0, 1, 0]


def test_decoding_distribution_is_the_sampler_bit_for_bit():
    """distributions.decoding_distribution (chapter 7's exercise, the plots) composes the same three rules."""
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits[:, 10:14] = logits[:, 3:4]  # ties
    assert torch.equal(distributions.decoding_distribution(logits, 0.7, 5, 0.9),
                       sampling_distribution(logits, SamplerSettings(temperature=0.7, top_k=5, top_p=0.9)))


@pytest.mark.parametrize("settings, match", [
    (dict(temperature=0), "temperature"), (dict(top_k=0), "top_k"), (dict(top_p=1.5), "top_p"),
    (dict(min_p=0.0), "min_p"), (dict(repetition_penalty=-1.0), "repetition_penalty"), (dict(greedy="yes"), "greedy"),
])
def test_bad_settings_are_named(settings, match):
    with pytest.raises(ValueError, match=match):
        SamplerSettings(**settings)


# --- transformers' warpers (what chat_samples' generate uses) ----------------------------------------------------

def _warper_probs(scores: torch.Tensor, settings: SamplerSettings) -> torch.Tensor:
    """The probabilities transformers' warpers give, applied in the order `generate` applies them."""
    from transformers.generation import (MinPLogitsWarper, TemperatureLogitsWarper, TopKLogitsWarper,
                                         TopPLogitsWarper)

    arguments = transformers_generate_settings(settings)
    warpers = [TemperatureLogitsWarper(arguments["temperature"])]
    if arguments["top_k"]:
        warpers.append(TopKLogitsWarper(arguments["top_k"]))
    if arguments["top_p"] < 1.0:
        warpers.append(TopPLogitsWarper(arguments["top_p"]))
    if "min_p" in arguments:
        warpers.append(MinPLogitsWarper(arguments["min_p"]))
    input_ids = torch.zeros(scores.shape[0], 1, dtype=torch.long)
    for warper in warpers:
        scores = warper(input_ids, scores)
    return torch.softmax(scores.double(), -1)


# the real chat model's decodings (chat_samples, slop_samples, decoding_levers, distillation), and top-k
REAL_MODEL_SETTINGS = [SamplerSettings(temperature=1.0, top_p=1.0), SamplerSettings(temperature=0.7, top_p=0.9),
                       SamplerSettings(temperature=0.7, top_p=1.0, min_p=0.1),
                       SamplerSettings(temperature=1.0, top_p=1.0, min_p=0.1), SamplerSettings(top_k=3)]


@pytest.mark.parametrize("settings", REAL_MODEL_SETTINGS, ids=repr)
def test_transformers_warpers_give_the_samplers_probabilities(settings):
    generator = torch.Generator().manual_seed(1)
    scores = (torch.randn(6, 2000, generator=generator) * 3).float()  # float32, as the model's logits
    scores[:, 5:9] = scores[:, 4:5]  # a tie
    ours = sampling_distribution(scores.double(), settings)
    assert torch.allclose(_warper_probs(scores, settings), ours, atol=1e-6)


# --- the decoding explorer's expressions, run by Node ---------------------------------------------------------------

# A small interpreter for the transforms decoding_spec uses, following Vega's definitions: `calculate` evaluates the
# spec's own expression text, `joinaggregate` adds an aggregate over all rows to each row, `window` a running sum
# in the order of its sort field.
NODE_VEGA_TRANSFORMS = r"""
const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const rows = input.rows.map(r => ({...r}));
const names = Object.keys(input.params);
const expr = e => new Function('datum', 'exp', 'log', ...names, 'return (' + e + ');');
for (const t of input.transform) {
  if (t.calculate !== undefined) {
    const f = expr(t.calculate);
    for (const d of rows) d[t.as] = f(d, Math.exp, Math.log, ...names.map(n => input.params[n]));
  } else if (t.joinaggregate) {
    for (const a of t.joinaggregate) {
      const values = rows.map(d => d[a.field]);
      const v = a.op === 'sum' ? values.reduce((s, x) => s + x, 0) : a.op === 'max' ? Math.max(...values) : NaN;
      for (const d of rows) d[a.as] = v;
    }
  } else if (t.window) {
    const order = rows.slice().sort((x, y) => x[t.sort[0].field] - y[t.sort[0].field]);
    const [w] = t.window;
    let s = 0;
    for (const d of order) { s += d[w.field]; d[w.as] = s; }
  } else throw new Error('transform not handled: ' + JSON.stringify(t));
}
process.stdout.write(JSON.stringify(rows.map(d => [d.r, d.decoded])));
"""


def _explorer_probabilities(spec: dict, temperature: float, top_k: int, top_p: float) -> np.ndarray:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs); it runs the explorer's expressions")
    payload = {"rows": spec["data"]["values"], "transform": spec["transform"],
               "params": {"T": temperature, "top_k": top_k, "top_p": top_p}}
    result = subprocess.run([node, "-e", NODE_VEGA_TRANSFORMS], input=json.dumps(payload), capture_output=True,
                            text=True, check=True)
    ranked = sorted(json.loads(result.stdout))
    return np.array([probability for _, probability in ranked])


@pytest.mark.parametrize("temperature", [0.5, 1.0, 2.3])
@pytest.mark.parametrize("top_k", [0, 1, 2, 3, 5, 9])
@pytest.mark.parametrize("top_p", [0.3, 0.75, 0.95, 1.0])
def test_the_decoding_explorer_computes_the_samplers_distribution_ties_included(temperature, top_k, top_p):
    log_probs = torch.log_softmax(TIED_LOGITS, -1).numpy()
    spec = widgets.decoding_spec(log_probs, {i: f"t{i}" for i in range(len(log_probs))}, "ties", k=5)
    page = _explorer_probabilities(spec, temperature, top_k, top_p)
    logits = torch.tensor([row["l"] for row in spec["data"]["values"]], dtype=torch.float64)  # in rank order
    ours = sampling_distribution(logits, SamplerSettings(temperature, top_k or None, top_p)).numpy()
    # compare within each group of tied tokens as a multiset: torch's sort may order tied tokens differently
    # from the page's ranks, which matters only for which member of a tie the top-p cut takes
    for value in np.unique(logits.numpy()):
        group = logits.numpy() == value
        assert np.allclose(np.sort(page[group]), np.sort(ours[group]), atol=1e-6, rtol=0), (value, page, ours)
    assert math.isclose(page.sum(), 1.0, abs_tol=1e-9)


@pytest.mark.slow
def test_transformers_warpers_give_the_samplers_probabilities_on_the_chat_models_logits(converted):
    """The real chat model's next-token logits after a few chat prompts, at every decoding its sample sets use."""
    from dftlab.chat_samples import WRITING_PROMPTS, chat_prompt_text

    _, model, tokenizer = converted  # the model loaded once for every test that needs it (tests/conftest.py)
    with torch.no_grad():
        scores = torch.cat([model(**tokenizer(chat_prompt_text(tokenizer, prompt) + "Once", return_tensors="pt"))
                            .logits[:, -1].float() for prompt in WRITING_PROMPTS[:4]])
    for settings in REAL_MODEL_SETTINGS:
        ours = sampling_distribution(scores.double(), settings)
        assert torch.allclose(_warper_probs(scores, settings), ours, atol=1e-6), settings
