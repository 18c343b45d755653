"""The device path: ``--device auto|cpu|cuda``, ``petridish.device``, and training, kernels and
instruments on CUDA.

The first group runs everywhere (the plumbing, with the "meta" device standing in for a GPU
where only the routing is checked). The CUDA group compares CUDA against the CPU in float64
and skips, with its reason, on a machine without CUDA.
"""
import pytest
import torch

from petridish.device import current_device, resolve_device, target_device, use_device
from petridish.errors import PetridishError
from petridish.lab import Experiment, Param

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device here; the CPU is the default, tested path")


def _where_run(p, seed):
    """Reports where the worker asked tensors to be computed (1.0 = yes)."""
    dev = current_device()
    return {"on_cuda": float(dev.type == "cuda"), "on_meta": float(dev.type == "meta"), "on_cpu":
            float(dev.type == "cpu")}


WHERE = Experiment(name="toy-where", question="q", reference="r", params=(Param("x", int, default=[1, 2]),),
                   run=_where_run, seeds=1)


# -- everywhere -------------------------------------------------------------------------------

def test_the_cpu_is_the_default_and_use_device_nests():
    assert current_device() == torch.device("cpu")
    with use_device("meta"):
        assert current_device().type == "meta"
        with use_device("cpu"):
            assert current_device().type == "cpu"
        assert current_device().type == "meta"
    assert current_device().type == "cpu"


def test_a_tensor_the_caller_placed_off_the_cpu_decides():
    cpu, meta = torch.zeros(2), torch.zeros(2, device="meta")
    assert target_device(cpu).type == "cpu"
    assert target_device(cpu, meta).type == "meta"
    with use_device("meta"):
        assert target_device(cpu).type == "meta"


def test_auto_resolves_to_what_torch_sees_and_bad_names_are_refused():
    assert resolve_device("auto") == ("cuda" if HAS_CUDA else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(PetridishError, match="'device' parameter of run must be one of 'auto', 'cpu', 'cuda'"):
        resolve_device("tpu")


@pytest.mark.skipif(HAS_CUDA, reason="CUDA is present: asking for it is not an error here")
def test_cuda_without_cuda_is_one_line_and_exit_code_2(capsys, store_dir):
    from petridish.cli.main import main
    for cmd in (["run", "linear-double-descent", "--quick"],
                ["search", "linear-double-descent", "--metric", "risk", "--budget", "1"]):
        rc = main(cmd + ["--device", "cuda", "--store", store_dir])
        out, err = capsys.readouterr()
        assert rc == 2 and out == ""
        assert err.count("\n") == 1 and "no CUDA device" in err and "--device cpu or auto" in err


def test_the_worker_computes_on_the_task_device():
    from petridish.lab.sweep import make_tasks
    from petridish.lab.worker import run_task
    todo = [("k1", {"x": 1}, 0), ("k2", {"x": 2}, 0)]
    tasks = make_tasks(WHERE, todo, "meta")              # routing only: "meta" stands in for a GPU
    assert [t.device for t in tasks] == ["meta", "meta"]
    cells = [c for t in tasks for c in run_task(t)]
    assert [c.metrics["on_meta"] for c in cells] == [1.0, 1.0]
    assert current_device().type == "cpu"                # the context ends with the task
    assert all(c.metrics["on_cpu"] == 1.0 for c in run_task(make_tasks(WHERE, todo[:1])[0]))


def test_the_run_records_its_device_in_provenance_not_in_its_id():
    from petridish.lab.store import open_store
    from petridish.lab.sweep import run_sweep
    st = open_store("memory")
    res = run_sweep(WHERE, store=st, device="auto")
    assert st.get_run(res.run_id).provenance["device"].startswith("cuda" if HAS_CUDA else "cpu")
    assert run_sweep(WHERE, store=st, device="cpu").run_id == res.run_id


# -- on CUDA ------------------------------------------------------------------------------------

def _data(n=48, d=40, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(0, classes, (n,), generator=g)


def _builder(name):
    from petridish.models import build_model
    kw = {"mlp": {"width": 24}, "cnn": {}, "gru": {}, "attention": {}}[name]
    return lambda s: build_model(name, d_in=40, d_out=10, seed=s, **kw).double()


@needs_cuda
@pytest.mark.parametrize("name,path", [("mlp", "fast"), ("cnn", "stacked"), ("gru", "stacked"),
                                       ("attention", "vmap"), ("mlp", "loop")])
def test_ensemble_on_cuda_matches_solo_on_cuda_and_returns_cpu_tensors(name, path):
    from petridish.train import train, train_ensemble
    x, y = _data()
    kw = dict(lr=0.05, momentum=0.9, batch_size=16, steps=12)
    build = _builder(name)
    torch.cuda.reset_peak_memory_stats()
    with use_device("cuda"):
        ens = train_ensemble(build, x, y, seeds=[0, 1], path=path, eval_sets={"train": (x, y)}, **kw)
        solo = train(build(1), x, y, seed=1, **kw)
    assert torch.cuda.max_memory_allocated() > 0          # it did run on the GPU
    assert ens.path == path
    for name_, p in solo.params.items():
        assert p.device.type == "cpu" and ens.params[name_].device.type == "cpu"
        assert float((ens.params[name_][1] - p).norm() / p.norm()) < 1e-10, name_
    assert ens.loss_history.device.type == "cpu" and ens.eval_history["train"]["loss"].device.type == "cpu"


@needs_cuda
def test_a_trained_model_comes_back_on_the_cpu_and_matches_cpu_training():
    from petridish.train import train
    x, y = _data()
    kw = dict(lr=0.05, batch_size=16, steps=10, seed=3)
    on_cpu = train(_builder("mlp")(3), x, y, **kw)
    with use_device("cuda"):
        model = _builder("mlp")(3)
        on_gpu = train(model, x, y, **kw)
    assert next(model.parameters()).device.type == "cpu"
    for n, p in on_cpu.params.items():
        assert float((on_gpu.params[n] - p).norm() / p.norm()) < 1e-10, n


@needs_cuda
def test_kernels_on_cuda_match_the_cpu_in_float64():
    from petridish.kernels import empirical_ntk, mlp_kernels, ntk_predict
    x, y = _data(n=30)
    xt = _data(n=12, seed=1)[0]
    ref = mlp_kernels(x, xt, depth=2, b_std=0.1)
    with use_device("cuda"):
        got = mlp_kernels(x, xt, depth=2, b_std=0.1)
    assert got.ntk.device.type == "cpu"
    torch.testing.assert_close(got.nngp, ref.nngp, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.ntk, ref.ntk, rtol=1e-10, atol=1e-12)
    kxx = mlp_kernels(x, depth=2).ntk
    kzx = mlp_kernels(xt, x, depth=2).ntk
    yy = y.double()
    p_cpu = ntk_predict(kxx, kzx, yy, t=[1.0, None])
    with use_device("cuda"):
        p_gpu = ntk_predict(kxx, kzx, yy, t=[1.0, None])
    torch.testing.assert_close(p_gpu.mean, p_cpu.mean, rtol=1e-9, atol=1e-10)
    model = _builder("mlp")(0)
    e_cpu = empirical_ntk(model, x[:8], xt[:5])
    with use_device("cuda"):
        e_gpu = empirical_ntk(model, x[:8], xt[:5])
    torch.testing.assert_close(e_gpu, e_cpu, rtol=1e-10, atol=1e-12)


@needs_cuda
def test_instruments_on_cuda_match_the_cpu_in_float64():
    from petridish.instruments import hessian_trace, spectral_density, top_eigenvalues
    x, y = _data(n=32)
    model = _builder("mlp")(0)
    ref = top_eigenvalues(model, x, y, k=3, seed=0)
    tr = hessian_trace(model, x, y, n_samples=8, seed=0)
    sd = spectral_density(model, x, y, n_vectors=2, iters=20, seed=0)
    with use_device("cuda"):
        got = top_eigenvalues(model, x, y, k=3, seed=0)
        tr_gpu = hessian_trace(model, x, y, n_samples=8, seed=0)
        sd_gpu = spectral_density(model, x, y, n_vectors=2, iters=20, seed=0)
    torch.testing.assert_close(got.eigenvalues, ref.eigenvalues, rtol=1e-8, atol=1e-10)
    assert abs(tr_gpu.trace - tr.trace) <= 1e-8 * abs(tr.trace)
    torch.testing.assert_close(sd_gpu.nodes, sd.nodes, rtol=1e-6, atol=1e-8)


@needs_cuda
def test_a_tiny_sweep_with_device_cuda(capsys, store_dir):
    import json

    from petridish.cli.main import main
    from petridish.lab.store import open_store
    from petridish.lab.sweep import run_sweep
    res = run_sweep(WHERE, store="memory", device="cuda")
    assert [c.metrics["on_cuda"] for c in res.cells] == [1.0, 1.0]
    rc = main(["run", "linear-double-descent", "--quick", "--device", "cuda", "--store", store_dir, "--json"])
    doc = json.loads(capsys.readouterr()[0])
    assert rc == 0 and all(c["status"] == "done" for c in doc["cells"])
    st = open_store(store_dir)
    try:
        assert st.get_run(doc["run"]).provenance["device"].startswith("cuda")
    finally:
        st.close()
