"""Export any torch.nn.Module (petridish models included) to an ONNX file the referee accepts.

Uses the TorchScript exporter (``dynamo=False``): torch 2.13's default dynamo exporter needs the
``onnxscript`` package, which petridish does not depend on. The file has one float32 input
'input' of shape (batch, input_dim) with a dynamic batch axis, output 'output', an ai.onnx
opset in the referee's range, and all weights inside the file (no external data).
"""
from __future__ import annotations

import io
import warnings
from pathlib import Path

import onnx

from petridish.errors import check_number, invalid

OWNER = "export_onnx"


def export_onnx(model, path: str | Path, *, input_dim: int, opset: int = 17,
                check: bool = True) -> Path:
    """Write `model` (inputs (batch, input_dim) float32 -> outputs (batch, k)) to `path`; returns the path."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise invalid("model", OWNER, "a torch.nn.Module", type(model).__name__)
    input_dim = check_number(input_dim, "input_dim", OWNER, kind=int, low=1)
    opset = check_number(opset, "opset", OWNER, kind=int, low=13, high=20)
    path = Path(path)
    was_training = model.training
    model.eval()
    example = torch.zeros(2, input_dim, dtype=torch.float32,
                          device=next(model.parameters(), torch.zeros(())).device)
    buf = io.BytesIO()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              do_constant_folding=True, external_data=False)
    finally:
        model.train(was_training)
    proto = onnx.load_model_from_string(buf.getvalue())
    if check:
        onnx.checker.check_model(proto, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buf.getvalue())
    return path
