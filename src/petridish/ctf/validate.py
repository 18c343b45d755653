"""Static validation of a submitted ONNX model, before anything runs.

Checks, in order (each refusal is one line saying what was expected):
size cap -> parses as an ONNX ModelProto -> no external data (initializers, sparse
initializers, tensor attributes, in every subgraph) -> only the ai.onnx / ai.onnx.ml domains
and an ai.onnx opset in the allowed range, no model-local functions -> one float input of
shape (batch, input_dim), first output float (batch, n_outputs) -> onnx.checker with full_check.
Nothing here unpickles or executes the model.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import AttributeProto, TensorProto

ALLOWED_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")


class Refused(Exception):
    """A submission refused by validation; the message is one line for the competitor."""


@dataclass(frozen=True)
class Signature:
    input_dim: int
    n_outputs: int


def validate_model(data: bytes, *, signature: Signature, max_bytes: int,
                   opset_min: int, opset_max: int) -> onnx.ModelProto:
    if len(data) > max_bytes:
        raise Refused(f"The model file must be at most {max_bytes} bytes. Got {len(data)} bytes.")
    if len(data) == 0:
        raise Refused("The model file must be a non-empty ONNX model. Got an empty file.")
    try:
        model = onnx.load_model_from_string(data)
    except Exception:   # protobuf DecodeError and friends; the message may be long, keep ours
        raise Refused("The model file must be a serialized ONNX ModelProto. Got bytes that do not "
                      "parse as one (truncated or not an ONNX file).") from None
    if not model.HasField("graph") or not model.opset_import:
        raise Refused("The model file must be a serialized ONNX ModelProto with a graph and an "
                      "opset import. Got a file without them (truncated or not an ONNX file).")
    _check_no_external_data(model.graph)
    _check_domains(model, opset_min, opset_max)
    _check_signature(model, signature)     # cheap and the clearest message, so before the checker
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise Refused(f"The model must pass onnx.checker.check_model(full_check=True). Got: {first}") from None
    return model


def _check_no_external_data(graph: onnx.GraphProto) -> None:
    for tensor in _tensors(graph):
        if tensor.data_location == TensorProto.EXTERNAL or len(tensor.external_data) > 0:
            raise Refused("The model must carry all its weights inside the file (no external data). "
                          f"Got tensor {tensor.name[:64]!r} stored as external data.")


def _tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for sp in graph.sparse_initializer:
        yield sp.values
        yield sp.indices
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == AttributeProto.TENSORS:
                yield from attr.tensors
            elif attr.type == AttributeProto.SPARSE_TENSOR:
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices
            for sub in _subgraphs(attr):
                yield from _tensors(sub)


def _subgraphs(attr: onnx.AttributeProto):
    if attr.type == AttributeProto.GRAPH:
        yield attr.g
    elif attr.type == AttributeProto.GRAPHS:
        yield from attr.graphs


def _nodes(graph: onnx.GraphProto):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in _subgraphs(attr):
                yield from _nodes(sub)


def _check_domains(model: onnx.ModelProto, opset_min: int, opset_max: int) -> None:
    expected = "only the 'ai.onnx' and 'ai.onnx.ml' operator domains"
    if len(model.functions) > 0:
        raise Refused(f"The model must use {expected} and no model-local functions. "
                      f"Got {len(model.functions)} local function(s).")
    for imp in model.opset_import:
        if imp.domain not in ALLOWED_DOMAINS:
            raise Refused(f"The model must use {expected}. Got opset import {imp.domain[:64]!r}.")
        if imp.domain in ("", "ai.onnx") and not opset_min <= imp.version <= opset_max:
            raise Refused(f"The model's ai.onnx opset must be between {opset_min} and {opset_max}. "
                          f"Got {imp.version}.")
    if not any(imp.domain in ("", "ai.onnx") for imp in model.opset_import):
        raise Refused(f"The model must import the ai.onnx opset ({opset_min} to {opset_max}). Got none.")
    for node in _nodes(model.graph):
        if node.domain not in ALLOWED_DOMAINS:
            raise Refused(f"The model must use {expected}. Got operator {node.op_type[:64]!r} "
                          f"in domain {node.domain[:64]!r}.")


def _dims(value_info: onnx.ValueInfoProto):
    t = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not t.HasField("shape"):
        return t.elem_type if value_info.type.HasField("tensor_type") else None, None
    return t.elem_type, [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _shape_text(dims) -> str:
    return "unknown" if dims is None else "(" + ", ".join("?" if d is None else str(d) for d in dims) + ")"


def _check_signature(model: onnx.ModelProto, sig: Signature) -> None:
    inits = {t.name for t in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    want_in = f"one float32 input of shape (batch, {sig.input_dim})"
    if len(inputs) != 1:
        raise Refused(f"The model must have {want_in}. Got {len(inputs)} inputs.")
    elem, dims = _dims(inputs[0])
    if elem != TensorProto.FLOAT or dims is None or len(dims) != 2 or dims[1] != sig.input_dim \
            or dims[0] not in (None,):
        got = f"{_elem_name(elem)} input of shape {_shape_text(dims)}"
        raise Refused(f"The model must have {want_in} with a dynamic batch axis. Got a {got}.")
    want_out = f"a float32 output of shape (batch, {sig.n_outputs})"
    if len(model.graph.output) < 1:
        raise Refused(f"The model must have {want_out}. Got no outputs.")
    elem, dims = _dims(model.graph.output[0])
    ok_dims = dims is not None and len(dims) == 2 and dims[1] in (sig.n_outputs, None)
    if elem != TensorProto.FLOAT or not ok_dims:
        got = f"{_elem_name(elem)} output of shape {_shape_text(dims)}"
        raise Refused(f"The model must have {want_out} as its first output. Got a {got}.")


def _elem_name(elem) -> str:
    if elem is None:
        return "non-tensor"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem).name
    except Exception:
        return f"type-{elem}"
