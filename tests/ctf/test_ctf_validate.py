"""Static validation of submitted ONNX files: each refusal is one line saying what was expected."""
import numpy as np
import onnx
import pytest

import ctf_models as cm
from petridish.ctf.validate import Refused, ScoredOutput, Signature, validate_model

SIG = Signature(input_dim=5, n_outputs=2)
LIMITS = dict(max_bytes=100_000, opset_min=13, opset_max=21)


def check(data, sig=SIG, **kw):
    return validate_model(data, signature=sig, **{**LIMITS, **kw})


def refused(data, **kw) -> str:
    with pytest.raises(Refused) as e:
        check(data, **kw)
    msg = str(e.value)
    assert "\n" not in msg and "must" in msg and "Got" in msg, msg
    return msg


def test_accepts_a_good_model():
    assert check(cm.linear(np.ones((5, 2)))) == ScoredOutput("output", zipmap=False, probabilities=False,
                                                            vector=False)


def test_refusals_name_what_was_expected():
    good = cm.linear(np.ones((5, 2)))
    assert "at most 100 bytes" in refused(good, max_bytes=100)
    assert "serialized ONNX" in refused(b"\x00garbage\xff" * 10)
    assert "ONNX" in refused(good[: len(good) // 2])
    assert "non-empty" in refused(b"")
    assert "external data" in refused(cm.external_data(5, 2))
    assert "'com.example'" in refused(cm.custom_domain(5, 2))
    assert "between 13 and 21" in refused(cm.linear(np.ones((5, 2)), opset=22))
    assert "(batch, 5)" in refused(cm.linear(np.ones((7, 2))))            # wrong input width
    assert "(batch, 2)" in refused(cm.linear(np.ones((5, 3))))            # wrong output width
    assert "dynamic batch" in refused(cm.linear(np.ones((5, 2)), batch=1))
    assert "float32" in refused(cm.linear(np.ones((5, 2)), in_type=onnx.TensorProto.DOUBLE))


def test_checker_failure_is_refused():
    m = onnx.load_model_from_string(cm.linear(np.ones((5, 2))))
    m.graph.node[0].input[1] = "missing_tensor"      # dangling input: invalid graph
    assert "onnx.checker" in refused(m.SerializeToString())
