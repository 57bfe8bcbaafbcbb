"""Search for the smallest pretraining recipe whose base model writes valid TinyTales stories.

Each recipe trains once with `dftlab.study.pretrain.pretrain` and is measured every `--every` steps: the
share of valid stories among samples at T = 1 for the first test prompts of the study's TinyTales
(seed 0, zipf 1.1; validity does not depend on the exponent, only on the grammar). The learning rate
follows the recipe's own cosine schedule, so a checkpoint before the end is a lower bound for a
recipe stopped there. Results go to bench/RESULTS.md by hand.

    python bench/pretrain_search.py --recipe aligned75 --steps 3000 --every 500
"""
import argparse
import json
import time

import torch

from dftlab.generate import sample_completions
from dftlab.metrics import validity_rate
from dftlab.study.pretrain import PretrainConfig, pretrain
from dftlab.tinytales import TinyTales

RECIPES = {
    "packed": {"story_fraction": 0.0},                 # the first recipe: stories cut anywhere in the stream
    "aligned50": {"story_fraction": 0.5},
    "aligned75": {"story_fraction": 0.75},
    "english": {"corpus": "english"},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="aligned75")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--every", type=int, default=500)
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--set", nargs="*", default=[], help="extra PretrainConfig fields, e.g. n_layer=3")
    args = parser.parse_args()
    torch.set_num_threads(2)
    overrides = dict(RECIPES[args.recipe])
    for item in args.set:
        key, value = item.split("=")
        overrides[key] = type(getattr(PretrainConfig(), key))(value)
    config = PretrainConfig(steps=args.steps, **overrides)
    tales = TinyTales(seed=0)
    prompts = [s["prompt"] for s in tales.splits(train=10, valid=10, test=args.prompts)["test"]]
    started = time.time()

    def measure(step, model, tokenizer):
        samples = sample_completions(model, tokenizer, prompts, 1, temperature=1.0, max_new_tokens=96, seed=0)
        print(json.dumps({"recipe": args.recipe, "overrides": overrides, "step": step,
                          "validity_T1": validity_rate(samples, tales), "seconds": round(time.time() - started)}),
              flush=True)
        if step == args.steps:
            print("sample:", samples[0]["prompt"], samples[0]["completion"], flush=True)

    _, _, report = pretrain(config, log=lambda m: print(m, flush=True), evaluate_every=args.every,
                            on_evaluate=measure)
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
