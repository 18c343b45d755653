"""Export any torch.nn.Module (petridish models included) to an ONNX file the referee accepts.

Two exporters: torch's dynamo exporter (``torch.onnx.export(..., dynamo=True)``, torch's own
default, which needs the ``onnxscript`` package and an opset >= 18) and the TorchScript
exporter (``dynamo=False``), which needs nothing more. ``exporter="auto"`` uses dynamo when
onnxscript is installed and the opset allows it, and falls back to TorchScript if dynamo
fails. The file has one float32 input 'input' of shape (batch, input_dim) with a dynamic batch
axis, output 'output', an ai.onnx opset in the referee's range, and all weights inside the
file (no external data).
"""
from __future__ import annotations

import importlib.util
import io
import warnings
from pathlib import Path

import onnx

from petridish.errors import check_choice, check_number, invalid

OWNER = "export_onnx"
EXPORTERS = ("auto", "dynamo", "torchscript")
DYNAMO_MIN_OPSET = 18


def export_onnx(model, path: str | Path, *, input_dim: int, opset: int = 18, exporter: str = "auto",
                check: bool = True) -> Path:
    """Write `model` (inputs (batch, input_dim) float32 -> outputs (batch, k)) to `path`; returns the path."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise invalid("model", OWNER, "a torch.nn.Module", type(model).__name__)
    input_dim = check_number(input_dim, "input_dim", OWNER, kind=int, low=1)
    opset = check_number(opset, "opset", OWNER, kind=int, low=13, high=21)
    check_choice(exporter, "exporter", OWNER, EXPORTERS)
    if exporter == "dynamo" and (not has_onnxscript() or opset < DYNAMO_MIN_OPSET):
        raise invalid("exporter", OWNER, f"'auto' or 'torchscript' unless onnxscript is installed and "
                      f"opset >= {DYNAMO_MIN_OPSET}", f"'dynamo' with opset {opset}"
                      + ("" if has_onnxscript() else " and no onnxscript"))
    use_dynamo = exporter == "dynamo" or (exporter == "auto" and has_onnxscript() and opset >= DYNAMO_MIN_OPSET)
    path = Path(path)
    was_training = model.training
    model.eval()
    example = torch.zeros(2, input_dim, dtype=torch.float32,
                          device=next(model.parameters(), torch.zeros(())).device)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            data = None
            if use_dynamo:
                try:
                    data = _dynamo(model, example, opset)
                except Exception:
                    if exporter == "dynamo":
                        raise
            if data is None:
                data = _torchscript(model, example, opset)
    finally:
        model.train(was_training)
    if check:
        onnx.checker.check_model(onnx.load_model_from_string(data), full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def has_onnxscript() -> bool:
    return importlib.util.find_spec("onnxscript") is not None


def _dynamo(model, example, opset: int) -> bytes:
    import logging

    import torch
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)   # "torchvision is not installed" notes
    program = torch.onnx.export(model, (example,), dynamo=True, opset_version=opset,
                                input_names=["input"], output_names=["output"],
                                dynamic_shapes=({0: torch.export.Dim("batch")},),
                                external_data=False, verbose=False)
    program.optimize()
    return program.model_proto.SerializeToString()


def _torchscript(model, example, opset: int) -> bytes:
    import torch
    buf = io.BytesIO()
    torch.onnx.export(model, (example,), buf, dynamo=False, opset_version=opset,
                      input_names=["input"], output_names=["output"],
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      do_constant_folding=True, external_data=False)
    return buf.getvalue()
