"""Models as real users export them (issue 11, "real-world submissions"): skl2onnx's
LogisticRegression with and without ZipMap, a Keras-style graph ending in Softmax, torch's
dynamo export, and regression models with a (batch,) or (batch, 1) output. The oracle of each
score is the exporting library's own computation on the same test rows."""
import numpy as np
import onnx
import pytest
import sqlalchemy as sa
from onnx import TensorProto, helper, numpy_helper

import ctf_models as cm
from ctf_helpers import create_task, register, wait_scored
from petridish.ctf.db import Submission, Task
from petridish.ctf.validate import Refused, ScoredOutput, Signature, validate_model

skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is a test dependency (pip install skl2onnx)")
LIMITS = dict(max_bytes=5 * 2**20, opset_min=7, opset_max=23)


def three_classes(n_train=300, n_test=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n_train + n_test, 5)).astype(np.float32)
    y = ((x[:, 0] + 0.5 * rng.normal(size=len(x)) > 0).astype(np.int64)
         + (x[:, 1] + 0.5 * rng.normal(size=len(x)) > 0.5))
    return {"x_train": x[:n_train], "y_train": y[:n_train], "x_test": x[n_train:], "y_test": y[n_train:]}


def sklearn_onnx(clf, x, zipmap: bool) -> bytes:
    options = None if zipmap else {id(clf): {"zipmap": False}}
    return skl2onnx.to_onnx(clf, x[:1], options=options).SerializeToString()


def exact_losses(client, task_name):
    """Per-submission mean loss over all test rows, from the referee's exact public and private means."""
    with client.app.state.make_session() as s:
        task = s.scalar(sa.select(Task).where(Task.name == task_name))
        subs = s.scalars(sa.select(Submission).where(Submission.task_id == task.id).order_by(Submission.id)).all()
        n_pub, n_priv = task.n_public, task.n_test - task.n_public
        return [(sub.public_loss * n_pub + sub.private_loss * n_priv) / (n_pub + n_priv) for sub in subs], n_pub + n_priv


@pytest.fixture(scope="module")
def fitted():
    from sklearn.linear_model import LogisticRegression
    arrays = three_classes()
    clf = LogisticRegression(max_iter=1000).fit(arrays["x_train"], arrays["y_train"])
    return arrays, clf


def test_skl2onnx_outputs_are_chosen_by_name_and_type(fitted):
    arrays, clf = fitted
    sig = Signature(5, 3)
    default = onnx.load_model_from_string(sklearn_onnx(clf, arrays["x_train"], zipmap=True))
    assert [o.name for o in default.graph.output] == ["output_label", "output_probability"]
    assert validate_model(default.SerializeToString(), signature=sig, **LIMITS) == \
        ScoredOutput("output_probability", zipmap=True, probabilities=True, vector=False)
    plain = sklearn_onnx(clf, arrays["x_train"], zipmap=False)
    assert validate_model(plain, signature=sig, **LIMITS) == \
        ScoredOutput("probabilities", zipmap=False, probabilities=True, vector=False)


@pytest.mark.parametrize("metric", ["accuracy", "cross-entropy"])
def test_skl2onnx_logistic_regression_scores_like_sklearn(make_client, fitted, metric):
    """Acceptance of issue 11: the default (ZipMap) and zipmap=False exports are accepted and
    scored, and the score equals scikit-learn's own on the same test rows: the error count
    exactly; the log-loss to 1e-5 (float32 probabilities: |d log p| ~ 1e-6 per row)."""
    from sklearn.metrics import log_loss
    arrays, clf = fitted
    client = make_client()
    assert create_task(client, name="skl", arrays=arrays, metric=metric).status_code == 201
    alice = register(client, "alice")
    for zipmap in (True, False):
        r = client.post("/api/tasks/skl/submissions", headers=alice,
                        files={"file": ("m.onnx", sklearn_onnx(clf, arrays["x_train"], zipmap))})
        assert r.status_code == 202, r.text
    subs = wait_scored(client, alice, 2)
    assert [s["status"] for s in subs] == ["scored", "scored"], subs
    losses, n = exact_losses(client, "skl")
    if metric == "accuracy":
        errors = int((clf.predict(arrays["x_test"]) != arrays["y_test"]).sum())
        assert [round(loss * n) for loss in losses] == [errors, errors]
        assert 0 < errors < n / 2
    else:
        want = log_loss(arrays["y_test"], clf.predict_proba(arrays["x_test"]), labels=[0, 1, 2])
        np.testing.assert_allclose(losses, [want, want], rtol=0, atol=1e-5)


def test_class_labels_must_be_the_tasks(fitted):
    from sklearn.linear_model import LogisticRegression
    arrays, _ = fitted
    y = np.where(arrays["y_train"] == 2, 7, arrays["y_train"])      # labels 0, 1, 7
    clf = LogisticRegression(max_iter=1000).fit(arrays["x_train"], y)
    with pytest.raises(Refused, match=r"class labels .* must be the task's labels 0..2. Got \[0, 1, 7\]"):
        validate_model(sklearn_onnx(clf, arrays["x_train"], zipmap=True), signature=Signature(5, 3), **LIMITS)
    names = np.array(["a", "b", "c"])[arrays["y_train"]]
    clf = LogisticRegression(max_iter=1000).fit(arrays["x_train"], names)
    with pytest.raises(Refused, match="string labels"):
        validate_model(sklearn_onnx(clf, arrays["x_train"], zipmap=False), signature=Signature(5, 3), **LIMITS)


def keras_style(w: np.ndarray, b: np.ndarray) -> bytes:
    """What tf2onnx writes for a Dense + softmax Keras model: input 'input_1' with a symbolic
    batch 'unk__6', MatMul + Add + Softmax, output named after the layer."""
    nodes = [helper.make_node("MatMul", ["input_1", "dense/kernel"], ["mm"]),
             helper.make_node("Add", ["mm", "dense/bias"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["dense"], axis=-1)]
    graph = helper.make_graph(
        nodes, "sequential", [helper.make_tensor_value_info("input_1", TensorProto.FLOAT, ["unk__6", w.shape[0]])],
        [helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["unk__7", w.shape[1]])],
        initializer=[numpy_helper.from_array(w, "dense/kernel"), numpy_helper.from_array(b, "dense/bias")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tf2onnx")
    m.ir_version = 7
    return m.SerializeToString()


def test_keras_style_softmax_graph_is_scored_as_probabilities(tmp_path):
    from petridish.ctf.sandbox import run_model
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(5, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    data = keras_style(w, b)
    assert validate_model(data, signature=Signature(5, 3), **LIMITS).probabilities
    x = rng.normal(size=(64, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "m.onnx").write_bytes(data)
    got = run_model(tmp_path / "m.onnx", tmp_path / "x.npy", signature=Signature(5, 3), work_dir=tmp_path / "w",
                    timeout_s=20, memory_mb=1024, cpu_s=20, batch_size=16)
    z = x.astype(np.float64) @ w + b
    log_softmax = z - z.max(1, keepdims=True) - np.log(np.exp(z - z.max(1, keepdims=True)).sum(1, keepdims=True))
    np.testing.assert_allclose(got, log_softmax, rtol=0, atol=1e-5)   # float32 softmax then log


def vector_regression(w: np.ndarray, keep_dim: bool) -> bytes:
    """output = input @ w, w (5,) -> shape (batch,) or, with keep_dim, (batch, 1)."""
    w2 = w.reshape(-1, 1) if keep_dim else w
    m = cm._model([helper.make_node("MatMul", ["input", "w"], ["output"])],
                  [numpy_helper.from_array(w2.astype(np.float32), "w")], input_dim=5, out_dim=1)
    if not keep_dim:
        del m.graph.output[0].type.tensor_type.shape.dim[1]
    return m.SerializeToString()


def test_regression_accepts_batch_and_batch_by_one_outputs(make_client):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    w_true = np.array([1.0, -2.0, 0.5, 0.0, 3.0], np.float32)
    y = (x @ w_true + 0.1 * rng.normal(size=300)).astype(np.float32)
    arrays = {"x_train": x[:100], "y_train": y[:100], "x_test": x[100:], "y_test": y[100:]}
    assert validate_model(vector_regression(w_true, False), signature=Signature(5, 1), **LIMITS).vector
    with pytest.raises(Refused, match=r"\(batch, 2\)"):
        validate_model(vector_regression(w_true, False), signature=Signature(5, 2), **LIMITS)
    client = make_client()
    assert create_task(client, name="reg", arrays=arrays, metric="mse").status_code == 201
    alice = register(client, "alice")
    w = w_true + np.float32(0.2)
    for keep_dim in (False, True):
        r = client.post("/api/tasks/reg/submissions", headers=alice,
                        files={"file": ("m", vector_regression(w, keep_dim))})
        assert r.status_code == 202, r.text
    assert [s["status"] for s in wait_scored(client, alice, 2)] == ["scored", "scored"]
    losses, _ = exact_losses(client, "reg")
    want = float(np.mean((arrays["x_test"].astype(np.float64) @ w - arrays["y_test"]) ** 2))
    np.testing.assert_allclose(losses, [want, want], rtol=1e-5)   # float32 matmul of 5 terms


def test_torch_dynamo_export_is_scored(tmp_path):
    pytest.importorskip("onnxscript", reason="torch's dynamo exporter needs onnxscript")
    import torch

    from petridish.ctf import export_onnx
    from petridish.ctf.sandbox import run_model
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    path = export_onnx(model, tmp_path / "m.onnx", input_dim=5, exporter="dynamo")
    validate_model(path.read_bytes(), signature=Signature(5, 3), **LIMITS)
    x = np.random.default_rng(0).normal(size=(50, 5)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    got = run_model(path, tmp_path / "x.npy", signature=Signature(5, 3), work_dir=tmp_path / "w",
                    timeout_s=20, memory_mb=1024, cpu_s=20, batch_size=16)
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-5)
