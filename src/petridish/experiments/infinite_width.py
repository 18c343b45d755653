"""Infinite width: do wide networks become their Neural Tangent Kernel?

Jacot et al. 2018; Lee et al. 2019 ("Wide neural networks of any depth evolve as linear models
under gradient descent"). For each width, an ensemble of NTK-parameterized ReLU MLPs is
trained by full-batch gradient descent on 1/(2n)|f - y|^2 (a scalar regression target on a
subset of MNIST-1D). We measure, against the analytic kernels of ``petridish.kernels``:

(a) ntk_dist    ||Theta_hat_0 - Theta||_F / ||Theta||_F  (empirical NTK at init vs analytic);
(b) ntk_change  ||Theta_hat_T - Theta_hat_0||_F / ||Theta_hat_0||_F  (how much the NTK moves);
(c) mean_gap    ||E f_T(z) - mu_T(z)|| / ||mu_T(z)|| on test points, with mu_T from
                ``ntk_predict`` for the same discrete GD (step, steps); and var_gap, the same for
                the ensemble variance vs the predicted variance Sigma_T(z, z).

Ensemble means are estimated with a control variate: each member's linearized prediction
f_lin = f_0(z) + A_T (y - f_0(X)), whose mean is exactly mu_T (E f_0 = 0 by symmetry), so
mean(f_T - f_lin) estimates E f_T - mu_T without the O(1/sqrt(members)) Monte Carlo floor
that would otherwise hide the finite-width effect. The same for variances (exact for depth 1,
where Cov f_0 = K at every width). The raw (uncorrected) gaps are reported too.

**Monte Carlo noise.** A finite ensemble's mean is noisy even when E f_T = μ_T: with pure noise
‖mean(f_T − f_lin)‖ is about √(Σ_z Var(f_T − f_lin)(z) / members). Each cell reports that noise
level as ``mean_gap_se`` (and ``var_gap_se``, from a jackknife over members), on the gap's
scale. Since E[gap²] = (true gap)² + se², gap² − se² estimates the squared finite-width effect
without bias; a width's gap is called above its noise only when that is positive across seeds
(t over seeds), and a convergence rate is claimed only over widths whose gaps are above noise
(otherwise "not measured", with the widths at the noise floor named).

Theory: (a) falls like width^-1/2 (a ``within`` claim on the per-seed fitted slope), (b) between
width^-1/2 (Lee et al. 2019, Thm 2.1's bound) and width^-1, and the ensemble mean and variance,
whose finite-width corrections are O(1/width), like width^-1 (the figure's reference line).
"""
from __future__ import annotations

import math
import zlib

import numpy as np
import torch

from petridish.kernels import NTKMLP, empirical_ntk, mlp_kernels, ntk_predict
from petridish.lab import Analysis, Experiment, Param, aggregate, family, from_values, not_measured
from petridish.threads import pin_threads

METRICS = ("ntk_dist", "ntk_change", "mean_gap", "var_gap")
GAPS = ("mean_gap", "var_gap")
# the log-log slope each metric's claim expects: (centre, half-width of the band)
RATES = {"ntk_dist": (-0.5, 0.1), "ntk_change": (-0.75, 0.25), "mean_gap": (-1.0, 0.5), "var_gap": (-1.0, 0.5)}
RATE_TEXT = {"ntk_dist": "the empirical NTK at init converges to the analytic NTK like width^-1/2",
             "ntk_change": "the NTK moves during training like width^-1/2 to width^-1",
             "mean_gap": "the ensemble mean converges to μ_T like 1/width",
             "var_gap": "the ensemble variance converges to Σ_T like 1/width"}
LABELS = {"ntk_dist": "(a) |Θ̂₀ − Θ| / |Θ|", "ntk_change": "(b) |Θ̂_T − Θ̂₀| / |Θ̂₀|",
          "mean_gap": "(c) |E f_T − μ_T| / |μ_T|", "var_gap": "(c) |Var f_T − Σ_T| / |Σ_T|"}


def _data(p: dict, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MNIST-1D subset, float64: x (n, 40), z (m, 40), scalar target y = +-1 (digit < 5)."""
    from petridish.data import mnist1d
    ds = mnist1d(n_train=4000, n_test=1000)
    g = torch.Generator().manual_seed(seed)
    tr = torch.randperm(ds.n_train, generator=g)[: p["n_train"]]
    te = torch.randperm(ds.n_test, generator=g)[: p["n_test"]]
    x, z = ds.x_train[tr].double(), ds.x_test[te].double()
    y = (ds.y_train[tr] < 5).double() * 2 - 1
    return x, z, y


def _init(p: dict, d0: int, width: int, members: int, seed: int) -> list[torch.Tensor]:
    """Stacked NTK-parameterization weights, all N(0, 1): [W0, b0, W1, b1, ...], (E, out, in)/(E, out)."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(f"width:{width}".encode()))
    dims = [d0] + [width] * p["depth"] + [1]
    out = []
    for a, b in zip(dims[:-1], dims[1:]):
        out += [torch.randn(members, b, a, generator=g), torch.randn(members, b, generator=g)]
    return [t.requires_grad_() for t in out]


def _forward(params: list[torch.Tensor], x: torch.Tensor, p: dict) -> torch.Tensor:
    """(E members) x (n, d0) -> (E, n); h = w/sqrt(fan_in) W h + b_std b, ReLU between layers."""
    h = x.to(params[0].dtype).expand(params[0].shape[0], *x.shape)
    n_layers = len(params) // 2
    for i in range(n_layers):
        w, b = params[2 * i], params[2 * i + 1]
        h = torch.baddbmm(p["b_std"] * b[:, None, :], h, w.transpose(1, 2), alpha=p["w_std"] / math.sqrt(w.shape[2]))
        if i < n_layers - 1:
            h = torch.relu(h)
    return h[..., 0]


def _member(params: list[torch.Tensor], e: int, p: dict, d0: int, width: int) -> NTKMLP:
    net = NTKMLP(d0, width, p["depth"], activation="relu", w_std=p["w_std"], b_std=p["b_std"],
                 seed=0, dtype=torch.float64)
    state = {f"layers.{i // 2}.{'weight' if i % 2 == 0 else 'bias'}": t[e].detach().double()
             for i, t in enumerate(params)}
    net.load_state_dict(state)
    return net


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def run(p: dict, seed: int) -> dict:
    # small ops: one OpenMP team per op costs more than the op (badly so on a shared machine)
    with pin_threads(1):
        return _run(p, seed)


def _run(p: dict, seed: int) -> dict:
    x, z, y = _data(p, seed)
    n, d0, width, members = x.shape[0], x.shape[1], p["width"], p["members"]
    kw = dict(depth=p["depth"], w_std=p["w_std"], b_std=p["b_std"])
    k_xx, k_zx, k_zz = (mlp_kernels(a, b, **kw) for a, b in ((x, x), (z, x), (z, z)))
    top = float(torch.linalg.eigvalsh(k_xx.ntk)[-1])
    lr = p["lr_scale"] * n / top                     # GD on 1/(2n)|f-y|^2 is stable for lr*top/n < 2
    steps = p["steps"]
    params = _init(p, d0, width, members, seed)
    probes = min(p["ntk_members"], members)
    ntk0 = [empirical_ntk(_member(params, e, p, d0, width), x) for e in range(probes)]
    with torch.no_grad():
        f0_x, f0_z = _forward(params, x, p).double(), _forward(params, z, p).double()   # (E, n), (E, m)
    opt = torch.optim.SGD(params, lr=lr)
    yf = y.float()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        loss = 0.5 * ((_forward(params, x, p) - yf) ** 2).mean(1).sum()   # sum over members: independent grads
        loss.backward()
        opt.step()
    with torch.no_grad():
        ft_x, ft_z = _forward(params, x, p).double(), _forward(params, z, p).double()
    if not (torch.isfinite(ft_z).all() and torch.isfinite(ft_x).all()):
        return {"diverged": True}
    ntk_t = [empirical_ntk(_member(params, e, p, d0, width), x) for e in range(probes)]
    # infinite-width prediction for the same discrete GD; A_T (m, n) from y = identity
    blocks = dict(t=steps, learning_rate=lr, discrete=True)
    pred = ntk_predict(k_xx.ntk, k_zx.ntk, y, nngp_train_train=k_xx.nngp, nngp_test_train=k_zx.nngp,
                       nngp_test_test=k_zz.nngp.diagonal(), **blocks)
    a_t = ntk_predict(k_xx.ntk, k_zx.ntk, torch.eye(n, dtype=torch.float64), **blocks).mean
    f_lin = f0_z + (y - f0_x) @ a_t.T                # (E, m) linearized members
    mu, var = pred.mean, pred.cov
    dev = ft_z - f_lin
    var_cv = var + ft_z.var(0) - f_lin.var(0)
    # Monte Carlo noise levels on the gaps' scale: the mean's exact SE; the variance's by jackknife
    jk = _loo_var(ft_z) - _loo_var(f_lin)                                       # (E, m)
    jk_var = (members - 1) / members * ((jk - jk.mean(0)) ** 2).sum(0)
    return {
        "mean_gap_se": float(torch.sqrt(dev.var(0).sum() / members) / torch.linalg.norm(mu)),
        "var_gap_se": float(torch.sqrt(jk_var.sum()) / torch.linalg.norm(var)),
        "ntk_dist": float(np.mean([_rel(t, k_xx.ntk) for t in ntk0])),
        "ntk_change": float(np.mean([_rel(t1, t0) for t0, t1 in zip(ntk0, ntk_t)])),
        "mean_gap": float(torch.linalg.norm(dev.mean(0)) / torch.linalg.norm(mu)),
        "var_gap": _rel(var_cv, var),
        "mean_gap_raw": _rel(ft_z.mean(0), mu),
        "var_gap_raw": _rel(ft_z.var(0), var),
        "train_loss": float(0.5 * ((ft_x - y) ** 2).mean()),
        "pred_train_loss": float(0.5 * ((ntk_predict(k_xx.ntk, k_xx.ntk, y, **blocks).mean - y) ** 2).mean()),
        "lin_gap_members": float(torch.linalg.norm(dev) / (torch.linalg.norm(f_lin) + 1e-30)),
        "lr": lr, "steps_done": steps,
    }


def _loo_var(x: torch.Tensor) -> torch.Tensor:
    """(E, m) -> (E, m): the unbiased variance over members with member e left out, row e."""
    e = x.shape[0]
    s1, s2 = x.sum(0), (x * x).sum(0)
    m = (s1 - x) / (e - 1)
    return (s2 - x * x - (e - 1) * m * m) / (e - 2)


def _slope(ws: np.ndarray, vals: np.ndarray) -> float:
    ok = np.isfinite(vals) & (vals > 0)
    if ok.sum() < 2:
        return math.nan
    return float(np.polyfit(np.log(ws[ok]), np.log(vals[ok]), 1)[0])


def _per_seed(cells, metric: str) -> dict[int, dict[int, float]]:
    """width -> {seed: value} over done cells with a finite value."""
    out: dict[int, dict[int, float]] = {}
    for c in cells:
        v = c.metrics.get(metric)
        if c.status == "done" and isinstance(v, (int, float)) and math.isfinite(v):
            out.setdefault(int(c.params["width"]), {})[c.seed] = float(v)
    return out


def _per_seed_slopes(cells, metric: str, widths: list[int] | None = None) -> list[float]:
    """One log-log slope per seed, over ``widths`` (default all) where the seed has a value."""
    table = _per_seed(cells, metric)
    widths = sorted(table) if widths is None else widths
    out = []
    for s in sorted({s for w in widths for s in table.get(w, {})}):
        pts = [(w, table[w][s]) for w in widths if s in table.get(w, {})]
        if len(pts) >= 2:
            out.append(_slope(np.array([w for w, _ in pts], float), np.array([v for _, v in pts], float)))
    return [v for v in out if math.isfinite(v)]


def _table(cells, metric: str):
    rows = [r for r in aggregate(cells, by=["width"], metrics=[metric]) if metric in r["metrics"]]
    rows.sort(key=lambda r: r["params"]["width"])
    ws = np.array([r["params"]["width"] for r in rows], float)
    m = [r["metrics"][metric] for r in rows]
    return ws, np.array([v["mean"] for v in m]), np.array([v["lo"] for v in m]), np.array([v["hi"] for v in m])


def _above_noise(cells, metric: str) -> list:
    """Per width: the claim that the gap exceeds its Monte Carlo noise (gap² − se² > 0 over seeds)."""
    gaps, ses = _per_seed(cells, metric), _per_seed(cells, metric + "_se")
    claims = []
    for w in sorted(gaps):
        excess = [(gaps[w][s] ** 2 - ses[w][s] ** 2) for s in gaps[w] if s in ses.get(w, {})]
        claims.append(from_values(f"{LABELS[metric]} exceeds its Monte Carlo noise at width {w}", excess, null=0.0,
                                  effect="gap² − se² (the squared finite-width effect, bias-corrected)"))
    return claims


def _rate(cells, metric: str, widths: list[int], reason: str | None = None):
    centre, band = RATES[metric]
    text = f"{RATE_TEXT[metric]} (log-log slope {centre:g} ± {band:g})"
    effect = f"per-seed log-log slope over widths {', '.join(map(str, widths)) or 'none'}"
    if reason is None and len(widths) < 3:
        reason = f"{len(widths)} widths; a slope needs at least 3"
    if reason is not None:
        return not_measured(text, reason, effect=effect, direction="within", null=centre, margin=band)
    return from_values(text, _per_seed_slopes(cells, metric, widths), null=centre, effect=effect,
                       direction="within", margin=band, subtract_null=False)


def analyze(cells) -> Analysis:
    findings, values, claims = [], {}, []
    for metric in METRICS + tuple(g + "_se" for g in GAPS) + ("mean_gap_raw", "var_gap_raw"):
        ws, mean, lo, hi = _table(cells, metric)
        if len(ws) < 2:
            continue
        values[f"{metric}_slope"] = _slope(ws, mean)
        values[f"{metric}_by_width"] = {int(w): float(v) for w, v in zip(ws, mean)}
        values[f"{metric}_ci_by_width"] = {int(w): [float(a), float(b)] for w, a, b in zip(ws, lo, hi)}
    widths = sorted(_per_seed(cells, "ntk_dist"))
    for metric in ("ntk_dist", "ntk_change"):
        claims.append(_rate(cells, metric, widths))
    for metric in GAPS:
        noise = family(_above_noise(cells, metric), "holm")
        claims += noise
        above = [int(c.claim.rsplit(" ", 1)[1]) for c in noise if c.verdict == "supported"]
        below = [int(c.claim.rsplit(" ", 1)[1]) for c in noise if c.verdict != "supported"]
        reason = None
        if below and len(above) < 3:
            reason = (f"the gap is not above its Monte Carlo noise at width {', '.join(map(str, below))}, so a slope "
                      f"there would measure the noise floor, not the finite-width effect")
        claims.append(_rate(cells, metric, above if below else widths, reason))
        if f"{metric}_by_width" in values and f"{metric}_se_by_width" in values:
            g, se = values[f"{metric}_by_width"], values[f"{metric}_se_by_width"]
            findings.append(f"{LABELS[metric]} by width (mean over seeds; Monte Carlo noise level in brackets): "
                            + ", ".join(f"{w}: {g[w]:.3g} [{se[w]:.3g}]" for w in g if w in se) + ".")
    return Analysis(findings=findings, values=values, claims=claims)


def plot(cells, fig) -> None:
    axes = fig.subplots(1, len(METRICS))
    for ax, metric in zip(np.atleast_1d(axes), METRICS):
        ws, mean, lo, hi = _table(cells, metric)
        if len(ws) == 0:
            continue
        ax.errorbar(ws, mean, yerr=[mean - lo, hi - mean], fmt="o", capsize=3, label="95% CI over seeds")
        slope = _slope(ws, mean)
        if np.isfinite(slope):
            ok = mean > 0
            c = np.polyfit(np.log(ws[ok]), np.log(mean[ok]), 1)
            ax.plot(ws, np.exp(np.polyval(c, np.log(ws))), "--", label=f"fit slope {slope:.2f}")
        if metric in GAPS:
            ax.plot(ws, mean[0] * (ws / ws[0]) ** -1.0, ":", color="gray", label="1/width")
            sw, se, _, _ = _table(cells, metric + "_se")
            if len(sw):
                ax.plot(sw, se, "x-", color="tab:red", lw=0.8, label="Monte Carlo noise level")
        else:
            ax.plot(ws, mean[0] * (ws / ws[0]) ** -0.5, ":", color="gray", label="width^-1/2")
        ax.set(xscale="log", yscale="log", xlabel="width", title=LABELS[metric])
        ax.legend(fontsize=7)


EXPERIMENT = Experiment(
    name="infinite-width",
    question="As width grows, does a trained network ensemble become the NTK's closed-form prediction?",
    reference="Jacot, Gabriel & Hongler 2018 (NeurIPS), 'Neural Tangent Kernel'; Lee et al. 2019 "
              "(NeurIPS), 'Wide neural networks of any depth evolve as linear models under gradient descent'",
    summary="Empirical NTK -> analytic NTK, NTK stops moving, ensemble -> ntk_predict (slopes ~ -1/2)",
    params=(
        Param("width", int, default=[16, 64, 256, 1024, 4096], quick=[16, 64, 256, 1024], low=1,
              help="hidden width (NTK parameterization)"),
        Param("depth", int, default=1, low=1, high=4, help="hidden layers"),
        Param("members", int, default=32, quick=16, low=2, help="networks per ensemble (per width and seed)"),
        Param("ntk_members", int, default=4, quick=2, low=1, help="members whose empirical NTK is measured"),
        Param("n_train", int, default=64, quick=32, low=4, help="MNIST-1D training points (subset)"),
        Param("n_test", int, default=64, quick=32, low=2, help="test points for the predictions"),
        Param("steps", int, default=100, quick=100, low=1, help="full-batch gradient descent steps"),
        Param("lr_scale", float, default=1.0, low=1e-3, high=1.9,
              help="step = lr_scale * n / largest analytic NTK eigenvalue (stable below 2)"),
        Param("w_std", float, default=1.4142135623730951, low=0.1, help="weight standard deviation σ_w"),
        Param("b_std", float, default=0.1, low=0.0, help="bias standard deviation σ_b"),
    ),
    run=run, analyze=analyze, plot=plot, seeds=3, quick_seeds=3, version=2, runtime="~1.5 min",
    table_by=("width",),
    table_metrics=("ntk_dist", "ntk_change", "mean_gap", "mean_gap_se", "var_gap", "var_gap_se", "mean_gap_raw",
                   "var_gap_raw", "train_loss"),
    tiny=dict(width=[16, 32], members=2, ntk_members=1, n_train=8, n_test=4, steps=5),  # petridish check (seconds)
)
