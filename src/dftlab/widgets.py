"""Explorers: figures a reader changes with sliders and menus, on the website as in JupyterLab (chapters 1-6).

Each explorer is a Vega-Lite chart whose controls are Vega-Lite parameters bound to sliders and menus. What
needs torch (a next-token distribution, the paths of gradient descent, the MMD sweep, the cached study) is
computed here, once, and embedded in the chart as data; what a control changes (softmax at temperature T,
top-k and top-p, the entropy readout, which path or panel to show) is computed by Vega in the page. So moving a
control redraws the figure with no kernel: on the static website, in a notebook whose kernel has stopped, in print
preview.

Why Vega-Lite rather than ipywidgets or anywidget: the website renders widgets from the state saved when the
notebook ran, so a Python callback never runs there (the figure under an ipywidgets slider never changed).
anywidget's JavaScript would run, but on the website it needs the ipywidgets html-manager (3.5 MB per page)
and its own loader; Vega-Lite needs three pinned npm files (vega, vega-lite, vega-embed: 0.8 MB) that the site
serves itself (`tools/site.py`), and JupyterLab draws the same output with the Vega it ships.

How an explorer reaches each reader:
- JupyterLab, VS Code, Colab: the output's `application/vnd.vegalite.v5+json` is drawn by the front end's Vega.
- The website: `SiteRenderer` below (a myst-nb mime renderer, registered in pyproject.toml) writes the spec
  into the page, and `_static/dftlab.js` draws it with the site's own copy of Vega.
- Print and the PDF: every explorer has a static twin, a matplotlib figure drawn next to it at fixed settings.
"""
from __future__ import annotations

import html
import json
import math

import numpy as np
import pandas as pd

VEGALITE_MIME = "application/vnd.vegalite.v5+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"  # a name for the version; nothing fetches it
FONT = {"labelFontSize": 12, "titleFontSize": 12}
CONFIG = {"axis": FONT, "legend": {**FONT, "orient": "bottom", "direction": "vertical"},
          "view": {"stroke": None}, "font": "sans-serif"}


class Explorer:
    """A Vega-Lite chart with its controls. Displaying it (the last line of a cell) draws it."""

    def __init__(self, name: str, spec: dict, description: str):
        self.name, self.spec, self.description = name, spec, description

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {VEGALITE_MIME: self.spec, "text/plain": f"{self.name} explorer: {self.description}"}

    def __repr__(self) -> str:
        return f"<{self.name} explorer: {self.description}>"

    def to_json(self) -> str:
        return json.dumps(self.spec, allow_nan=False, separators=(",", ":"))


def _slider(name: str, value: float, low: float, high: float, step: float, label: str) -> dict:
    return {"name": name, "value": value, "bind": {"input": "range", "min": low, "max": high, "step": step,
                                                   "name": label + " "}}


def _menu(name: str, value, options: list, labels: list[str], label: str, input: str = "select") -> dict:
    return {"name": name, "value": value,
            "bind": {"input": input, "options": options, "labels": labels, "name": label + " "}}


def _spec(name: str, **parts) -> dict:
    return {"$schema": SCHEMA, "description": f"dftlab {name} explorer", "usermeta": {"dftlab_explorer": name},
            "config": CONFIG, **parts}


def _round(values, digits: int = 4) -> list[float]:
    return [round(float(v), digits) for v in values]


# ---------------------------------------------------------------------------------------------
# Chapters 1 and 3: temperature, top-k and top-p on one next-token distribution.
# ---------------------------------------------------------------------------------------------

def decoding_spec(log_probs, token_labels: dict[int, str], title: str, k: int = 15, temperature: float = 0.7,
                  top_p: float = 0.9, top_k: int = 0) -> dict:
    """The Vega-Lite spec of `decoding_explorer` from a log-probability vector (no model needed; tested alone).

    The page recomputes `dftlab.sampling.sampling_distribution` exactly: temperature first, then top-k (0 = off),
    then top-p, each renormalising; the readout is the entropy of the result in nats. Top-k keeps, as the sampler
    does, every token whose scaled logit equals the k-th largest (ties are kept); top-p adds tokens in rank order.
    `tests/test_sampling.py` runs these expressions under Node and compares them with the sampler.
    """
    log_probs = np.asarray(log_probs, dtype=np.float64)
    order = np.argsort(-log_probs, kind="stable")
    rows = []
    for rank, index in enumerate(order, start=1):
        row = {"r": rank, "l": round(max(float(log_probs[index]), -200.0), 6)}
        if rank <= k:
            row["token"] = token_labels[int(index)]
        rows.append(row)
    transform = [
        {"calculate": "datum.l / T", "as": "z"},
        {"joinaggregate": [{"op": "max", "field": "z", "as": "zmax"}]},
        {"calculate": "exp(datum.z - datum.zmax)", "as": "e"},
        {"joinaggregate": [{"op": "sum", "field": "e", "as": "Z"}]},
        {"calculate": "datum.e / datum.Z", "as": "pT"},                       # softmax(logits / T)
        {"calculate": "datum.r == top_k ? datum.z : -1e308", "as": "zr"},       # the k-th largest scaled logit
        {"joinaggregate": [{"op": "max", "field": "zr", "as": "zk"}]},
        {"calculate": "top_k == 0 || datum.z >= datum.zk ? datum.pT : 0", "as": "ek"},  # ties with it stay
        {"joinaggregate": [{"op": "sum", "field": "ek", "as": "Zk"}]},
        {"calculate": "datum.ek / datum.Zk", "as": "pk"},                     # after top-k
        {"window": [{"op": "sum", "field": "pk", "as": "cum"}], "sort": [{"field": "r"}], "frame": [None, 0]},
        {"calculate": "datum.pk > 0 && datum.cum - datum.pk < top_p ? datum.pk : 0", "as": "ep"},
        {"joinaggregate": [{"op": "sum", "field": "ep", "as": "Zp"}]},
        {"calculate": "datum.ep / datum.Zp", "as": "decoded"},                # after top-p
        {"calculate": "exp(datum.l)", "as": "model"},
        {"calculate": "datum.decoded > 0 ? -datum.decoded * log(datum.decoded) : 0", "as": "h"},
        {"calculate": "datum.model > 0 ? -datum.model * log(datum.model) : 0", "as": "h1"},
    ]
    bars = {
        "transform": [{"filter": f"datum.r <= {k}"},
                      {"fold": ["model", "decoded"], "as": ["which", "probability"]},
                      {"calculate": "datum.which == 'model' ? 'the model (T = 1)' : 'after T, top-k and top-p'",
                       "as": "distribution"}],
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "y": {"field": "token", "type": "nominal", "sort": {"field": "r"}, "title": None,
                  "axis": {"labelFontSize": 11, "labelLimit": 110}},
            "x": {"field": "probability", "type": "quantitative", "title": "probability",
                  "axis": {"format": ".2f"}},
            "yOffset": {"field": "distribution", "sort": ["the model (T = 1)"]},
            "color": {"field": "distribution", "type": "nominal", "title": None,
                      "sort": ["the model (T = 1)"], "scale": {"range": ["#0173b2", "#de8f05"]}},
        },
    }
    readout = {
        "transform": [{"aggregate": [{"op": "sum", "field": "h", "as": "H"}, {"op": "sum", "field": "h1", "as": "H1"},
                                     ]},
                      {"calculate": "'T = ' + format(T, '.2f') + ', top-k ' + (top_k == 0 ? 'off' : top_k) + "
                                    "', top-p ' + format(top_p, '.2f') + ':\\nentropy ' + format(datum.H, '.3f') + "
                                    "' nats (the model: ' + format(datum.H1, '.3f') + ')'", "as": "text"}],
        "mark": {"type": "text", "align": "left", "baseline": "bottom", "fontSize": 12, "fontWeight": "bold",
                 "dy": -20, "lineBreak": "\n"},
        "encoding": {"text": {"field": "text"}, "x": {"value": 0}, "y": {"value": 0}},
    }
    return _spec(
        "decoding", title={"text": title, "fontSize": 12, "anchor": "start", "offset": 40, "limit": 340},
        params=[_slider("T", temperature, 0.1, 5.0, 0.05, "temperature T"),
                _slider("top_k", top_k, 0, 50, 1, "top-k (0 = off)"),
                _slider("top_p", top_p, 0.05, 1.0, 0.05, "top-p")],
        data={"values": rows}, transform=transform, width="container", height=max(200, 22 * k),
        autosize={"type": "fit-x", "contains": "padding"}, layer=[bars, readout])


def decoding_explorer(model, tokenizer, prompt: str, k: int = 15, temperature: float = 0.7, top_p: float = 0.9,
                      top_k: int = 0) -> Explorer:
    """Sliders for temperature, top-k and top-p over the next-token distribution after `prompt` (chapters 1 and 3).

    The model runs once, here; each slider move recomputes the distribution, its k most likely tokens and its
    entropy in the page. The static twin is `dftlab.plots.plot_decoding_distribution`.
    """
    from dftlab.generate import next_token_probs

    log_probs = next_token_probs(model, tokenizer, prompt).log().double().numpy()
    top = np.argsort(-log_probs, kind="stable")[:k]
    labels = {int(i): repr(tokenizer.decode([int(i)])) for i in top}
    spec = decoding_spec(log_probs, labels, f"next token after {prompt!r}", k=k, temperature=temperature,
                         top_p=top_p, top_k=top_k)
    return Explorer("decoding", spec, f"temperature, top-k and top-p after {prompt!r}")


# ---------------------------------------------------------------------------------------------
# Chapters 2 and 4: paths of gradient descent on the 3-token simplex.
# ---------------------------------------------------------------------------------------------

SIMPLEX_WEIGHTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)  # the sliders' stops; token 2 keeps weight 0.1
SIMPLEX_LEARNING_RATES = (0.1, 0.5, 1.0, 3.0)


def simplex_paths(objectives=("nll",), steps: int = 300, weights=SIMPLEX_WEIGHTS,
                  learning_rates=SIMPLEX_LEARNING_RATES, points: int = 15) -> pd.DataFrame:
    """Every path the simplex explorer can show: one per (weight 0, weight 1, learning rate, objective).

    q = (w0, w1, 0.1) / (w0 + w1 + 0.1). All targets of one objective and learning rate descend together, one
    row each (exact gradients, so each row follows exactly the path `toy.simplex_trajectories` draws alone).
    Columns: w0, w1, lr, objective, x, y (lists of plane coordinates, `points` + 1 records each).
    """
    from dftlab.toy import gradient_descent, objective_name, ternary_coordinates

    grid = [(w0, w1) for w0 in weights for w1 in weights]
    targets = np.array([[w0, w1, 0.1] for w0, w1 in grid]) / np.array([[w0 + w1 + 0.1] for w0, w1 in grid])
    record_every = max(1, steps // points)
    rows = []
    for objective in objectives:
        for lr in learning_rates:
            _, _, log_probs = gradient_descent(targets, np.ones(len(grid)), objective, steps, lr, True, 0, None, 1,
                                       record_every, {})
            x, y = ternary_coordinates(np.exp(log_probs))          # [records, targets]
            for index, (w0, w1) in enumerate(grid):
                rows.append({"w0": round(w0, 2), "w1": round(w1, 2), "lr": lr,
                             "objective": objective_name(objective),
                             "x": _round(x[:, index], 3), "y": _round(y[:, index], 3)})
    return pd.DataFrame(rows)


def simplex_spec(paths: pd.DataFrame, steps: int, weight_0: float = 0.6, weight_1: float = 0.3,
                 lr: float = 0.5) -> dict:
    """The Vega-Lite spec of `simplex_explorer` from `simplex_paths` (no torch needed; tested alone)."""
    from dftlab.plots import readable

    names = list(dict.fromkeys(paths["objective"]))
    values = [{**row, "objective": readable(row["objective"])} for row in paths.to_dict("records")]
    weights = sorted(set(paths["w0"]))
    learning_rates = sorted(set(paths["lr"]))
    pick = "abs(datum.w0 - w0) < 1e-6 && abs(datum.w1 - w1) < 1e-6 && abs(datum.lr - lr) < 1e-6"
    q = ["w0 / (w0 + w1 + 0.1)", "w1 / (w0 + w1 + 0.1)", "0.1 / (w0 + w1 + 0.1)"]
    scale_x = {"domain": [-0.12, 1.12], "nice": False}
    scale_y = {"domain": [-0.12, 0.98], "nice": False}
    plane = {"x": {"field": "x", "type": "quantitative", "scale": scale_x, "axis": None},
             "y": {"field": "y", "type": "quantitative", "scale": scale_y, "axis": None}}
    colour = {"field": "objective", "type": "nominal", "title": None, "sort": [readable(n) for n in names],
              "scale": {"range": ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc"]}}
    # the triangle's outline, corner by corner back to the start; `i` keeps that order (a line mark left to itself
    # sorts its points by x, which joins (0, 0) to itself and leaves the bottom side out)
    corners = [{"x": 0, "y": 0, "i": 0}, {"x": 1, "y": 0, "i": 1}, {"x": 0.5, "y": math.sqrt(3) / 2, "i": 2},
               {"x": 0, "y": 0, "i": 3}]
    labels = [{"x": 0.02, "y": -0.07, "label": "token 0"}, {"x": 0.98, "y": -0.07, "label": "token 1"},
              {"x": 0.5, "y": math.sqrt(3) / 2 + 0.05, "label": "token 2"}]
    return _spec(
        "simplex",
        params=[_slider("w0", weight_0, min(weights), max(weights), 0.1, "weight of token 0"),
                _slider("w1", weight_1, min(weights), max(weights), 0.1, "weight of token 1"),
                _menu("lr", lr, learning_rates, [f"{v:g}" for v in learning_rates], "learning rate", "radio")],
        width=320, height=300,
        layer=[
            {"data": {"values": corners}, "mark": {"type": "line", "color": "grey", "strokeWidth": 1},
             "encoding": {**plane, "order": {"field": "i", "type": "quantitative"}}},
            {"data": {"values": labels}, "mark": {"type": "text", "fontSize": 12},
             "encoding": {**plane, "text": {"field": "label"}}},
            {"data": {"values": values},
             "transform": [{"filter": pick}, {"flatten": ["x", "y"]},
                           {"window": [{"op": "row_number", "as": "i"}], "groupby": ["objective"]}],
             "layer": [
                 {"mark": {"type": "line", "strokeWidth": 2.5},
                  "encoding": {**plane, "color": colour, "order": {"field": "i"}}},
                 {"transform": [{"joinaggregate": [{"op": "max", "field": "i", "as": "last"}], "groupby": ["objective"]},
                                {"filter": "datum.i == datum.last"}],
                  "mark": {"type": "point", "filled": True, "size": 70},
                  "encoding": {**plane, "color": colour}}]},
            {"data": {"values": [{}]},
             "transform": [{"calculate": q[0], "as": "q0"}, {"calculate": q[1], "as": "q1"},
                           {"calculate": q[2], "as": "q2"},
                           {"calculate": "datum.q1 + datum.q2 / 2", "as": "x"},
                           {"calculate": f"datum.q2 * {math.sqrt(3) / 2}", "as": "y"},
                           {"calculate": "'q = (' + format(datum.q0, '.2f') + ', ' + format(datum.q1, '.2f') + ', '"
                                         " + format(datum.q2, '.2f') + '), learning rate ' + lr + ', "
                                         f"{steps} steps'", "as": "readout"}],
             "layer": [
                 {"mark": {"type": "point", "shape": "M0,-1L0.24,-0.33L0.95,-0.31L0.38,0.12L0.59,0.81L0,0.4L-0.59,"
                                                     "0.81L-0.38,0.12L-0.95,-0.31L-0.24,-0.33Z",
                           "filled": True, "color": "black", "size": 260},
                  "encoding": {**plane, "tooltip": {"value": "data distribution q"}}},
                 {"mark": {"type": "text", "align": "left", "fontSize": 12, "fontWeight": "bold"},
                  "encoding": {"text": {"field": "readout"}, "x": {"value": 0}, "y": {"value": -8}}}]},
        ])


def simplex_explorer(objectives=("nll",), steps: int = 300) -> Explorer:
    """Sliders for a 3-token data distribution q and a choice of learning rate; draws each objective's path on the
    simplex (chapter 2 with nll alone, chapter 4 to compare objectives). Every path the controls can reach is
    computed here (exact gradients); the page picks the one asked for. Static twin: `plots.plot_simplex_trajectories`.
    """
    paths = simplex_paths(objectives, steps)
    return Explorer("simplex", simplex_spec(paths, steps),
                    f"paths of {', '.join(map(str, objectives))} towards q over {steps} steps")


# ---------------------------------------------------------------------------------------------
# Chapter 6: MMD between TinyTales samples.
# ---------------------------------------------------------------------------------------------

MMD_EXPONENTS = tuple(round(0.3 + 0.1 * i, 1) for i in range(17))   # 0.3, 0.4, ..., 1.9
MMD_SAMPLE_SIZES = (10, 20, 40, 80, 160)


def mmd_spec(table: pd.DataFrame, reference_exponent: float = 1.1, exponent: float = 0.9,
             sample_size: int = 40) -> dict:
    """The Vega-Lite spec of `mmd_explorer` from a `metrics.mmd_by_zipf_exponent` table (tested alone)."""
    values = [{"e": round(float(r.zipf_exponent), 2), "n": int(r.sample_size), "mmd2": round(float(r.mmd2), 6),
               "p": round(float(r.p_value), 4), "significant": bool(r.significant)} for r in table.itertuples()]
    sizes = sorted({v["n"] for v in values})
    exponents = sorted({v["e"] for v in values})
    x = {"field": "e", "type": "quantitative", "title": "Zipf exponent of the second sample",
         "scale": {"domain": [min(exponents) - 0.05, max(exponents) + 0.05], "nice": False}}
    y = {"field": "mmd2", "type": "quantitative", "title": "unbiased MMD² (RBF kernel)"}
    colour = {"field": "n", "type": "ordinal", "title": "stories per sample",
              "scale": {"range": ["#0173b2", "#de8f05", "#029e73", "#d55e00", "#cc78bc", "#ca9161"]}}
    chosen = "abs(datum.e - exponent) < 1e-6 && datum.n == sample_size"
    return _spec(
        "mmd",
        params=[_slider("exponent", exponent, min(exponents), max(exponents), 0.1, "Zipf exponent"),
                _menu("sample_size", sample_size, sizes, [str(n) for n in sizes], "stories each", "radio")],
        data={"values": values}, width="container", height=280, autosize={"type": "fit-x", "contains": "padding"},
        layer=[
            {"mark": {"type": "rule", "strokeDash": [5, 4], "color": "black"},
             "data": {"values": [{"e": reference_exponent}]}, "encoding": {"x": x}},
            {"mark": {"type": "line", "strokeWidth": 1.5}, "encoding": {"x": x, "y": y, "color": colour,
                                                                        "opacity": {"value": 0.8}}},
            {"mark": {"type": "point", "size": 40, "strokeWidth": 1.5, "opacity": 1},
             "encoding": {"x": x, "y": y, "color": colour,
                          "fill": {"condition": {"test": "datum.significant", "field": "n", "type": "ordinal",
                                                 "legend": None}, "value": "white"},
                          "tooltip": [{"field": "e", "title": "exponent"}, {"field": "n", "title": "stories"},
                                      {"field": "mmd2", "title": "MMD²", "format": ".4f"},
                                      {"field": "p", "title": "p-value", "format": ".3f"}]}},
            {"transform": [{"filter": chosen}], "mark": {"type": "point", "size": 320, "color": "black",
                                                         "strokeWidth": 2},
             "encoding": {"x": x, "y": y}},
            {"transform": [{"filter": chosen},
                           {"calculate": "'Zipf ' + format(exponent, '.1f') + ' vs " + f"{reference_exponent:g}"
                                         + ", ' + sample_size + ' stories each:\\nMMD² = ' + format(datum.mmd2, '.4f')"
                                           " + ', p = ' + format(datum.p, '.3f') + (datum.significant ? "
                                           "' (significant)' : ' (not significant)')", "as": "readout"}],
             "mark": {"type": "text", "align": "left", "baseline": "bottom", "fontSize": 12, "fontWeight": "bold",
                      "dy": -8, "dx": -50, "lineBreak": "\n"},
             "encoding": {"text": {"field": "readout"}, "x": {"value": 0}, "y": {"value": 0}}},
        ],
        title={"text": ["filled: p < 0.05, hollow: not significant;", "dashed: the reference exponent"],
               "fontSize": 11, "fontWeight": "normal", "anchor": "start", "offset": 44, "limit": 340})


def mmd_explorer(reference_exponent: float = 1.1, exponents=MMD_EXPONENTS, sample_sizes=MMD_SAMPLE_SIZES,
                 method: str = "ngram", num_permutations: int = 200) -> Explorer:
    """A slider for the Zipf exponent of a second TinyTales sample and a choice of sample size; shows MMD² and its
    p-value against true stories at `reference_exponent` (chapter 6). The whole sweep is computed here (n-gram
    features keep it to seconds); the page rings the chosen point. Static twin: `plots.plot_mmd_by_zipf_exponent`.
    """
    from dftlab.metrics import mmd_by_zipf_exponent

    table = mmd_by_zipf_exponent(list(exponents), list(sample_sizes), reference_exponent, method, num_permutations)
    exponent = 0.9 if any(abs(e - 0.9) < 1e-9 for e in exponents) else float(exponents[0])
    size = 40 if 40 in sample_sizes else int(sample_sizes[0])
    return Explorer("mmd", mmd_spec(table, reference_exponent, exponent, size),
                    f"MMD² against Zipf {reference_exponent:g}, by exponent and sample size")


# ---------------------------------------------------------------------------------------------
# Chapter 7: the cached study, one metric at a time.
# ---------------------------------------------------------------------------------------------

# Each metric of the study's summary table: its name in the menu, the name its x-axis gives it (with units and which
# way is better), and the values it can take. An interval over seeds (mean +/- t * s / sqrt(n)) can run past what
# the measure can take (a share above 1, a p-value below 0, a KL below 0): the explorer cuts it at those bounds,
# and the tooltip says the interval was cut. MMD² is unbiased, so it can dip below 0: it has no lower bound.
STUDY_METRICS = {
    "validity": ("validity", "share of valid stories (higher is better)", 0.0, 1.0),
    "cross_entropy": ("cross-entropy", "cross-entropy on true stories, nats per story", 0.0, None),
    "true_entropy": ("true entropy", "entropy of the true stories, nats per story", 0.0, None),
    "kl": ("KL(q || p)", "KL(q || p), nats per story (lower is better)", 0.0, None),
    "predictive_entropy": ("predictive entropy", "predictive entropy, nats per token", 0.0, None),
    "distinct_1": ("distinct-1", "distinct-1: distinct words / all words", 0.0, 1.0),
    "distinct_2": ("distinct-2", "distinct-2: distinct word pairs / all pairs", 0.0, 1.0),
    "distinct_3": ("distinct-3", "distinct-3: distinct word triples / all triples", 0.0, 1.0),
    "self_bleu": ("self-BLEU", "self-BLEU (lower: stories differ more)", 0.0, 1.0),
    "token_l2_1": ("token-L2 (words)", "token-L2 to true stories, words (lower is better)", 0.0, None),
    "token_l2_2": ("token-L2 (word pairs)", "token-L2 to true stories, pairs (lower is better)", 0.0, None),
    "zipf_coefficient": ("Zipf coefficient", "Zipf coefficient of the word frequencies", 0.0, None),
    "top_opener_share": ("share opening 'Once upon a time,'", "share of stories opening 'Once upon a time,'", 0.0, 1.0),
    "top_opener_true_prob": ("true probability of 'Once upon a time,'",
                             "probability of 'Once upon a time,' under TinyTales", 0.0, 1.0),
    "overuse_formulaic": ("overuse of formulaic phrases", "overuse of formulaic phrases (1: as true stories)", 0.0, None),
    "overuse_top_phrases": ("overuse of the top 10 phrases", "overuse of the top 10 phrases (1: as true stories)", 0.0, None),
    "mmd2": ("MMD²", "MMD² to true stories (unbiased: can dip below 0)", None, None),
    "mmd_p_value": ("MMD p-value", "MMD permutation p-value", 0.0, 1.0),
    "loss_scale": ("loss scale (the objective's loss / NLL)", "the objective's loss / the NLL, same tokens", 0.0, None),
    "prob_character": ("p(target) at the character's name", "mean p(target) at the character's name", 0.0, 1.0),
    "prob_other": ("p(target) at the other tokens", "mean p(target) at the other tokens", 0.0, 1.0),
}


def study_metric(metric: str) -> tuple[str, str, float | None, float | None]:
    """(menu name, axis name, lowest and highest value it can take) of a study metric; an unknown metric gets its
    readable name and no bounds."""
    from dftlab.plots import readable

    return STUDY_METRICS.get(metric, (readable(metric), readable(metric), None, None))


def _clip(value: float, low: float | None, high: float | None) -> float:
    return min(max(value, low if low is not None else -math.inf), high if high is not None else math.inf)


def _is_constant(rows: pd.DataFrame) -> bool:
    """True when every row of one metric has the same mean and no interval: it describes the data, not the models."""
    values = pd.concat([rows["mean"], rows["ci_low"], rows["ci_high"]]).dropna()
    return len(values) > 0 and float(values.max() - values.min()) <= 1e-12 * max(1.0, float(values.abs().max()))


def study_spec(summary: pd.DataFrame, metrics=None, metric: str | None = None) -> dict:
    """The Vega-Lite spec of `study_explorer` from `dftlab.study.summary_table` (tested alone).

    By default the menu offers every metric with a value for a fine-tuned model, except those that are the same for
    every row (the true entropy, the true probability of the top opener: they describe the data); one asked for
    by name is drawn on an axis widened around its one value.
    """
    from dftlab.plots import readable

    tuned = summary[summary["steps"] > 0]
    usable = tuned.dropna(subset=["mean"])
    if metrics is None:
        metrics = [m for m in dict.fromkeys(usable["metric"]) if not _is_constant(summary[summary["metric"] == m])]
    metrics = list(metrics)
    metric = metric or ("top_opener_share" if "top_opener_share" in metrics else metrics[0])
    decodings = [d for d in dict.fromkeys(summary["decoding"]) if d != "data"]
    runs = [(base, int(steps)) for base, steps in tuned[["base_model", "steps"]].drop_duplicates().itertuples(index=False)]
    rows = summary[summary["metric"].isin(metrics) & summary["mean"].notna()]
    order = list(dict.fromkeys(rows["objective"]))
    values, extents = [], []
    for r in rows.itertuples():
        _, _, bottom, top = study_metric(r.metric)
        low = r.ci_low if pd.notna(r.ci_low) else r.mean
        high = r.ci_high if pd.notna(r.ci_high) else r.mean
        cut = [side for side, value in (("below", low), ("above", high))
               if value != _clip(value, bottom, top)]
        values.append({"metric": r.metric, "objective": readable(r.objective), "order": order.index(r.objective),
                       "base": r.base_model, "steps": int(r.steps), "decoding": r.decoding,
                       "mean": _clean(_clip(r.mean, bottom, top)), "low": _clean(_clip(low, bottom, top)),
                       "high": _clean(_clip(high, bottom, top)), "n": int(r.n),
                       "interval": "cut at " + " and ".join(
                           f"{bottom if side == 'below' else top:g}" for side in cut) + ", what the measure can take"
                       if cut else "as computed"})
    for name in metrics:  # a constant metric: an invisible extent around its value, so its axis has several ticks
        one = rows[rows["metric"] == name]
        if len(one) and _is_constant(one):
            value, (_, _, bottom, top) = float(one["mean"].iloc[0]), study_metric(name)
            pad = max(abs(value) * 0.1, 0.05)
            extents.append({"metric": name, "low": _clean(_clip(value - pad, bottom, top)),
                            "high": _clean(_clip(value + pad, bottom, top))})
    truth_metrics = sorted(set(rows.loc[rows["objective"] == "truth", "metric"]))
    names = {m: study_metric(m)[0] for m in metrics}
    axis_names = {m: study_metric(m)[1] for m in metrics}
    run_keys = [f"{base}|{steps}" for base, steps in runs]
    chosen = ("datum.metric == metric && datum.objective != 'truth' && datum.decoding == decoding && "
              "datum.base == split(run, '|')[0] && (datum.steps == 0 || datum.steps == toNumber(split(run, '|')[1]))")
    # The readout above the plot (a title, so the layout keeps it clear of the axis labels) and the x-axis's title
    # are expressions of the menus; the dashed line's legend only where the metric has a truth row.
    run_names = {f"{base}|{steps}": f"{base}, {steps} steps" for base, steps in runs}
    decoding_names = {d: "decoded at " + readable(d) for d in decodings}
    lines = f"{json.dumps(names)}[metric], {json.dumps(run_names)}[run], {json.dumps(decoding_names)}[decoding]"
    readout = f"indexof({json.dumps(truth_metrics)}, metric) >= 0 ? [{lines}, 'dashed line: the truth'] : [{lines}]"
    axis_title = f"[{json.dumps(axis_names)}[metric], 'mean and 95% CI over seeds']"
    x = {"field": "mean", "type": "quantitative", "title": None, "scale": {"zero": False, "nice": True},
         "axis": {"title": {"expr": axis_title}, "titleAnchor": "end", "titleLimit": {"expr": "width + 140"},
                  "tickCount": {"expr": "ceil(width / 70)"},
                  "labelOverlap": True, "labelFlush": False}}
    y = {"field": "objective", "type": "nominal", "title": None, "sort": {"field": "order"},
         "axis": {"labelLimit": 150}}
    layers = [
        {"transform": [{"filter": chosen}], "mark": {"type": "rule", "strokeWidth": 1.5, "color": "#0173b2"},
         "encoding": {"x": {**x, "field": "low"}, "x2": {"field": "high"}, "y": y}},
        {"transform": [{"filter": chosen}], "mark": {"type": "point", "filled": True, "size": 60, "color": "#0173b2"},
         "encoding": {"x": x, "y": y, "tooltip": [{"field": "objective"}, {"field": "mean", "format": ".4g"},
                                                  {"field": "low", "title": "95% CI from", "format": ".4g"},
                                                  {"field": "high", "title": "to", "format": ".4g"},
                                                  {"field": "interval", "title": "interval"},
                                                  {"field": "n", "title": "seeds"}]}},
        {"transform": [{"filter": "datum.metric == metric && datum.objective == 'truth'"}],
         "mark": {"type": "rule", "strokeDash": [5, 4], "color": "black"}, "encoding": {"x": x}},
    ]
    if extents:
        layers.append({"data": {"values": extents}, "transform": [{"filter": "datum.metric == metric"}],
                       "mark": {"type": "rule", "opacity": 0},
                       "encoding": {"x": {**x, "field": "low"}, "x2": {"field": "high"}}})
    return _spec(
        "study",
        params=[_menu("metric", metric, metrics, [names[m] for m in metrics], "metric"),
                _menu("decoding", decodings[0], decodings, [readable(d) for d in decodings], "decoding"),
                _menu("run", run_keys[0], run_keys, [run_names[key] for key in run_keys],
                      "base model and budget")],
        data={"values": values}, width="container", height=260, autosize={"type": "fit-x", "contains": "padding"},
        # room on the right for a dot at the axis's end (a share of 1.0) and the last tick's label
        padding={"top": 5, "left": 5, "right": 16, "bottom": 5},
        title={"text": {"expr": readout}, "anchor": "start", "frame": "bounds", "fontSize": 12, "fontWeight": "normal",
               "limit": {"expr": "width + 150"}, "offset": 10},
        layer=layers)


def _clean(value) -> float | None:
    value = float(value)
    return round(value, 6) + 0.0 if math.isfinite(value) else None  # + 0.0 turns -0.0 into 0.0


def study_explorer(summary, metrics=None) -> Explorer:
    """Menus for a metric, a decoding and a base model x budget; shows that panel of the cached study (chapter 7).

    `summary` is `dftlab.study.summary_table(load_results())`; nothing is retrained. Static twin: `plots.plot_study_grid`.
    """
    return Explorer("study", study_spec(summary, metrics), "one metric of the study per objective")


# ---------------------------------------------------------------------------------------------
# The website: a myst-nb mime renderer (registered under "myst_nb.mime_renderers" in pyproject.toml).
# ---------------------------------------------------------------------------------------------

class SiteRenderer:
    """Writes a Vega-Lite output into the page as JSON; `_static/dftlab.js` draws it with the site's own Vega.

    Without it myst-nb would skip the output (it knows no Vega-Lite); with it the page needs no kernel and no CDN.
    """

    mime_priority_overrides = [("html", VEGALITE_MIME, 1), ("dirhtml", VEGALITE_MIME, 1),
                               ("singlehtml", VEGALITE_MIME, 1)]

    @staticmethod
    def handle_mime(renderer, data, inline):
        if data.mime_type != VEGALITE_MIME or inline:
            return None
        from docutils import nodes

        spec = data.content if isinstance(data.content, dict) else json.loads(data.content)
        name = spec.get("usermeta", {}).get("dftlab_explorer", "chart")
        payload = json.dumps(spec, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
        markup = (f'<div class="dftlab-explorer" data-explorer="{html.escape(name)}">'
                  f'<script type="application/json" class="dftlab-explorer-spec">{payload}</script>'
                  '<p class="dftlab-explorer-wait">Loading the interactive figure…</p></div>')
        return [nodes.raw("", markup, format="html", classes=["output", "text_html", "dftlab-explorer-output"])]
