"""Tiny ONNX models built with onnx.helper (no torch export needed), shared by the CTF tests."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _model(nodes, inits, *, input_dim, out_dim, opset=17, extra_opsets=(), batch="batch",
           in_type=TensorProto.FLOAT):
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", in_type, [batch, input_dim])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", out_dim])],
        initializer=inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets],
                          producer_name="petridish-tests")
    m.ir_version = 8
    return m


def linear(weight: np.ndarray, bias: np.ndarray | None = None, **kw) -> bytes:
    """output = input @ weight + bias; weight (input_dim, out_dim)."""
    weight = np.asarray(weight, np.float32)
    bias = np.zeros(weight.shape[1], np.float32) if bias is None else np.asarray(bias, np.float32)
    nodes = [helper.make_node("MatMul", ["input", "W"], ["h"]), helper.make_node("Add", ["h", "b"], ["output"])]
    inits = [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")]
    return _model(nodes, inits, input_dim=weight.shape[0], out_dim=weight.shape[1], **kw).SerializeToString()


def hanging(input_dim: int, out_dim: int, trips: int = 10**15) -> bytes:
    """A Loop with a huge trip count whose (zeroed) result is added to a linear output."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        initializer=[numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    nodes = [helper.make_node("Loop", ["M", "cond", "v0"], ["v"], body=body),
             helper.make_node("MatMul", ["input", "W"], ["h"]),
             helper.make_node("Mul", ["v", "zero"], ["vz"]),
             helper.make_node("Add", ["h", "vz"], ["output"])]
    inits = [numpy_helper.from_array(np.array(trips, np.int64), "M"),
             numpy_helper.from_array(np.array(True), "cond"),
             numpy_helper.from_array(np.array(0.0, np.float32), "v0"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.ones((input_dim, out_dim), np.float32), "W")]
    return _model(nodes, inits, input_dim=input_dim, out_dim=out_dim).SerializeToString()


def memory_hog(input_dim: int, out_dim: int, gib: int = 64) -> bytes:
    """Allocates a (gib * 2**28,) float tensor at run time, then adds its (zero) sum."""
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=numpy_helper.from_array(np.array([0.0], np.float32))),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=0),
             helper.make_node("MatMul", ["input", "W"], ["h"]),
             helper.make_node("Add", ["h", "s"], ["output"])]
    inits = [numpy_helper.from_array(np.array([gib * 2**28], np.int64), "shape"),
             numpy_helper.from_array(np.ones((input_dim, out_dim), np.float32), "W")]
    return _model(nodes, inits, input_dim=input_dim, out_dim=out_dim).SerializeToString()


def custom_domain(input_dim: int, out_dim: int) -> bytes:
    nodes = [helper.make_node("Evil", ["input"], ["output"], domain="com.example")]
    m = _model(nodes, [], input_dim=input_dim, out_dim=out_dim,
               extra_opsets=[helper.make_opsetid("com.example", 1)])
    return m.SerializeToString()


def external_data(input_dim: int, out_dim: int, location: str = "../../etc/passwd") -> bytes:
    """A linear model whose weight claims to live in an external file."""
    m = onnx.load_model_from_string(linear(np.ones((input_dim, out_dim))))
    w = m.graph.initializer[0]
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", str(4 * input_dim * out_dim))):
        e = w.external_data.add()
        e.key, e.value = k, v
    return m.SerializeToString()


def _i64(name, values):
    return numpy_helper.from_array(np.asarray(values, np.int64), name)


def shape_bomb(input_dim: int, out_dim: int, rank: int = 200_000, relus: int = 400) -> bytes:
    """The attack of issue 11, item 1: Constant value_ints=[1]*rank -> ConstantOfShape (a tensor
    of rank `rank`) -> `relus` Relu nodes -> summed into a Gemm's output. Tiny on disk; shape
    inference (onnx.checker full_check) builds `relus` shapes of `rank` dims each."""
    nodes = [helper.make_node("Constant", [], ["shape"], value_ints=[1] * rank),
             helper.make_node("ConstantOfShape", ["shape"], ["r0"],
                              value=numpy_helper.from_array(np.array([0.0], np.float32)))]
    nodes += [helper.make_node("Relu", [f"r{i}"], [f"r{i + 1}"]) for i in range(relus)]
    nodes += [helper.make_node("ReduceSum", [f"r{relus}"], ["s"], keepdims=0),
              helper.make_node("Gemm", ["input", "W", "b"], ["h"]),
              helper.make_node("Add", ["h", "s"], ["output"])]
    inits = [numpy_helper.from_array(np.ones((input_dim, out_dim), np.float32), "W"),
             numpy_helper.from_array(np.zeros(out_dim, np.float32), "b")]
    return _model(nodes, inits, input_dim=input_dim, out_dim=out_dim).SerializeToString()


def _batch_and(nodes, width_name: str, out: str = "output") -> list:
    """Append nodes: `out` = zeros of shape (batch, <int64 scalar width_name>)."""
    return nodes + [
        helper.make_node("Shape", ["input"], ["in_shape"]),
        helper.make_node("Slice", ["in_shape", "zero1", "one1"], ["batch"]),
        helper.make_node("Reshape", [width_name, "one1"], ["width1"]),
        helper.make_node("Concat", ["batch", "width1"], ["out_shape"], axis=0),
        helper.make_node("ConstantOfShape", ["out_shape"], [out],
                         value=numpy_helper.from_array(np.array([0.0], np.float32)))]


def leaky_shape(input_dim: int, out_dim: int) -> bytes:
    """Issue 11, item 3: output width = out_dim + K, K = round(|x[0, 0]| * 1e6): right on the
    all-zeros probe, and on test inputs a shape that packs a hidden test value into K."""
    nodes = _batch_and([
        helper.make_node("Slice", ["input", "zero2", "one2"], ["x00"]),       # (1, 1)
        helper.make_node("Abs", ["x00"], ["ax"]),
        helper.make_node("Mul", ["ax", "million"], ["scaled"]),
        helper.make_node("Cast", ["scaled"], ["k2"], to=TensorProto.INT64),
        helper.make_node("Reshape", ["k2", "scalar"], ["k"]),
        helper.make_node("Add", ["k", "out_dim"], ["width"])], "width")
    inits = [_i64("zero1", [0]), _i64("one1", [1]), _i64("zero2", [0, 0]), _i64("one2", [1, 1]),
             _i64("scalar", np.zeros(0, np.int64)), _i64("out_dim", out_dim),
             numpy_helper.from_array(np.array(1e6, np.float32), "million")]
    return _model(nodes, inits, input_dim=input_dim, out_dim=out_dim).SerializeToString()


def huge_output(input_dim: int, out_dim: int, width: int = 100_000, probe_rows: int = 3) -> bytes:
    """Issue 11, item 7: zeros of shape (batch, out_dim) on a batch of `probe_rows` rows, and of
    shape (batch, width) on any other batch (1000 x 100000 float32 = 400 MB)."""
    nodes = _batch_and([
        helper.make_node("Shape", ["input"], ["s_all"]),
        helper.make_node("Gather", ["s_all", "idx0"], ["b0"], axis=0),
        helper.make_node("Equal", ["b0", "probe"], ["is_probe"]),
        helper.make_node("Where", ["is_probe", "out_dim", "wide"], ["width"])], "width")
    inits = [_i64("zero1", [0]), _i64("one1", [1]), _i64("idx0", 0), _i64("probe", probe_rows),
             _i64("out_dim", out_dim), _i64("wide", width)]
    return _model(nodes, inits, input_dim=input_dim, out_dim=out_dim).SerializeToString()
