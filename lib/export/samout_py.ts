/**
 * `samout.py`, the bundle's PyTorch module: SamOut with docs/SAMOUT.md's
 * module names (so `load_state_dict` takes `model.safetensors` as is), the
 * full forward and the step form, and a safetensors reader in plain Python +
 * torch for machines without the `safetensors` package. Kept here as a
 * string so the export step's code hash covers it; `tools/check_export.py`
 * runs it against the bundle's ONNX models.
 *
 * @module
 */

/** The text of `samout.py`. */
export const SAMOUT_PY = `"""SamOut (docs/SAMOUT.md of the samout-audio project) in PyTorch.

A decoder whose token mixer is a running maximum along time instead of
attention, so generation carries a fixed-size state per layer.

    import torch, samout
    model = samout.SamOut.from_bundle("path/to/bundle")    # config.json + model.safetensors
    logits = model(torch.tensor([[1, 57, 80]]))             # [batch, length, V]

    state = model.initial_state(batch=1)                    # [L, batch, d], all -inf
    for t, token in enumerate([1, 57, 80]):
        logits, state = model.step(torch.tensor([token]), state, t)   # [batch, V]

Module names are SAMOUT.md's, so
\`model.load_state_dict(safetensors.torch.load_file("model.safetensors"))\`
works; \`load_safetensors\` below does the same without the safetensors package.

Run \`python3 samout.py [bundle_dir]\` to load the bundle and check that the
step form gives the full forward's logits.
"""
import json
import math
import os
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


class MaxState(nn.Module):
    """The token mixer: s = (m + c) * m + b, m the running maximum of z = (a + b) / sqrt(hs)."""

    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.head0 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.head1 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.head2 = nn.Linear(hidden_size, hidden_size, bias=False)
        self.head_size = hidden_size // num_heads

    def _abcz(self, u):
        a, b, c = self.head0(u), self.head1(u), self.head2(u)
        return b, c, (a + b) / math.sqrt(self.head_size)

    def forward(self, u):
        """u [batch, length, d] -> s [batch, length, d]."""
        b, c, z = self._abcz(u)
        m, _ = torch.cummax(z, dim=1)  # running maximum along time
        return (m + c) * m + b

    def step(self, u, m):
        """u [batch, d], m [batch, d] (the running maximum so far) -> s, new m."""
        b, c, z = self._abcz(u)
        m = torch.maximum(m, z)
        return (m + c) * m + b, m


class FeedForward(nn.Module):
    """Ffn2(Ffn1(s) * relu(Gate(s)))."""

    def __init__(self, hidden_size):
        super().__init__()
        self.ffn1 = nn.Linear(hidden_size, 2 * hidden_size)
        self.gate = nn.Linear(hidden_size, 2 * hidden_size)
        self.ffn2 = nn.Linear(2 * hidden_size, hidden_size)

    def forward(self, s):
        return self.ffn2(self.ffn1(s) * F.relu(self.gate(s)))


class DecoderLayer(nn.Module):
    """h = LayerNorm(alpha * Ffn(MaxState(u)) + (1 - alpha) * u) + u."""

    def __init__(self, hidden_size, num_heads):
        super().__init__()
        self.self_attention = MaxState(hidden_size, num_heads)
        self.ffn = FeedForward(hidden_size)
        self.layer_norm = nn.LayerNorm(hidden_size, eps=1e-5)
        self.alpha = nn.Parameter(torch.tensor(0.5))

    def _out(self, s, u):
        f = self.ffn(s)
        return self.layer_norm(self.alpha * f + (1 - self.alpha) * u) + u

    def forward(self, u):
        return self._out(self.self_attention(u), u)

    def step(self, u, m):
        s, m = self.self_attention.step(u, m)
        return self._out(s, u), m


class SamOut(nn.Module):
    """Token ids [batch, length] (0 = padding, length <= max_positions) -> logits [batch, length, V]."""

    def __init__(self, voc_size, hidden_size, num_heads, num_layers, max_positions):
        super().__init__()
        self.max_positions = max_positions
        self.em = nn.Embedding(voc_size, hidden_size, padding_idx=0)
        self.pos = nn.Embedding(max_positions, hidden_size)
        self.down = nn.ModuleList(
            [nn.Linear(2 * hidden_size, hidden_size, bias=False) for _ in range(num_layers)])
        self.decoder_layers = nn.ModuleList(
            [DecoderLayer(hidden_size, num_heads) for _ in range(num_layers)])
        self.head = nn.Linear(hidden_size, voc_size, bias=False)

    def forward(self, x):
        batch, length = x.shape
        if length > self.max_positions:
            raise ValueError(f"sequence of {length} tokens; the model takes at most {self.max_positions}")
        h = self.em(x)
        p = self.pos(torch.arange(length, device=x.device)).unsqueeze(0).expand(batch, length, -1)
        for down, layer in zip(self.down, self.decoder_layers):
            h = layer(down(torch.cat([p, h], dim=-1)))
        return self.head(h)

    def initial_state(self, batch, device=None):
        """Each layer's running maximum before the first token: [L, batch, d] of -inf."""
        return torch.full((len(self.decoder_layers), batch, self.em.embedding_dim), -math.inf,
                          device=device)

    def step(self, token, state, position):
        """token [batch] ids at \`position\` (an int or a [batch] tensor), state [L, batch, d]
        -> logits [batch, V], the new state."""
        position = torch.as_tensor(position, device=token.device).expand(token.shape[0])
        if int(position.max()) >= self.max_positions:
            raise ValueError(f"position {int(position.max())}; the model takes at most {self.max_positions}")
        h = self.em(token)
        p = self.pos(position)
        new_state = []
        for layer_index, (down, layer) in enumerate(zip(self.down, self.decoder_layers)):
            h, m = layer.step(down(torch.cat([p, h], dim=-1)), state[layer_index])
            new_state.append(m)
        return self.head(h), torch.stack(new_state)

    @classmethod
    def from_config(cls, config):
        """A model of the sizes in a config.json dict (voc_size, hidden_size, num_heads, ...)."""
        return cls(config["voc_size"], config["hidden_size"], config["num_heads"],
                   config["num_layers"], config["max_positions"])

    @classmethod
    def from_bundle(cls, bundle_dir):
        """The model of an export bundle: config.json's sizes, model.safetensors' weights."""
        with open(os.path.join(bundle_dir, "config.json")) as f:
            model = cls.from_config(json.load(f))
        model.load_state_dict(load_weights(os.path.join(bundle_dir, "model.safetensors")))
        return model.eval()


_DTYPES = {"F32": torch.float32, "F64": torch.float64, "F16": torch.float16, "BF16": torch.bfloat16}


def load_safetensors(path):
    """A safetensors file as {name: float32 tensor}, with plain Python and torch."""
    with open(path, "rb") as f:
        data = f.read()
    (header_length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_length])
    start = 8 + header_length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        raw = data[start + begin:start + end]
        if sys.byteorder != "little":  # the file is little-endian; reverse each value's bytes
            size = torch.empty(0, dtype=dtype).element_size()
            raw = b"".join(raw[i:i + size][::-1] for i in range(0, len(raw), size))
        raw = bytearray(raw)
        values = torch.frombuffer(raw, dtype=dtype) if raw else torch.zeros(0)
        tensors[name] = values.to(torch.float32).reshape(entry["shape"])
    return tensors


def load_weights(path):
    """The state dict in \`path\`: the safetensors package where installed, else load_safetensors."""
    try:
        from safetensors.torch import load_file
    except ImportError:
        return load_safetensors(path)
    return load_file(path)


def _self_check(bundle_dir):
    model = SamOut.from_bundle(bundle_dir)
    with open(os.path.join(bundle_dir, "vocab.json")) as f:
        vocab = json.load(f)
    codes = [vocab["code_offset"] + (7 * i) % vocab["codebook_size"] for i in range(11)]
    ids = torch.tensor([[vocab["im_start_id"]] + codes])
    with torch.no_grad():
        full = model(ids)[0]
        state = model.initial_state(1)
        steps = []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state, t)
            steps.append(logits[0])
        diff = (torch.stack(steps) - full).abs().max().item()
    scale = full.abs().max().item()
    print(f"SamOut: {sum(p.numel() for p in model.parameters())} parameters; "
          f"step form vs full forward over {ids.shape[1]} tokens: max |difference| {diff:.3g} "
          f"(max |logit| {scale:.3g})")
    return diff <= 1e-4 * scale


if __name__ == "__main__":
    sys.exit(0 if _self_check(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))) else 1)
`;
