"""How far one fine-tune drifts between two CPU kernel families, in float32 and in float64.

    python bench/float64_agreement.py [--steps 200] [--objective dft]

Runs chapter 4's fine-tune (tiny-gpt2, the study's seed-0 settings) four times, each in a fresh process: float32 and
float64, each with torch, MKL and oneDNN on this CPU's native kernels and capped at the generic ones (the settings
of bench/cpu_spread.py). Prints, per dtype, the largest relative difference between the two kernel families over
the validation measures and the largest absolute difference over all weights: the size of what a training run on
another CPU would change.
"""
import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from cpu_spread import capability_env  # noqa: E402

RUN = """
import json, sys, torch, dftlab
from dftlab import study, train
from dftlab.tinytales import TinyTales
torch.set_num_threads(1)
dtype, steps, objective, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = study.default_config()
splits = TinyTales(seed=0).splits(train=3000, valid=100, test=300)
model, tokenizer = dftlab.load_model(dtype=getattr(torch, dtype))
result = train.train(model, tokenizer, splits["train"], splits["valid"], objective=objective, steps=steps,
                     batch_size=config.batch_size, lr=config.lr, warmup_steps=config.warmup_steps, eval_every=steps,
                     max_length=config.max_length, seed=0, progress=False)
last = result.history.iloc[-1]
torch.save({name: p.detach().double() for name, p in model.named_parameters()}, out + ".pt")
json.dump({k: float(last[k]) for k in ("valid_nll", "valid_entropy", "valid_accuracy", "train_loss")}, open(out, "w"))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--objective", default="dft")
    args = parser.parse_args()
    import tempfile

    import torch
    folder = tempfile.mkdtemp(prefix="float64-agreement-")
    print(f"{args.objective}, {args.steps} steps, seed 0; native kernels vs generic ones (torch, MKL, oneDNN)\n")
    print("| dtype | largest relative difference, validation measures | largest weight difference |")
    print("|---|---|---|")
    for dtype in ("float32", "float64"):
        runs = {}
        for capability in ("native", "default"):
            env = {**os.environ}
            if capability != "native":
                env.update(capability_env(capability))
            out = os.path.join(folder, f"{dtype}-{capability}.json")
            subprocess.run([sys.executable, "-c", RUN, dtype, str(args.steps), args.objective, out], env=env, check=True)
            runs[capability] = (json.load(open(out)), torch.load(out + ".pt", weights_only=True))
        (a, wa), (b, wb) = runs["native"], runs["default"]
        relative = max(abs(a[k] - b[k]) / max(abs(a[k]), 1e-300) for k in a)
        weights = max((wa[name] - wb[name]).abs().max().item() for name in wa)
        print(f"| {dtype} | {relative:.1e} | {weights:.1e} |", flush=True)


if __name__ == "__main__":
    main()
