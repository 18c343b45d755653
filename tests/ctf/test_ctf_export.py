"""export_onnx: petridish and plain torch models become files the referee accepts, with both
torch exporters (TorchScript, and dynamo when onnxscript is installed), and onnxruntime
reproduces the torch outputs (the oracle)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from petridish.ctf import export_onnx
from petridish.ctf.export import has_onnxscript
from petridish.ctf.validate import Signature, validate_model
from petridish.errors import InvalidParameterError


def _models():
    from petridish.models import CNN1D, MLP
    torch.manual_seed(0)
    cases = [("mlp", MLP(40, 32, 2, 10), 40, 10), ("cnn", CNN1D(40, 8, 10), 40, 10),
             ("torch", torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3)), 7, 3)]
    return [pytest.param(*c, id=c[0]) for c in cases]


EXPORTERS = ["torchscript", pytest.param("dynamo", marks=pytest.mark.skipif(
    not has_onnxscript(), reason="torch's dynamo exporter needs onnxscript (pip install onnxscript)"))]


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name,model,d_in,d_out", _models())
def test_exported_models_are_accepted_and_exact(tmp_path, name, model, d_in, d_out, exporter):
    path = export_onnx(model, tmp_path / f"{name}.onnx", input_dim=d_in, exporter=exporter)
    data = path.read_bytes()
    validate_model(data, signature=Signature(d_in, d_out), max_bytes=5 * 2**20, opset_min=13, opset_max=21)
    if exporter == "dynamo":   # torch's dynamo exporter writes IR version 10 and opset 18
        assert onnx.load_model_from_string(data).ir_version >= 10
    x = np.random.default_rng(0).normal(size=(33, d_in)).astype(np.float32)   # batch != export batch
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_export_rejects_bad_arguments(tmp_path):
    with pytest.raises(InvalidParameterError, match="'model' parameter of export_onnx"):
        export_onnx(object(), tmp_path / "x.onnx", input_dim=3)
    with pytest.raises(InvalidParameterError, match="'input_dim'"):
        export_onnx(torch.nn.Linear(3, 2), tmp_path / "x.onnx", input_dim=0)
