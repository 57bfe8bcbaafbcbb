"""Choose tiny-gpt2's shape by measuring speed against quality on this machine.

Each candidate GPT-2 config trains for the same wall-clock budget on the same corpus sample;
the script prints tokens/s and the validation loss reached. Run: python bench/pretrain_configs.py [--seconds 60]
"""
import argparse
import time

import torch

from dftlab.study import pretrain as P
from dftlab.corpus import kjv_passages, load_corpus

CANDIDATES = [(2, 128), (4, 128), (3, 192), (4, 192), (4, 256)]  # (layers, width); context 128, 4 heads


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    torch.manual_seed(0)
    documents = kjv_passages()[:4000] + load_corpus("devils_dictionary")
    tokenizer = P.train_tokenizer(documents, 4096)
    blocks = P.make_blocks(tokenizer, documents, 128)
    blocks = blocks[torch.randperm(len(blocks), generator=torch.Generator().manual_seed(0))]
    valid, train = blocks[:64], blocks[64:]
    print(f"{'layers':>6} {'width':>5} {'params':>10} {'tokens/s':>9} {'steps':>6} {'valid loss':>10}")
    for n_layer, n_embd in CANDIDATES:
        config = P.PretrainConfig(n_layer=n_layer, n_embd=n_embd, n_head=4)
        model = P.build_model(config, len(tokenizer))
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, betas=(0.9, 0.95))
        generator = torch.Generator().manual_seed(0)
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < args.seconds:
            batch = train[torch.randint(len(train), (24,), generator=generator)]
            loss = model(input_ids=batch, labels=batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
        elapsed = time.perf_counter() - started
        print(f"{n_layer:>6} {n_embd:>5} {model.num_parameters():>10,} {steps * 24 * 128 / elapsed:>9.0f} {steps:>6} "
              f"{P.block_loss(model, valid, tokenizer.eos_token_id):>10.3f}")


if __name__ == "__main__":
    main()
