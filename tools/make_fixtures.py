#!/usr/bin/python3
"""PyTorch parity fixtures for the SamOut CPU reference (tests/parity_reference_test.ts).

Builds the SamOut module tree of docs/SAMOUT.md in PyTorch with the exact
parameter names, initialises it with PyTorch's default initialisers (seeded),
rounds the weights to float32 and then computes everything in float64:

  tests/fixtures/samout/fixture.json        config, batch, loss/accuracy, per-step losses
  tests/fixtures/samout/init.safetensors    initial weights (F32, with the size metadata)
  tests/fixtures/samout/logits.safetensors  logits of the input batch, [B*S, V]
  tests/fixtures/samout/grads.safetensors   d loss / d parameter at the initial weights
  tests/fixtures/samout/adam3.safetensors   weights after 3 Adam steps (lr 1e-3, defaults)
  tests/fixtures/samout/adam3_clip.safetensors  same, clipping grads to global norm 0.5 first
  tests/fixtures/samout/adamw3.safetensors  weights after 3 AdamW steps (lr 1e-3, wd 0.1)
  tests/fixtures/samout/trained.safetensors weights after 2 Adam steps at lr 3e-2 (F32), where
                                            the batch's token accuracy is neither 0 nor 1
  tests/fixtures/samout/trained.json        loss, correct, count, accuracy of the batch at those
                                            weights, and the smallest top-1 logit margin

All optimiser runs repeat the same batch three times. Every file is written by the
small safetensors writer below (no `safetensors` package needed).

Regenerate (needs PyTorch; Debian's python3-torch 1.13 made the committed files):

  /usr/bin/python3 tools/make_fixtures.py

CI never runs this script; the outputs are committed.
"""
import json
import math
import os
import struct

import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "samout")
CONFIG = dict(vocab_size=23, hidden=16, heads=4, layers=2, max_positions=32)
SEED = 20241124
LENGTHS = [11, 7, 4]  # tokens per sequence before padding; the batch is padded to 11
STEPS = 3
TRAINED = dict(lr=3e-2, steps=2)  # accuracy 14/19 with every top-1 margin above 0.06


class MaxState(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.head0 = nn.Linear(d, d, bias=False)
        self.head1 = nn.Linear(d, d, bias=False)
        self.head2 = nn.Linear(d, d, bias=False)
        self.head_size = d // heads

    def forward(self, u):
        a, b, c = self.head0(u), self.head1(u), self.head2(u)
        z = (a + b) / math.sqrt(self.head_size)
        m, _ = torch.cummax(z, dim=1)  # running max along time; ties -> latest index
        return (m + c) * m + b


class FeedForward(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ffn1 = nn.Linear(d, 2 * d)
        self.gate = nn.Linear(d, 2 * d)
        self.ffn2 = nn.Linear(2 * d, d)

    def forward(self, s):
        return self.ffn2(self.ffn1(s) * F.relu(self.gate(s)))


class DecoderLayer(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.self_attention = MaxState(d, heads)
        self.ffn = FeedForward(d)
        self.layer_norm = nn.LayerNorm(d, eps=1e-5)
        self.alpha = nn.Parameter(torch.tensor(0.5))

    def forward(self, u):
        f = self.ffn(self.self_attention(u))
        r = self.layer_norm(self.alpha * f + (1 - self.alpha) * u)
        return r + u


class SamOut(nn.Module):
    def __init__(self, vocab_size, hidden, heads, layers, max_positions):
        super().__init__()
        self.em = nn.Embedding(vocab_size, hidden, padding_idx=0)
        self.pos = nn.Embedding(max_positions, hidden)
        self.down = nn.ModuleList([nn.Linear(2 * hidden, hidden, bias=False) for _ in range(layers)])
        self.decoder_layers = nn.ModuleList([DecoderLayer(hidden, heads) for _ in range(layers)])
        self.head = nn.Linear(hidden, vocab_size, bias=False)

    def forward(self, x):
        B, S = x.shape
        h = self.em(x)
        p = self.pos(torch.arange(S)).unsqueeze(0).expand(B, S, -1)
        for down, layer in zip(self.down, self.decoder_layers):
            h = layer(down(torch.cat([p, h], dim=-1)))
        return self.head(h)


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> torch tensor; stored F32 little-endian, sorted by name."""
    header = {"__metadata__": metadata} if metadata else {}
    blobs, offset = [], 0
    for name in sorted(tensors):
        data = tensors[name].detach().to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(tensors[name].shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def metadata():
    return {"voc_size": str(CONFIG["vocab_size"]), "hidden_size": str(CONFIG["hidden"]),
            "num_heads": str(CONFIG["heads"]), "num_layers": str(CONFIG["layers"]),
            "max_positions": str(CONFIG["max_positions"])}


def make_batch():
    g = torch.Generator().manual_seed(SEED + 1)
    S1 = max(LENGTHS)
    seq = torch.zeros(len(LENGTHS), S1, dtype=torch.long)
    for b, n in enumerate(LENGTHS):
        seq[b, :n] = torch.randint(1, CONFIG["vocab_size"], (n,), generator=g)
    return seq


def loss_and_metrics(model, seq):
    logits = model(seq[:, :-1])
    target = seq[:, 1:].reshape(-1)
    flat = logits.reshape(-1, logits.shape[-1])
    loss = F.cross_entropy(flat, target, ignore_index=0)
    mask = target != 0
    correct = int((flat.argmax(dim=-1)[mask] == target[mask]).sum())
    return logits, loss, correct, int(mask.sum())


def fresh_model(init_state):
    model = SamOut(**CONFIG).double()
    model.load_state_dict(init_state)
    return model


def train(init_state, seq, make_opt, clip=None, steps=STEPS):
    model = fresh_model(init_state)
    opt = make_opt(model.parameters())
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        _, loss, _, _ = loss_and_metrics(model, seq)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(loss.item())
    return model, losses


def write_trained(init_state, seq):
    """Weights at which the fixture batch's token accuracy is strictly between 0 and 1.

    At the initial weights no target is predicted (accuracy 0/19), so a broken
    accuracy count could still match there; these weights catch it.
    """
    trained, _ = train(init_state, seq, lambda ps: torch.optim.Adam(ps, lr=TRAINED["lr"]),
                       steps=TRAINED["steps"])
    # Stored as F32; evaluate in float64 from exactly those values.
    state = {k: v.detach().to(torch.float32).to(torch.float64)
             for k, v in trained.state_dict().items()}
    model = fresh_model(state)
    with torch.no_grad():
        logits, loss, correct, count = loss_and_metrics(model, seq)
        target = seq[:, 1:].reshape(-1)
        flat = logits.reshape(-1, logits.shape[-1])[target != 0]
        top2 = flat.topk(2, dim=-1).values
        margin = (top2[:, 0] - top2[:, 1]).min().item()
    assert 0 < correct < count, f"accuracy {correct}/{count} must be strictly between 0 and 1"
    write_safetensors(os.path.join(OUT, "trained.safetensors"), state, metadata())
    summary = {
        "generator": "tools/make_fixtures.py",
        "torch_version": torch.__version__,
        "weights": "trained.safetensors: init.safetensors after Adam on fixture.json's batch",
        "optimizer": {"kind": "adam", "lr": TRAINED["lr"], "steps": TRAINED["steps"]},
        "loss": loss.item(),
        "correct": correct,
        "count": count,
        "accuracy": correct / count,
        "min_top1_margin": margin,
    }
    with open(os.path.join(OUT, "trained.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    model = SamOut(**CONFIG)  # float32 init, PyTorch's default initialisers
    # The committed weights are F32; compute in float64 from exactly those values.
    init_state = {k: v.detach().to(torch.float64) for k, v in model.state_dict().items()}
    seq = make_batch()

    model = fresh_model(init_state)
    logits, loss, correct, count = loss_and_metrics(model, seq)
    loss.backward()
    grads = {n: p.grad for n, p in model.named_parameters()}

    adam_model, adam_losses = train(init_state, seq, lambda ps: torch.optim.Adam(ps, lr=1e-3))
    clip_model, clip_losses = train(init_state, seq, lambda ps: torch.optim.Adam(ps, lr=1e-3), clip=0.5)
    adamw_model, adamw_losses = train(
        init_state, seq, lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=0.1))

    write_safetensors(os.path.join(OUT, "init.safetensors"), init_state, metadata())
    write_safetensors(os.path.join(OUT, "logits.safetensors"),
                      {"logits": logits.reshape(-1, CONFIG["vocab_size"])}, {})
    write_safetensors(os.path.join(OUT, "grads.safetensors"), grads, metadata())
    write_safetensors(os.path.join(OUT, "adam3.safetensors"), adam_model.state_dict(), metadata())
    write_safetensors(os.path.join(OUT, "adam3_clip.safetensors"), clip_model.state_dict(), metadata())
    write_safetensors(os.path.join(OUT, "adamw3.safetensors"), adamw_model.state_dict(), metadata())
    write_trained(init_state, seq)
    summary = {
        "generator": "tools/make_fixtures.py",
        "torch_version": torch.__version__,
        "seed": SEED,
        "config": CONFIG,
        "batch": seq.tolist(),
        "loss": loss.item(),
        "correct": correct,
        "count": count,
        "accuracy": correct / count,
        "adam": {"lr": 1e-3, "betas": [0.9, 0.999], "eps": 1e-8, "steps": STEPS,
                 "losses": adam_losses},
        "adam_clip": {"lr": 1e-3, "max_norm": 0.5, "steps": STEPS, "losses": clip_losses},
        "adamw": {"lr": 1e-3, "weight_decay": 0.1, "steps": STEPS, "losses": adamw_losses},
    }
    with open(os.path.join(OUT, "fixture.json"), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    print(json.dumps({k: summary[k] for k in ("loss", "correct", "count")}))


if __name__ == "__main__":
    main()
