"""Can curvature-aware methods train faster? (Donoho's "speed up training").

Full-batch training (cross-entropy, float64) on the first ``n_train`` MNIST-1D examples, from one initialization
per seed and architecture, until the training loss reaches ``target_loss`` (and the cost of reaching a test
accuracy ``target_acc`` on the way). Two architectures (``arch``), reported separately:

* ``mlp``: 40→32→32→10, tanh (2,698 parameters);
* ``cnn``: the MNIST-1D paper's CNN (``petridish.models.cnn``) with ``CNN_CHANNELS`` = 8 channels instead of 25:
  three strided Conv1d layers (k5/s2, k3/s2, k3/s2; lengths 40→19→10→5), ReLU, a 40→10 linear head (858
  parameters).

Methods:

* ``sgd-momentum`` (heavy ball 0.9) and ``adam``: first-order, one gradient per step;
* ``lbfgs``: ``torch.optim.LBFGS`` with a strong-Wolfe line search (one parameter group, a closure);
* ``hessian-free``: damped Newton–CG with Hessian-vector products (``petridish.train.hessian_free``);
* ``kfac``: block-diagonal K-FAC (``petridish.train.kfac``; Martens & Grosse 2015) with the sampled-label
  Fisher, factored Tikhonov damping ``kfac_damping``, running factors, inverses every ``inverse_every``
  steps, no momentum;
* ``shampoo``: Shampoo (``petridish.train.shampoo``; Gupta, Koren & Singer 2018), summed statistics,
  ε = 1e-6, inverse fourth roots every ``inverse_every`` steps, heavy-ball momentum 0.9.

K-FAC here supports Linear layers only: its constructor refuses the CNN's Conv1d with a one-line error, which the
(kfac, cnn) cell records (``supported`` False, ``unsupported_reason``), so its CNN claims are *not measured* with
that reason. Every other method runs on both architectures with the same grid and tuning budget (Shampoo
flattens a conv weight (out, in, k) to an out × (in·k) matrix).

Each method gets the same tuning budget: the first ``tuning`` of the three settings of its main knob in
``GRID`` (learning rate, history size or damping), the best (fastest to the target in wall time) reported.
Costs: steps, wall seconds, and gradient-equivalents, a machine-independent FLOP proxy (one full-batch
gradient = 1 ≈ 6·n·U FLOPs, where U sums each layer's parameter count times the positions it is applied at:
U = P, the parameter count, for the MLP; a conv layer's weights and bias count once per output position, so
U ≈ 4,300 for the CNN's 858 parameters; one Hessian-vector product by double backward ≈ 2; K-FAC's
sampled-label backward ≈ 2/3; K-FAC's and Shampoo's eigendecompositions (≈ 9d³ FLOPs for a d×d factor)
and preconditioning products (2(m²n + mn²) for an m×n weight) converted at 6·n·U FLOPs per gradient).
The wall time of every method includes one extra full-batch forward per step (the recorded loss); the
test accuracy, evaluated after every step until ``target_acc`` is reached and at the loss target, is off the
clock. Reaching ``target_acc`` is recorded on the way to the loss target (training stops at the loss target,
so a method that gets there first may never reach it).
L-BFGS counts its own iterations as steps; its target check comes after each ``step()`` call of up to
10 iterations, so it may overshoot the target. The Hessian-free steps use Hessian-vector products (CG
stops at negative curvature), not Gauss–Newton ones. On the ReLU CNN that stop often comes on CG's first
direction (negative curvature along −g): the step is then zero, ``HessianFree`` raises λ, and the setting
counts in ``stalled_settings`` (settings with at least one such zero step).
A setting has diverged (``diverged_settings``) when its loss turns non-finite or above ``BLOW_UP`` times its
initial loss (Shampoo at lr 0.03 on the CNN, seed 1: 2.7e13, where it then sat for the rest of its budget), or
when its Shampoo statistics overflow (eigh fails to converge); it stops there instead of spending its budget.
"""
from __future__ import annotations

import math
import time

import numpy as np
import torch

from petridish.data import mnist1d
from petridish.errors import InvalidParameterError
from petridish.lab import Analysis, Experiment, Param, aggregate, family, from_difference, paired_difference
from petridish.lab.claims import not_measured
from petridish.lab.paired import pair_by_seed
from petridish.models import build_model
from petridish.seeding import sub_seed
from petridish.train.hessian_free import HessianFree
from petridish.train.kfac import KFAC
from petridish.train.shampoo import Shampoo

METHODS = ("sgd-momentum", "adam", "lbfgs", "hessian-free", "kfac", "shampoo")
ARCHS = ("mlp", "cnn")
CNN_CHANNELS = 8                                   # the paper's CNN has 25; 8 keeps a run cheap (858 parameters)
SECOND = ("lbfgs", "hessian-free", "kfac", "shampoo")
GRID = {"sgd-momentum": (0.03, 0.1, 0.3),          # lr
        "adam": (1e-3, 3e-3, 1e-2),                # lr
        "lbfgs": (5, 10, 20),                      # history size (lr 1, strong Wolfe)
        "hessian-free": (0.1, 1.0, 10.0),          # initial damping λ
        "kfac": (0.1, 0.3, 1.0),                   # lr (damping λ = kfac_damping, inverses every 5 steps)
        "shampoo": (0.01, 0.03, 0.1)}              # lr (ε = 1e-6, roots every 5 steps)
HVP_COST = 2.0                                     # gradient-equivalents per Hessian-vector product
SAMPLED_BACKWARD = 2 / 3                           # a backward pass ≈ 2 of a gradient's 3 forward-equivalents
BLOW_UP = 100.0                                    # a loss above 100× the initial one (≈ 230 nats) has diverged


def _data(n_train: int):
    ds = mnist1d(n_train=4000, n_test=1000)
    return ds.x_train[:n_train].double(), ds.y_train[:n_train], ds.x_test.double(), ds.y_test


def _model(arch: str, seed: int) -> torch.nn.Module:
    """The cell's network in float64, initialized from the seed (the same init for every method)."""
    if arch == "cnn":
        return build_model("cnn", d_in=40, d_out=10, seed=sub_seed(seed, "init"), channels=CNN_CHANNELS).double()
    return build_model("mlp", d_in=40, d_out=10, seed=sub_seed(seed, "init"), width=32, depth=2,
                       activation="tanh").double()


def _uses_per_example(model: torch.nn.Module, x: torch.Tensor) -> float:
    """U: Σ over parameterized modules of (own parameters) × (output positions), by one forward on x[:1].
    A Linear on (batch, features) applies each weight once (U = P for the MLP); a Conv1d once per output
    position. One full-batch gradient ≈ 6·n·U FLOPs (forward 2nU, backward 4nU)."""
    uses = []

    def hook(mod, inp, out):
        own = sum(q.numel() for q in mod.parameters(recurse=False))
        uses.append(own * (out.shape[-1] if isinstance(mod, torch.nn.Conv1d) else 1))
    handles = [m.register_forward_hook(hook) for m in model.modules() if list(m.parameters(recurse=False))]
    try:
        with torch.no_grad():
            model(x[:1])
    finally:
        for h in handles:
            h.remove()
    return float(sum(uses))


def _unsupported(method: str, model: torch.nn.Module) -> str | None:
    """The optimizer's one-line refusal of this model, or None when it runs (only K-FAC refuses: Conv1d)."""
    if method != "kfac":
        return None
    try:
        KFAC(model)
    except InvalidParameterError as e:
        return str(e)
    return None


def _attempt(method: str, knob: float, p: dict, seed: int, data) -> dict:
    """One tuning setting: train until the target or the budget; the cost at which the target was hit."""
    x, y, xt, yt = data
    model = _model(p["arch"], seed)
    params = [q for q in model.parameters()]
    loss_fn = lambda: torch.nn.functional.cross_entropy(model(x), y)
    with torch.no_grad():
        blow_up = BLOW_UP * float(loss_fn())
    cost, steps, t0, paused = 0.0, 0, time.perf_counter(), 0.0
    curve_t, curve_l = [], []
    hit = acc_hit = None
    if method in ("sgd-momentum", "adam"):
        opt = (torch.optim.SGD(params, lr=knob, momentum=0.9) if method == "sgd-momentum"
               else torch.optim.Adam(params, lr=knob))
        step = lambda: (opt.zero_grad(), loss_fn().backward(), opt.step())
        per = 1.0
    elif method == "lbfgs":
        # max_iter=1 per step() stalls at the initial loss here (torch 2.13), so one step() = up to 10
        # L-BFGS iterations; steps are counted as iterations (the optimizer's own n_iter)
        opt = torch.optim.LBFGS(params, lr=1.0, max_iter=10, history_size=int(knob), line_search_fn="strong_wolfe",
                                tolerance_grad=0.0, tolerance_change=0.0)
        evals = [0]

        def closure():
            evals[0] += 1
            opt.zero_grad()
            v = loss_fn()
            v.backward()
            return v
        step = lambda: opt.step(closure)
        per = None                                  # counted through the closure
    elif method == "hessian-free":
        hf = HessianFree(params, loss_fn, damping=knob, cg_iters=p["cg_iters"], cg_tol=1e-6)
        step = hf.step
        per = None
    elif method == "kfac":
        kf = KFAC(model, loss="cross_entropy", lr=knob, damping=p["kfac_damping"], fisher="sampled",
                  inverse_every=p["inverse_every"], momentum=0.0, seed=sub_seed(seed, "kfac"))
        step = lambda: kf.step(x, y)
        per = None
    else:
        sh = Shampoo(params, lr=knob, eps=1e-6, update_every=p["inverse_every"], momentum=0.9)
        step = lambda: (sh.zero_grad(), loss_fn().backward(), sh.step())
        per = None
    flops_grad = 6.0 * x.shape[0] * _uses_per_example(model, x)          # ≈ FLOPs of one full-batch gradient
    stalls, diverged = 0, False                       # stalls: Hessian-free steps that could not move
    while steps < p["max_steps"] and time.perf_counter() - t0 - paused < p["time_budget"]:
        try:
            step()
        except torch.linalg.LinAlgError:
            # an eigendecomposition of overflowed statistics (Shampoo at too large an lr, loss ≈ 1e255 on the
            # CNN): the setting diverged, like a non-finite loss
            diverged = True
            break
        steps += 1
        if method == "lbfgs":
            cost = float(evals[0])
            steps = int(opt.state[params[0]].get("n_iter", steps))
        elif method == "hessian-free":
            cost += 2.0 + HVP_COST * (hf.last_cg.iterations + 1)     # gradient + loss eval, CG products
            # CG stopped on its first direction (negative curvature along −g: the ReLU CNN's case): d = 0, the
            # step changes nothing, and HessianFree raises λ until H + λI is positive definite along −g
            if hf.last_cg.iterations == 0:
                stalls += 1
        elif method == "kfac":
            # gradient + the sampled-label backward + eigendecompositions + the two matmuls per layer
            cost += 1.0 + SAMPLED_BACKWARD + (kf.last_inversion_flops + _precondition_flops(model)) / flops_grad
        elif method == "shampoo":
            cost += 1.0 + (sh.refresh_flops + _precondition_flops(model)) / flops_grad
        else:
            cost += per
        with torch.no_grad():
            lv = float(loss_fn())
        curve_t.append(time.perf_counter() - t0 - paused)
        curve_l.append(lv)
        if not lv <= blow_up:                         # non-finite or blown up: diverged
            diverged = True
            break
        reached = lv <= p["target_loss"]
        if acc_hit is None or reached:                # needed until the accuracy target, and at the loss target
            te = time.perf_counter()                  # the test evaluation is off the clock
            with torch.no_grad():
                acc = float((model(xt).argmax(1) == yt).double().mean())
            paused += time.perf_counter() - te
        if acc_hit is None and acc >= p["target_acc"]:
            acc_hit = {"steps": steps, "seconds": curve_t[-1], "grad_evals": cost}
        if reached:
            hit = {"steps": steps, "seconds": curve_t[-1], "grad_evals": cost, "test_acc": acc}
            break
    return {"hit": hit, "acc_hit": acc_hit, "final_loss": curve_l[-1] if curve_l else math.nan, "knob": knob,
            "curve_t": curve_t, "curve_l": curve_l, "stalls": stalls, "diverged": diverged}


def _precondition_flops(model) -> float:
    """2·(m²n + mn²) per m×n weight matrix (a conv weight (out, in, k) as out × in·k, as Shampoo flattens it):
    the left and right products of K-FAC and Shampoo."""
    dims = [(q.shape[0], q[0].numel()) for q in model.parameters() if q.dim() >= 2]
    return float(sum(2 * (m * m * n + m * n * n) for m, n in dims))


_WARM = []


def _warm_up() -> None:
    """Once per process: the first torch.optim step imports torch._dynamo (seconds, tens on a busy machine);
    that one-time import is not the method's cost, so it is paid before any clock starts."""
    if not _WARM:
        w = torch.zeros(1, requires_grad=True)
        w.grad = torch.zeros(1)
        torch.optim.Adam([w]).step()
        _WARM.append(True)


def run(p: dict, seed: int) -> dict:
    method = p["method"]
    reason = _unsupported(method, _model(p["arch"], seed))
    if reason is not None:                            # K-FAC on the CNN: nothing to train, the refusal recorded
        return {"supported": False, "unsupported_reason": reason, "reached": False, "acc_reached": False}
    _warm_up()
    data = _data(p["n_train"])
    tries = [_attempt(method, k, p, seed, data) for k in GRID[method][:p["tuning"]]]
    reached = [t for t in tries if t["hit"] is not None]
    best = min(reached, key=lambda t: t["hit"]["seconds"]) if reached else min(
        tries, key=lambda t: t["final_loss"] if math.isfinite(t["final_loss"]) else math.inf)
    out = {"supported": True, "reached": bool(reached), "acc_reached": best["acc_hit"] is not None,
           "knob": best["knob"], "final_loss": best["final_loss"], "steps_run": float(len(best["curve_l"])),
           "stalled_settings": int(sum(bool(t["stalls"]) for t in tries)),      # Hessian-free only
           "diverged_settings": int(sum(t["diverged"] for t in tries)),        # blown up, or eigh failed
           "curve_seconds": best["curve_t"][:: max(1, len(best["curve_t"]) // 100)],
           "curve_loss": best["curve_l"][:: max(1, len(best["curve_l"]) // 100)]}
    if reached:
        h = best["hit"]
        out.update(steps_to_target=float(h["steps"]), seconds_to_target=h["seconds"],
                   grad_evals_to_target=h["grad_evals"], test_acc_at_target=h["test_acc"],
                   log10_seconds_to_target=math.log10(h["seconds"]),
                   log10_grad_evals_to_target=math.log10(h["grad_evals"]))
    if best["acc_hit"] is not None:
        a = best["acc_hit"]
        out.update(steps_to_acc=float(a["steps"]), seconds_to_acc=a["seconds"], grad_evals_to_acc=a["grad_evals"],
                   log10_grad_evals_to_acc=math.log10(a["grad_evals"]))
    return out


def _by_seed(cells, arch, method, metric):
    return {c.seed: float(c.metrics[metric]) for c in cells if c.status == "done" and _arch(c) == arch
            and c.params.get("method") == method and isinstance(c.metrics.get(metric), (int, float))}


def _arch(c) -> str:
    return c.params.get("arch", "mlp")


def _refusal(cells, arch, method) -> str | None:
    """The optimizer's recorded one-line refusal of this architecture, if any of its cells has one."""
    return next((c.metrics["unsupported_reason"] for c in cells if c.status == "done" and _arch(c) == arch
                 and c.params.get("method") == method and c.metrics.get("supported") is False), None)


def _claims(cells, arch) -> list:
    """12 claims per architecture: each second-order method against tuned Adam, on wall time and
    gradient-equivalents to the loss target and gradient-equivalents to the test-accuracy target."""
    tag = arch.upper()
    specs = [(m, metric, f"reaches the target training loss with less {what} than tuned Adam",
              f"log10 {what} of Adam minus {m}", "fewer than 2 seeds where both reached the target")
             for m in SECOND for metric, what in (("log10_seconds_to_target", "wall time"),
                                                  ("log10_grad_evals_to_target", "gradient-equivalents"))]
    specs += [(m, "log10_grad_evals_to_acc", "reaches the target test accuracy with less gradient-equivalents "
               "than tuned Adam", f"log10 gradient-equivalents to the test accuracy, Adam minus {m}",
               "fewer than 2 seeds where both reached the test accuracy before the loss target") for m in SECOND]
    out = []
    for m, metric, text, effect, reason in specs:
        claim = f"{tag}: {m} {text}"
        refused = _refusal(cells, arch, m)
        if refused is not None:
            out.append(not_measured(claim, f"{m} cannot run on the {tag}: {refused.rstrip('.')}", effect=effect))
            continue
        a, b = pair_by_seed(_by_seed(cells, arch, "adam", metric), _by_seed(cells, arch, m, metric))
        out.append(from_difference(claim, paired_difference(a, b) if a.size >= 2 else None, effect=effect,
                                   reason=reason))
    return out


def analyze(cells) -> Analysis:
    archs = [a for a in ARCHS if any(_arch(c) == a for c in cells)] or ["mlp"]
    claims = [c for a in archs for c in _claims(cells, a)]
    rows = aggregate(cells, by=["arch", "method"],
                     metrics=["steps_to_target", "seconds_to_target", "grad_evals_to_target", "test_acc_at_target",
                              "steps_to_acc", "seconds_to_acc", "grad_evals_to_acc"],
                     bounds={"test_acc_at_target": (0, 1)})
    values = {"by_method": {a: {r["params"]["method"]: r["metrics"] for r in rows
                                if r["params"].get("arch", "mlp") == a} for a in archs},
              "reached": {a: {m: int(sum(bool(c.metrics.get("reached")) for c in cells
                                         if _arch(c) == a and c.params.get("method") == m)) for m in METHODS}
                          for a in archs},
              "unsupported": {a: {m: r for m in METHODS if (r := _refusal(cells, a, m)) is not None}
                              for a in archs}}
    return Analysis(values=values, claims=family(claims))


def plot(cells, fig) -> None:
    """One row per architecture: training-loss curves against wall time, and gradient-equivalents to the target
    (a method that cannot run on the architecture, K-FAC on the CNN, is named in the row's title)."""
    archs = [a for a in ARCHS if any(_arch(c) == a for c in cells)] or ["mlp"]
    axes = fig.subplots(len(archs), 2, squeeze=False)
    for r, arch in enumerate(archs):
        ax0, ax1 = axes[r]
        sel_arch = [c for c in cells if c.status == "done" and _arch(c) == arch and "curve_seconds" in c.metrics]
        for i, m in enumerate(METHODS):
            for j, c in enumerate(x for x in sel_arch if x.params["method"] == m):
                ax0.plot(c.metrics["curve_seconds"], c.metrics["curve_loss"], color=f"C{i}", lw=1,
                         label=m if j == 0 else None)
        target = next((c.params["target_loss"] for c in cells if "target_loss" in c.params), None)
        if target is not None:
            ax0.axhline(target, color="grey", ls=":", lw=1, label="target")
        ax0.set_xscale("log")
        ax0.set_yscale("log")
        ax0.set_xlabel("wall seconds (busy 2-core CPU)")
        ax0.set_ylabel("training loss (full batch)")
        refused = [m for m in METHODS if _refusal(cells, arch, m) is not None]
        ax0.set_title(f"{arch.upper()}" + (f" ({', '.join(refused)}: not measured, refused)" if refused else ""),
                      fontsize=9)
        if ax0.get_legend_handles_labels()[0]:
            ax0.legend(fontsize=7)
        rows = aggregate([c for c in cells if _arch(c) == arch], by=["method"], metrics=["grad_evals_to_target"])
        names = [q["params"]["method"] for q in rows if "grad_evals_to_target" in q["metrics"]]
        mt = [q["metrics"]["grad_evals_to_target"] for q in rows if "grad_evals_to_target" in q["metrics"]]
        if mt:
            mean = np.array([v["mean"] for v in mt])
            ax1.bar(np.arange(len(mean)), mean, yerr=[mean - np.array([v["lo"] for v in mt]),
                                                      np.array([v["hi"] for v in mt]) - mean], capsize=3)
            ax1.set_xticks(np.arange(len(mean)), names)
            ax1.tick_params(axis="x", labelsize=7)
            ax1.set_yscale("log")
        ax1.set_ylabel("gradient-equivalents to the target (95% CI)", fontsize=8)
        ax1.set_title(arch.upper(), fontsize=9)
    fig.suptitle("First- vs second-order full-batch training, mnist1d MLP and CNN")


EXPERIMENT = Experiment(
    name="second-order",
    question="Do curvature-aware methods (L-BFGS with strong Wolfe, Hessian-free Newton–CG, K-FAC, Shampoo) "
             "reach a target training loss faster than tuned first-order methods (SGD with momentum, Adam) on "
             "an mnist1d MLP and a small mnist1d CNN?",
    reference="Donoho (2023), Data science at the singularity; Martens (2010), Deep learning via Hessian-free "
              "optimization, ICML; Nocedal (1980) L-BFGS; Martens & Grosse (2015) K-FAC, ICML; Gupta, Koren & "
              "Singer (2018) Shampoo, ICML",
    summary="steps, wall time and gradient-equivalents to a target train loss: SGD-momentum, Adam, L-BFGS, HF, "
            "K-FAC (MLP only), Shampoo; MLP and CNN",
    params=(
        Param("method", str, default=list(METHODS), choices=METHODS, help="optimizer"),
        Param("arch", str, default=list(ARCHS), choices=ARCHS,
              help=f"network: the 40-32-32-10 tanh MLP, or the MNIST-1D CNN with {CNN_CHANNELS} channels"),
        Param("n_train", int, default=1000, quick=500, low=10, high=4000, help="mnist1d training examples"),
        Param("target_loss", float, default=0.5, quick=0.8, low=0.0, help="training cross-entropy to reach"),
        Param("target_acc", float, default=0.3, quick=0.25, low=0.0, high=1.0,
              help="test accuracy to reach (recorded on the way to the loss target)"),
        Param("max_steps", int, default=5000, quick=2000, low=1, high=10_000_000, help="step cap per setting"),
        Param("time_budget", float, default=10.0, quick=6.0, low=0.1, help="wall seconds per setting"),
        Param("tuning", int, default=3, quick=2, low=1, high=3, help="settings tried per method (same for all)"),
        Param("cg_iters", int, default=30, low=1, high=10_000, help="CG iterations per Hessian-free step"),
        Param("kfac_damping", float, default=0.03, low=0.0, help="K-FAC Tikhonov damping λ"),
        Param("inverse_every", int, default=5, low=1, high=10_000,
              help="steps between K-FAC inverses / Shampoo inverse roots"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=4,
    runtime="2 min 37 s",
    # tiny: max_steps, not the wall-clock budget, ends each attempt, and 1 setting per method: run is then
    # deterministic but for its wall times (wall_metrics). With tuning > 1 the setting reported is the
    # fastest in wall time, so the default cells are not reproducible bit for bit.
    tiny={"n_train": 100, "target_loss": 2.1, "target_acc": 0.15, "max_steps": 40, "time_budget": 60.0, "tuning": 1,
          "cg_iters": 5},
    wall_metrics=("curve_seconds", "seconds_to_target", "log10_seconds_to_target", "seconds_to_acc"),
    table_by=("arch", "method"),
    table_metrics=("steps_to_target", "seconds_to_target", "grad_evals_to_target", "test_acc_at_target",
                   "grad_evals_to_acc", "knob"),
    bounds={"test_acc_at_target": (0.0, 1.0)},
)
