"""Static validation of a submitted ONNX model, and the choice of the output that is scored.

Runs inside the sandbox's limited child (``sandbox.check_upload``), never in the web process:
parsing, the checker and shape inference of a crafted model can take gigabytes and minutes.
Checks, in order (each refusal is one line saying what was expected):
size cap -> parses as an ONNX ModelProto -> no external data (initializers, sparse
initializers, tensor attributes, in every subgraph) -> only the ai.onnx / ai.onnx.ml domains
and an ai.onnx opset in the allowed range, no model-local functions -> one float32 input of
shape (batch, input_dim) -> a scored output (below) -> onnx.checker with full_check (which
includes strict shape inference). Nothing here unpickles or executes the model.

Accepted graphs (the scored output is chosen by type, then by name):
- a float tensor of shape (batch, k), k = the task's number of classes or targets: logits or
  scores (torch.onnx.export, TorchScript or dynamo mode; petridish.ctf.export_onnx), or
  probabilities (a Keras-style graph ending in Softmax; skl2onnx with ``zipmap=False``, whose
  first output is the int64 'label' and second the float 'probabilities');
- a ZipMap output, a sequence of maps class -> probability (skl2onnx's default
  'output_probability'); its int64 class labels must be exactly the task's labels 0..k-1,
  and the referee reads the values in class order;
- for a task with one regression target, a float tensor of shape (batch,) or (batch, 1).
Other outputs (e.g. an int64 predicted label) are ignored. If several float tensors qualify,
one whose name mentions probabilities, logits, scores or output wins, else the first one.
Probabilities (from ZipMap, Softmax, or an output named '*prob*') are scored as log-
probabilities, so cross-entropy is -log p[y]; accuracy is the same either way.
Class labels in any ai.onnx.ml classifier or ZipMap node must be the integers 0..k-1.
"""
from __future__ import annotations

from dataclasses import dataclass

import onnx
from onnx import AttributeProto, TensorProto

ALLOWED_DOMAINS = ("", "ai.onnx", "ai.onnx.ml")
PREFERRED_NAMES = ("prob", "logit", "score", "output")   # substrings, in order of preference


class Refused(Exception):
    """A submission refused by validation; the message is one line for the competitor."""


@dataclass(frozen=True)
class Signature:
    input_dim: int
    n_outputs: int     # classes, or regression targets


@dataclass(frozen=True)
class ScoredOutput:
    """Which graph output is scored and how to read it."""
    name: str
    zipmap: bool          # a sequence of maps (class -> probability), read in class order
    probabilities: bool   # scored as log-probabilities
    vector: bool          # shape (batch,): one regression target


def validate_model(data: bytes, *, signature: Signature, max_bytes: int,
                   opset_min: int, opset_max: int) -> ScoredOutput:
    """The scored output of a valid model; raises Refused with one line otherwise."""
    if len(data) > max_bytes:
        raise Refused(f"The model file must be at most {max_bytes} bytes. Got {len(data)} bytes.")
    if len(data) == 0:
        raise Refused("The model file must be a non-empty ONNX model. Got an empty file.")
    model = parse(data)
    _check_no_external_data(model.graph)
    _check_domains(model, opset_min, opset_max)
    scored = scored_output(model, signature)   # cheap and the clearest message, so before the checker
    try:
        onnx.checker.check_model(model, full_check=True)
    except MemoryError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        raise Refused(f"The model must pass onnx.checker.check_model(full_check=True). Got: {first}") from None
    return scored


def parse(data: bytes) -> onnx.ModelProto:
    try:
        model = onnx.load_model_from_string(data)
    except Exception:   # protobuf DecodeError and friends; the message may be long, keep ours
        raise Refused("The model file must be a serialized ONNX ModelProto. Got bytes that do not "
                      "parse as one (truncated or not an ONNX file).") from None
    if not model.HasField("graph") or not model.opset_import:
        raise Refused("The model file must be a serialized ONNX ModelProto with a graph and an "
                      "opset import. Got a file without them (truncated or not an ONNX file).")
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


def scored_output(model: onnx.ModelProto, sig: Signature) -> ScoredOutput:
    """Check the input and class labels, and choose the scored output (module docstring)."""
    _check_input(model, sig)
    _check_class_labels(model, sig)
    outputs = list(model.graph.output)
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    tensors = [o for o in outputs if _scores_tensor(o, sig)]
    if tensors:
        named = [o for key in PREFERRED_NAMES for o in tensors if key in o.name.lower()]
        o = (named or tensors)[0]
        probs = "prob" in o.name.lower() or producers.get(o.name) in ("Softmax", "ZipMap")
        return ScoredOutput(o.name, zipmap=False, probabilities=probs and sig.n_outputs > 1,
                            vector=len(_dims(o)[1]) == 1)
    for o in outputs:
        if _is_zipmap(o) and producers.get(o.name) == "ZipMap" and sig.n_outputs > 1:
            return ScoredOutput(o.name, zipmap=True, probabilities=True, vector=False)
    want = f"a float32 output of shape (batch, {sig.n_outputs})"
    if sig.n_outputs == 1:
        want += " or (batch,)"
    else:
        want += " or a ZipMap of class probabilities"
    got = ", ".join(f"{o.name[:32]!r}: {_type_text(o)}" for o in outputs[:4]) or "no outputs"
    raise Refused(f"The model must have {want}. Got {got}.")


def _check_input(model: onnx.ModelProto, sig: Signature) -> None:
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


def _scores_tensor(o: onnx.ValueInfoProto, sig: Signature) -> bool:
    elem, dims = _dims(o)
    if elem != TensorProto.FLOAT or dims is None:
        return False
    if len(dims) == 2:
        return dims[1] in (sig.n_outputs, None)
    return len(dims) == 1 and sig.n_outputs == 1


def _is_zipmap(o: onnx.ValueInfoProto) -> bool:
    t = o.type
    if not t.HasField("sequence_type") or not t.sequence_type.elem_type.HasField("map_type"):
        return False
    m = t.sequence_type.elem_type.map_type
    return m.key_type == TensorProto.INT64 and m.value_type.tensor_type.elem_type == TensorProto.FLOAT


def _check_class_labels(model: onnx.ModelProto, sig: Signature) -> None:
    """ai.onnx.ml classifiers and ZipMap name their classes: they must be the task's 0..k-1."""
    want = list(range(sig.n_outputs))
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.name in ("classlabels_ints", "classlabels_int64s") and sorted(attr.ints) != want:
                got = list(attr.ints[:12])
                raise Refused(f"The model's class labels ({node.op_type} {attr.name}) must be the task's "
                              f"labels 0..{sig.n_outputs - 1}. Got {got}{'...' if len(attr.ints) > 12 else ''}.")
            if attr.name == "classlabels_strings" and len(attr.strings) > 0:
                raise Refused(f"The model's class labels ({node.op_type}) must be the integers "
                              f"0..{sig.n_outputs - 1}. Got string labels; train on integer labels.")


def _type_text(o: onnx.ValueInfoProto) -> str:
    if o.type.HasField("tensor_type"):
        elem, dims = _dims(o)
        return f"{_elem_name(elem)} {_shape_text(dims)}"
    return "sequence" if o.type.HasField("sequence_type") else "non-tensor"


def _elem_name(elem) -> str:
    if elem is None:
        return "non-tensor"
    try:
        return onnx.helper.tensor_dtype_to_np_dtype(elem).name
    except Exception:
        return f"type-{elem}"
