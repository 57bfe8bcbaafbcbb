"""A real chat model's writing: open prompts, the chat template, and the committed set of its responses.

The chapter "What formulaic writing looks like" measures SmolLM2-135M-Instruct (`load_model("smollm2-135m-instruct")`)
on open writing prompts. This module holds the prompts, shows what the instruction-tuned model is actually given
(`chat_prompt_text`), samples its responses, and builds the committed sample set:

    python -m dftlab.chat_samples            # the full set (60 prompts x 4 responses x 2 decodings, 128 new tokens each)
    python -m dftlab.chat_samples --quick    # 4 prompts x 2 responses, to try the command

The set is deterministic from its seed on a given machine and software stack: batch `b` of decoding `d` re-seeds
torch's generator with `seed`, `d` and `b` before sampling, so an interrupted build resumes from its finished
batches (kept in the user cache) and gives the same responses as an uninterrupted one. Sampling uses transformers'
`generate` with left padding, temperature and top-p (top-k off); the course's own step-by-step sampler
(`dftlab.generate`) draws one prompt at a time, which is 4x slower for this 134.5M-parameter model on a CPU.
The settings are the package's (`dftlab.sampling.SamplerSettings`, handed to `generate` by
`sampling.transformers_generate_settings`), and tests/test_sampling.py checks that transformers' warpers give
the package sampler's probabilities for these decodings; `generate` itself stays, so the committed sets rebuild
draw for draw.
"""
from __future__ import annotations

import argparse
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dftlab.models import REAL_CHAT_MODEL
from dftlab.storage import read_json_with_hash, reading_results_dir, results_dir, write_json_with_hash
from dftlab.validation import check_int, check_number

if TYPE_CHECKING:
    import pandas as pd

CHAT_MODEL = REAL_CHAT_MODEL
SEED = 2026

# Open writing prompts: many kinds of writing, none of which names a style, so that what recurs across the
# responses comes from the model and not from the request.
WRITING_PROMPTS = (
    "Write a very short story about a fox.",
    "Write a short story about a lighthouse keeper.",
    "Write a short story about a child who finds a key.",
    "Write a short story set in a bakery.",
    "Write a short story about two old friends meeting again.",
    "Write a short story about a lost dog finding its way home.",
    "Write a short story about a storm at sea.",
    "Write a short story about a robot learning to paint.",
    "Write a short story about a village market.",
    "Write a short story about a train journey.",
    "Write a short story about a girl and her grandmother.",
    "Write a short story that takes place in a library at night.",
    "Write a short story about a farmer during a drought.",
    "Write a short story about a boy who cannot swim.",
    "Write a short story about a musician who loses her hearing.",
    "Write a short story about a letter that arrives fifty years late.",
    "Write a short story about the first day at a new school.",
    "Write a short story about a cat that lives in a bookshop.",
    "Write a short story about a mountain climber.",
    "Write a short story about a power cut in a big city.",
    "Describe a rainy afternoon in a city.",
    "Describe a forest in winter.",
    "Describe the view from a kitchen window.",
    "Describe a busy train station.",
    "Describe an old house by the sea.",
    "Describe a summer evening in a small town.",
    "Describe a garden after the rain.",
    "Describe the inside of a workshop.",
    "Describe a desert at night.",
    "Describe a crowded beach.",
    "Write a poem about autumn.",
    "Write a poem about the moon.",
    "Write a poem about a river.",
    "Write a poem about morning coffee.",
    "Write a poem about a city at night.",
    "Write a poem about friendship.",
    "Write a poem about the sea.",
    "Write a poem about an old tree.",
    "Write a letter to a friend who has moved abroad.",
    "Write a letter thanking a teacher.",
    "Write a diary entry about a long day at work.",
    "Write a note to a neighbour about a noisy party.",
    "Write a postcard from a holiday in the mountains.",
    "Write a letter from a soldier to his family.",
    "Write a speech for a friend's wedding.",
    "Write a message apologising for missing a birthday.",
    "Write a paragraph about why people keep pets.",
    "Write a paragraph about the history of bread.",
    "Write a paragraph about learning a second language.",
    "Write a paragraph about the importance of sleep.",
    "Write a paragraph about what makes a good neighbour.",
    "Write a paragraph about cities and cars.",
    "Write a paragraph about the value of museums.",
    "Write a paragraph about walking as exercise.",
    "Write the opening of a mystery novel.",
    "Write the opening of a science fiction story.",
    "Write a fairy tale about a clever goose.",
    "Write a fable with a moral about patience.",
    "Write a scene in which two strangers share an umbrella.",
    "Write a description of your favourite meal.",
)

# Two decodings: the model's own distribution, and a common chat setting (the one claim 1 is judged at).
DECODINGS = {"T=1": {"temperature": 1.0, "top_p": 1.0}, "T=0.7, top-p 0.9": {"temperature": 0.7, "top_p": 0.9}}
REAL_MODEL_DECODING = "T=0.7, top-p 0.9"


def sample_set_config(quick: bool = False) -> dict:
    """Every setting that determines the sample set (its hash names the file and the resume cache)."""
    prompts = WRITING_PROMPTS[:4] if quick else WRITING_PROMPTS
    return {"name": "quick" if quick else "full", "model": CHAT_MODEL, "seed": SEED, "prompts": list(prompts),
            "responses_per_prompt": 2 if quick else 4, "max_new_tokens": 48 if quick else 128,
            "prompts_per_batch": 4 if quick else 10, "decodings": DECODINGS}


def sample_set_hash(config: dict) -> str:
    """12 hex digits naming a sample set: the config's digest with the model file's sha256 added to it."""
    from dftlab.models import GGUF_MODELS
    from dftlab.storage import config_digest

    return config_digest({**config, "model_sha256": GGUF_MODELS[config["model"]].sha256})


def default_sample_set_path(quick: bool = False) -> Path:
    """Where the sample set is read: the first results folder holding it (`dftlab.storage.results_folders`)."""
    config = sample_set_config(quick)
    name = f"chat-samples-{config['name']}-{sample_set_hash(config)}.json"
    return reading_results_dir(name) / name


def chat_prompt_text(tokenizer, prompt: str) -> str:
    """The exact text the instruction-tuned model is given for a user `prompt`: its chat template, with the
    system message the template adds and the header that opens the assistant's turn."""
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}.")
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("this tokenizer has no chat template; load an instruction-tuned model such as "
                         f"load_model({CHAT_MODEL!r}).")
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)


def chat_examples(tokenizer, examples) -> list[dict]:
    """Prompt/completion examples in an instruction-tuned model's chat format (the real-model study, chapter 9).

    The prompt becomes `chat_prompt_text(tokenizer, prompt)`: the user's turn holds the prompt, and the text ends
    with the header of the assistant's turn, so a loss on the completion alone falls on the assistant's tokens. The
    completion loses its leading space (TinyTales continues "Story:" with one; an assistant's turn starts on a new
    line without one), and its end-of-text token is the template's end of turn, the tokenizer's EOS.
    `story_from_response` undoes it.
    """
    return [{"prompt": chat_prompt_text(tokenizer, e["prompt"]), "completion": e["completion"].lstrip(" ")}
            for e in examples]


def story_from_response(prompt: str, response: str) -> dict:
    """A chat response to a TinyTales title as the TinyTales story it spells (the leading space restored)."""
    return {"prompt": prompt, "completion": " " + response.strip()}


@contextmanager
def padding_on_the_left(tokenizer):
    """Inside the block, `tokenizer` pads a batch on the left; its own padding side comes back afterwards."""
    padding_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield tokenizer
    finally:
        tokenizer.padding_side = padding_side


def generate_responses(model, tokenizer, prompts, responses_per_prompt: int = 1, *, temperature: float = 1.0,
                       top_p: float = 1.0, max_new_tokens: int = 192, seed: int = 0,
                       min_p: float | None = None, sequence_bias: dict | None = None) -> list[dict]:
    """Sample `responses_per_prompt` chat responses to each prompt in one left-padded batch.

    Returns [{"prompt", "response", "finished"}, ...] in prompt order; `finished` is False when the response was
    cut at `max_new_tokens`. The result depends on `seed` and on the batch (its prompts, padding and size).
    `min_p` (default: off) keeps only tokens whose probability is at least `min_p` times the most likely token's,
    after the temperature (transformers' min-p; slop-score's leaderboard samples at T = 0.7, min-p 0.1).
    `sequence_bias` (default: none) maps tuples of token ids to a number added to the log-odds of each tuple's last
    token whenever the tokens before it have just been generated (transformers' `sequence_bias`; see
    `dftlab.study.decoding_levers`).
    """
    import torch

    from dftlab.runtime import torch_global_seed
    from dftlab.sampling import SamplerSettings, transformers_generate_settings

    if isinstance(prompts, str) or not isinstance(prompts, (list, tuple)) or not prompts:
        raise ValueError("prompts must be a non-empty list of strings; wrap a single prompt as [prompt].")
    responses_per_prompt = check_int(responses_per_prompt, "responses_per_prompt")
    max_new_tokens = check_int(max_new_tokens, "max_new_tokens")
    temperature = check_number(temperature, "temperature", 0.0, low_open=True)
    top_p = check_number(top_p, "top_p", 0.0, 1.0, low_open=True)
    seed = check_int(seed, "seed", minimum=0)
    if min_p is not None:
        min_p = check_number(min_p, "min_p", 0.0, 1.0, low_open=True)
    settings = SamplerSettings(temperature=temperature, top_p=top_p, min_p=min_p)  # top-k off
    extra = {}
    if sequence_bias is not None:
        if not isinstance(sequence_bias, dict) or not all(
                isinstance(key, tuple) and key and all(isinstance(t, int) for t in key) for key in sequence_bias):
            raise ValueError("sequence_bias must map non-empty tuples of token ids to numbers, e.g. "
                             "{(tokenizer.encode(' tapestry', add_special_tokens=False)[0],): -10.0}.")
        extra["sequence_bias"] = {key: float(value) for key, value in sequence_bias.items()}
    texts = [chat_prompt_text(tokenizer, prompt) for prompt in prompts for _ in range(responses_per_prompt)]
    with padding_on_the_left(tokenizer):  # generation continues from the right end of every row
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    batch = batch.to(model.device)
    # generate draws from torch's global generator (it takes no torch.Generator): seeded for this call only
    with torch_global_seed(seed), torch.no_grad():
        output = model.generate(**batch, **transformers_generate_settings(settings), max_new_tokens=max_new_tokens,
                                pad_token_id=tokenizer.pad_token_id, **extra)
    new_tokens = output[:, batch["input_ids"].shape[1]:].tolist()
    eos = tokenizer.eos_token_id
    rows = []
    for text_index, tokens in enumerate(new_tokens):
        finished = eos in tokens
        tokens = tokens[:tokens.index(eos)] if finished else tokens
        rows.append({"prompt": prompts[text_index // responses_per_prompt],
                     "response": tokenizer.decode(tokens, skip_special_tokens=True).strip(), "finished": finished})
    return rows


def batch_seed(seed: int, decoding_index: int, batch_index: int) -> int:
    """The seed of one batch of a sample set: every batch has its own, so a resumed build draws what a whole one would."""
    return seed * 1_000 + decoding_index * 100 + batch_index


def build_sample_set(quick: bool = False, out: Path | None = None, log=print) -> Path:
    """Sample every batch (resuming from finished ones in the user cache), then write the set atomically."""
    import torch
    import transformers

    from dftlab import __version__
    from dftlab.models import GGUF_MODELS, cache_dir, load_model

    config = sample_set_config(quick)
    digest = sample_set_hash(config)
    path = Path(out) if out is not None else results_dir() / default_sample_set_path(quick).name
    runs = cache_dir() / f"chat-samples-runs-{config['name']}-{digest}"
    model, tokenizer = load_model(config["model"])
    prompts, per_batch = config["prompts"], config["prompts_per_batch"]
    batches = [prompts[start:start + per_batch] for start in range(0, len(prompts), per_batch)]
    responses, started = [], time.time()
    for decoding_index, (decoding, settings) in enumerate(config["decodings"].items()):
        for batch_index, batch_prompts in enumerate(batches):
            run_file = runs / f"{decoding_index}-{batch_index}.json"
            if run_file.exists():
                rows = read_json_with_hash(run_file)["rows"]
            else:
                batch_started = time.time()
                rows = generate_responses(model, tokenizer, batch_prompts, config["responses_per_prompt"],
                                          max_new_tokens=config["max_new_tokens"],
                                          seed=batch_seed(config["seed"], decoding_index, batch_index), **settings)
                write_json_with_hash(run_file, {"rows": rows})
                log(f"{decoding}: batch {batch_index + 1}/{len(batches)} in {time.time() - batch_started:.0f} s")
            first_prompt = prompts.index(batch_prompts[0])
            for row_index, row in enumerate(rows):
                prompt_index = first_prompt + row_index // config["responses_per_prompt"]
                responses.append({"decoding": decoding, "prompt_index": prompt_index, **row})
    provenance = {
        "command": "python -m dftlab.chat_samples" + (" --quick" if quick else ""),
        "model": config["model"], "weights": f"{GGUF_MODELS[config['model']].requirement}, file "
                                             f"{GGUF_MODELS[config['model']].file} (Q4_1), dequantised to float32",
        "model_sha256": GGUF_MODELS[config["model"]].sha256, "dftlab": __version__, "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": f"{platform.machine()}, {torch.get_num_threads()} torch threads",
        "sampler": "transformers generate, left padding, top_k=0; torch.manual_seed(seed*1000 + decoding*100 + "
                   "batch) before each batch",
    }
    payload = {"config": config, "config_hash": digest, "provenance": provenance, "responses": responses}
    write_json_with_hash(path, payload)
    log(f"wrote {len(responses)} responses to {path} (sampling took {time.time() - started:.0f} s this run)")
    return path


def load_sample_set(path: Path | None = None, quick: bool = False) -> dict:
    """The committed sample set: {"config", "config_hash", "provenance", "responses": [{"decoding", "prompt_index",
    "prompt", "response", "finished"}, ...]}. A missing or mismatched file is named with the command that rebuilds it."""
    path = default_sample_set_path(quick) if path is None else Path(path)
    return read_sample_set(path, sample_set_config(quick), "chat-model sample set", "other settings or another model",
                           "python -m dftlab.chat_samples" + (" --quick" if quick else ""))


def read_sample_set(path: Path, config: dict, what: str, differences: str, command: str) -> dict:
    """The sample set stored at `path`, refused unless it was built from `config` (and its recorded hash agrees).
    `what` names it, `differences` says what another config could differ in, `command` rebuilds it."""
    if not path.exists():
        raise FileNotFoundError(f"No {what} at {path} (looked in {path.parent}). Build it with "
                                f"`{command}`, or point DFTLAB_RESULTS at the folder that holds it.")
    payload = read_json_with_hash(path)
    if payload.get("config") != config or payload.get("config_hash") != sample_set_hash(config):
        raise ValueError(f"{path} was built with {differences} than this dftlab asks for "
                         f"(its hash is {payload.get('config_hash')!r}, expected {sample_set_hash(config)!r}). "
                         f"Rebuild it with `{command}`.")
    return payload


def responses_of(sample_set: dict, decoding: str) -> list[str]:
    """The response texts of one decoding, in prompt order."""
    if decoding not in sample_set["config"]["decodings"]:
        raise ValueError(f"decoding must be one of {list(sample_set['config']['decodings'])}, got {decoding!r}.")
    return [row["response"] for row in sample_set["responses"] if row["decoding"] == decoding]


def prompt_groups_of(sample_set: dict, decoding: str) -> list[int]:
    """The prompt index of each response of one decoding (the groups of `metrics.word_overuse`)."""
    responses_of(sample_set, decoding)  # checks the decoding
    return [row["prompt_index"] for row in sample_set["responses"] if row["decoding"] == decoding]


def formulaic_words_of(sample_set: dict, decoding: str = REAL_MODEL_DECODING, bootstrap: int = 1000) -> "pd.DataFrame":
    """`dftlab.metrics.formulaic_words` on one decoding of the sample set, grouped by prompt (claim 1's evidence)."""
    from dftlab.metrics import formulaic_words

    return formulaic_words(responses_of(sample_set, decoding), prompt_groups_of(sample_set, decoding),
                           bootstrap=bootstrap)


def response_statistics_by_decoding(sample_set: dict, opening_words: int = 3) -> "pd.DataFrame":
    """One row per decoding: how long and how varied the responses are, and how often they repeat an opening.

    Columns: responses, finished (share that ended before the token limit), words per response, distinct-1,
    distinct-2, self-BLEU, the most common opening of `opening_words` words and its share, and the share of
    responses with three consecutive sentences starting with the same word (Rosmine's statistic)."""
    import pandas as pd

    from dftlab import metrics

    rows = []
    for decoding in sample_set["config"]["decodings"]:
        texts = responses_of(sample_set, decoding)
        finished = [row["finished"] for row in sample_set["responses"] if row["decoding"] == decoding]
        openings = metrics.opening_table(texts, n_words=opening_words, top=1)
        rows.append({"decoding": decoding, "responses": len(texts), "finished": sum(finished) / len(finished),
                     "words per response": metrics.mean_word_count(texts),
                     "distinct-1": metrics.distinct_n(texts, 1), "distinct-2": metrics.distinct_n(texts, 2),
                     "self-BLEU": metrics.self_bleu(texts), "top opening": openings["opening"].iloc[0],
                     "top opening share": openings["share"].iloc[0],
                     "3 sentences, same first word": metrics.same_opener_run_rate(texts, run=3)})
    return pd.DataFrame(rows).set_index("decoding")


def sample_set_command(argv, prog: str, description: str, build, quick_help: str) -> int:
    """The command line of a sample-set builder (`build(quick=..., out=..., log=...)`): --quick and --out."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--out", type=Path, default=None, help="write here instead of your results folder")
    args = parser.parse_args(argv)
    build(quick=args.quick, out=args.out, log=lambda line: print(line, flush=True))
    return 0


def main(argv=None) -> int:
    return sample_set_command(argv, "python -m dftlab.chat_samples", __doc__.split("\n\n")[0], build_sample_set,
                              "4 prompts x 2 responses of 48 tokens, to try it")


if __name__ == "__main__":
    sys.exit(main())
