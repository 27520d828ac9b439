#!/usr/bin/env python3
"""Token ids of WAV files from a mel-vq tokenizer folder, following only what
its tokenizer.json says (`conventions`), with numpy: what a user of an export
bundle without this project would write. tests/tokenize_job_test.ts checks
that it gives the tokenize job's codes.

Usage: tokenize_by_conventions.py TOKENIZER_DIR FILE.wav...
The WAVs must be 16-bit PCM at the tokenizer's sample rate (resampling is the
one step left to the caller). Prints {"FILE": [code, ...], ...} as JSON:
codebook indices, before vocab.json's code_offset.
"""
import json
import os
import sys
import wave

import numpy

# The conventions this reader implements; a tokenizer.json that says anything
# else is refused rather than read wrongly.
IMPLEMENTED = {"frames", "window", "spectrum", "mel", "log", "code", "audio", "torchaudio"}


def read_wav(path, rate):
    with wave.open(path) as w:
        if w.getsampwidth() != 2 or w.getframerate() != rate:
            sys.exit(f"{path}: expected 16-bit PCM at {rate} Hz")
        raw = w.readframes(w.getnframes())
        channels = w.getnchannels()
    x = numpy.frombuffer(raw, dtype="<i2").astype(numpy.float64) / 32768.0
    return x.reshape(-1, channels).mean(axis=1)  # "mix the channels to one by their mean"


def mel_filters(t):
    to_mel = lambda hz: 2595.0 * numpy.log10(1.0 + hz / 700.0)  # noqa: E731
    to_hz = lambda mel: 700.0 * (10.0 ** (mel / 2595.0) - 1.0)  # noqa: E731
    edges = to_hz(numpy.linspace(to_mel(t["f_min"]), to_mel(t["f_max"]), t["n_mels"] + 2))
    bins = numpy.linspace(0.0, t["sample_rate"] / 2.0, t["n_fft"] // 2 + 1)
    filters = numpy.zeros((t["n_mels"], bins.size))
    for m in range(t["n_mels"]):
        lo, mid, hi = edges[m], edges[m + 1], edges[m + 2]
        filters[m] = numpy.maximum(0.0, numpy.minimum((bins - lo) / (mid - lo), (hi - bins) / (hi - mid)))
    return filters


def codes(x, t, codebook):
    n_fft, hop, win = t["n_fft"], t["hop_length"], t["win_length"]
    padded = numpy.pad(x, n_fft // 2, mode="reflect")
    window = numpy.zeros(n_fft)
    start = (n_fft - win) // 2
    window[start:start + win] = 0.5 - 0.5 * numpy.cos(2.0 * numpy.pi * numpy.arange(win) / win)
    count = 1 + x.size // hop
    frames = numpy.stack([padded[i * hop:i * hop + n_fft] * window for i in range(count)])
    power = numpy.abs(numpy.fft.rfft(frames, axis=1)) ** 2
    log_mel = numpy.log(numpy.maximum(power @ mel_filters(t).T, 1e-10))
    distances = ((log_mel[:, None, :] - codebook[None, :, :]) ** 2).sum(axis=2)
    return distances.argmin(axis=1).tolist()


def main(folder, paths):
    with open(os.path.join(folder, "tokenizer.json")) as f:
        t = json.load(f)
    said = set(t.get("conventions", {}))
    if t.get("kind") != "mel-vq" or said != IMPLEMENTED:
        sys.exit(f"{folder}/tokenizer.json: expected a mel-vq tokenizer whose conventions are {sorted(IMPLEMENTED)}")
    if "1e-10" not in t["conventions"]["log"]:
        sys.exit(f"{folder}/tokenizer.json: conventions.log changed: {t['conventions']['log']}")
    codebook = numpy.fromfile(os.path.join(folder, t["codebook"]), dtype="<f4")
    codebook = codebook.reshape(t["codebook_size"], t["n_mels"]).astype(numpy.float64)
    print(json.dumps({p: codes(read_wav(p, t["sample_rate"]), t, codebook) for p in paths}))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
