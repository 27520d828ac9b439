#!/usr/bin/env python3
"""PyTorch baseline for bench/train.ts and bench/gpu.ts: SamOut training steps per second.

The same model tree as docs/SAMOUT.md (and tools/make_fixtures.py):
embedding, position embedding, per layer concat(pos, h) -> Down -> MaxState
(running max with torch.cummax) -> gated FFN -> alpha mix -> LayerNorm -> + u,
then the head; cross-entropy with ignore_index=0, Adam (lr 1e-3).

Usage: python3 bench/pytorch_train.py [--vocab 1100 --hidden 128 --heads 8
  --layers 2 --batch 16 --seq 128 --warmup 2 --steps 5 --threads N --device cpu|cuda]
Prints one JSON object: {"tokens_per_s": ..., "step_s": ..., "cpu_s_per_step": ...,
"threads": ..., "device": ...} (CPU seconds of all threads: steadier than wall time on a
shared machine). Tokens per step = batch * seq (input positions, as in bench/train.ts).

--device cuda is the peer on an NVIDIA machine (bench/gpu.ts): the same steps in plain FP32,
TF32 turned off (a WGSL step multiplies in FP32), each step ending in loss.item() as on the CPU,
so the timing covers the GPU's work; it adds "gpu" (the device's name) to the JSON. Without a
CUDA device it exits with status 2 and says so on stderr.
"""
import argparse
import json
import math
import os
import sys
import time

import torch
from torch import nn


class MaxState(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.head0 = nn.Linear(hidden, hidden, bias=False)
        self.head1 = nn.Linear(hidden, hidden, bias=False)
        self.head2 = nn.Linear(hidden, hidden, bias=False)
        self.scale = 1.0 / math.sqrt(hidden // heads)

    def forward(self, u):
        a, b, c = self.head0(u), self.head1(u), self.head2(u)
        z = (a + b) * self.scale
        m = torch.cummax(z, dim=1).values
        return (m + c) * m + b


class FeedForward(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.ffn1 = nn.Linear(hidden, 2 * hidden)
        self.gate = nn.Linear(hidden, 2 * hidden)
        self.ffn2 = nn.Linear(2 * hidden, hidden)

    def forward(self, s):
        return self.ffn2(self.ffn1(s) * torch.relu(self.gate(s)))


class DecoderLayer(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.self_attention = MaxState(hidden, heads)
        self.ffn = FeedForward(hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=1e-5)
        self.alpha = nn.Parameter(torch.tensor(0.5))

    def forward(self, u):
        f = self.ffn(self.self_attention(u))
        return self.layer_norm(self.alpha * f + (1 - self.alpha) * u) + u


class SamOut(nn.Module):
    def __init__(self, vocab, hidden, heads, layers, positions):
        super().__init__()
        self.em = nn.Embedding(vocab, hidden, padding_idx=0)
        self.pos = nn.Embedding(positions, hidden)
        self.down = nn.ModuleList(
            [nn.Linear(2 * hidden, hidden, bias=False) for _ in range(layers)])
        self.decoder_layers = nn.ModuleList(
            [DecoderLayer(hidden, heads) for _ in range(layers)])
        self.head = nn.Linear(hidden, vocab, bias=False)

    def forward(self, x):
        h = self.em(x)
        p = self.pos(torch.arange(x.shape[1], device=x.device)).unsqueeze(0).expand_as(h)
        for down, layer in zip(self.down, self.decoder_layers):
            h = layer(down(torch.cat([p, h], dim=-1)))
        return self.head(h)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=1100)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    args = ap.parse_args()

    if args.device == "cuda":
        if not torch.cuda.is_available():
            print(f"pytorch_train.py: --device cuda, but torch {torch.__version__} sees no CUDA "
                  "device", file=sys.stderr)
            sys.exit(2)
        # FP32 as the WGSL graph computes it: no TF32 in matrix products or convolutions.
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    model = SamOut(args.vocab, args.hidden, args.heads, args.layers, max(1024, args.seq))
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss(ignore_index=0)
    seq = torch.randint(1, args.vocab, (args.batch, args.seq + 1)).to(device)
    x, y = seq[:, :-1], seq[:, 1:]

    def step():
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits.reshape(-1, args.vocab), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    c0 = time.process_time()
    for _ in range(args.steps):
        step()
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    tokens = args.steps * args.batch * args.seq
    result = {
        "tokens_per_s": tokens / elapsed,
        "step_s": elapsed / args.steps,
        "cpu_s_per_step": cpu / args.steps,
        "threads": args.threads,
        "torch": torch.__version__,
        "device": args.device,
    }
    if args.device == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
