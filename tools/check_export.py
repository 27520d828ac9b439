#!/usr/bin/python3
"""Checks an export bundle (jobs/export.ts) from Python, independently of the Deno code:

  1. the bundle's samout.py builds the model and load_state_dict(strict=True) takes
     model.safetensors (through the safetensors package where installed, else samout.py's
     plain-Python reader);
  2. PyTorch's logits match the ONNX logits the export recorded in check.json (onnxruntime-web,
     wasm) to 1e-4 relative, and the step form run token by token matches the full forward;
  3. onnx.checker.check_model(full_check=True) passes for model.onnx and model.step.onnx, and
     their initializers are the safetensors tensors, bit for bit;
  4. where the onnx package has a reference evaluator (onnx >= 1.13; Debian 12 ships 1.12),
     model.onnx and model.step.onnx run in it and match PyTorch.

Usage (Debian: apt-get install python3-torch python3-onnx; CI does not need them):

  /usr/bin/python3 tools/check_export.py BUNDLE_DIR

Prints one JSON object with what was checked and the measured errors; exits 1 on a failure.
"""
import importlib.util
import json
import math
import os
import sys
import types

import numpy
import torch

TOLERANCE = 1e-4


def relative_error(actual, expected):
    """max |actual - expected| / max |expected| (inf when anything is not finite)."""
    actual, expected = actual.double(), expected.double()
    if actual.shape != expected.shape or not (torch.isfinite(actual).all() and torch.isfinite(expected).all()):
        return math.inf
    scale = expected.abs().max().item()
    diff = (actual - expected).abs().max().item()
    return diff / scale if scale > 0 else diff


def load_module(bundle):
    spec = importlib.util.spec_from_file_location("samout_bundle", os.path.join(bundle, "samout.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def big_endian_path(samout, bundle, plain):
    """load_safetensors as a big-endian host runs it (sys.byteorder faked): each F32 value's bytes reversed."""
    real_sys = samout.sys
    samout.sys = types.SimpleNamespace(byteorder="big")
    try:
        swapped = samout.load_safetensors(os.path.join(bundle, "model.safetensors"))
    except Exception as e:  # the check reports what a big-endian user would see
        return f"raises {type(e).__name__}: {e}"
    finally:
        samout.sys = real_sys
    for name, values in plain.items():
        expected = values.numpy().view(numpy.uint32).byteswap()
        if not numpy.array_equal(swapped[name].numpy().view(numpy.uint32), expected):
            return f"{name}: the bytes are not reversed per value"
    return "swaps each value's bytes"


def main(bundle):
    report = {"bundle": os.path.abspath(bundle), "tolerance": TOLERANCE, "checks": {}}
    failures = []

    def check(name, error, limit=TOLERANCE):
        report["checks"][name] = error
        if not error <= limit:
            failures.append(f"{name}: relative error {error:.3g} > {limit}")

    samout = load_module(bundle)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    model = samout.SamOut.from_config(config).eval()
    weights = samout.load_weights(os.path.join(bundle, "model.safetensors"))
    plain = samout.load_safetensors(os.path.join(bundle, "model.safetensors"))
    missing, unexpected = model.load_state_dict(weights, strict=True)
    report["load_state_dict"] = {"tensors": len(weights), "missing": missing, "unexpected": unexpected}
    if any(not torch.equal(weights[k], plain[k]) for k in weights):
        failures.append("samout.load_safetensors reads other values than load_weights")
    report["checks"]["load_safetensors_big_endian_path"] = big_endian_path(samout, bundle, plain)
    if report["checks"]["load_safetensors_big_endian_path"] != "swaps each value's bytes":
        failures.append("samout.load_safetensors on a big-endian host: "
                        + report["checks"]["load_safetensors_big_endian_path"])

    with open(os.path.join(bundle, "check.json")) as f:
        examples = json.load(f)["examples"]
    ids = torch.tensor(examples["ids"], dtype=torch.long)
    with torch.no_grad():
        full = model(ids)
        state = model.initial_state(ids.shape[0])
        steps = []
        for t in range(ids.shape[1]):
            logits, state = model.step(ids[:, t], state, t)
            steps.append(logits)
        steps = torch.stack(steps, dim=1)
    picked = torch.stack([full[p["row"], p["position"]] for p in examples["picks"]])
    recorded = torch.tensor([p["logits"] for p in examples["picks"]])
    check("pytorch_vs_onnx_recorded", relative_error(picked, recorded))
    check("pytorch_step_vs_full", relative_error(steps, full))
    report["example_batch"] = list(ids.shape)

    import onnx
    from onnx import numpy_helper

    report["onnx_version"] = onnx.__version__
    for name in ("model.onnx", "model.step.onnx"):
        proto = onnx.load(os.path.join(bundle, name))
        # On a proto, not a path: given a path, full_check's shape inference writes the
        # inferred model back over the file.
        onnx.checker.check_model(proto, full_check=True)
        initializers = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        differing = [k for k, v in weights.items()
                     if k not in initializers or not torch.equal(torch.from_numpy(initializers[k].copy()).float(), v)]
        if differing:
            failures.append(f"{name}: initializers differ from model.safetensors: {differing[:5]}")
        report["checks"][f"{name}_checker_full_check"] = "passed"
        report["checks"][f"{name}_initializers_equal_safetensors"] = not differing

    try:
        from onnx.reference import ReferenceEvaluator
    except ImportError:
        report["onnx_reference_evaluator"] = f"not in onnx {onnx.__version__} (needs 1.13 or newer)"
    else:
        evaluator = ReferenceEvaluator(os.path.join(bundle, "model.onnx"))
        (onnx_full,) = evaluator.run(None, {"ids": ids.numpy()})
        check("onnx_reference_vs_pytorch", relative_error(torch.from_numpy(onnx_full), full))
        step = ReferenceEvaluator(os.path.join(bundle, "model.step.onnx"))
        state = model.initial_state(ids.shape[0]).numpy()
        onnx_steps = []
        for t in range(ids.shape[1]):
            logits, state = step.run(None, {
                "token": ids[:, t].numpy(), "state": state,
                "position": torch.full((ids.shape[0],), t, dtype=torch.long).numpy()})
            onnx_steps.append(torch.from_numpy(logits))
        check("onnx_reference_step_vs_pytorch", relative_error(torch.stack(onnx_steps, dim=1), full))
        report["onnx_reference_evaluator"] = "ran"

    report["failures"] = failures
    print(json.dumps(report, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
