"""Lanczos tridiagonalization of a symmetric linear operator, with full reorthogonalization.

Only needs ``matvec: (p,) -> (p,)``. Deterministic: the start vector comes from a seeded
``torch.Generator`` (never the global RNG). Full reorthogonalization (two passes of
classical Gram-Schmidt against every previous Lanczos vector) keeps the basis orthonormal
to machine precision, so Ritz values converge in order and without spurious copies —
the failure mode of plain Lanczos and of power iteration with deflation (PyHessian).
Memory: the basis is (iters, p) in the operator's dtype.

``eigsh`` stops on the residuals or (``bound="value"``) on the eigenvalues' error estimates
(``ritz_error``: min(r, r²/gap)); ``block_eigsh`` is block Lanczos for an operator that applies to a
block of vectors at once (batched Hessian-vector products), and resolves repeated eigenvalues up to
the block size; ``lanczos_batched`` runs independent single-vector Lanczos for quadrature.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from petridish.errors import check_choice, check_number, invalid

MatVec = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class LanczosResult:
    alpha: torch.Tensor      # (m,) diagonal of T
    beta: torch.Tensor       # (m-1,) off-diagonal of T
    basis: torch.Tensor      # (m, p) orthonormal Lanczos vectors (rows)
    last_beta: float         # ||residual|| after the last step (0 => invariant subspace found)

    def tridiagonal(self) -> torch.Tensor:
        """T (m, m) in float64."""
        a, b = self.alpha.double(), self.beta.double()
        return torch.diag(a) + torch.diag(b, 1) + torch.diag(b, -1)


def random_start(dim: int, *, seed: int, dtype: torch.dtype, device, kind: str = "gaussian") -> torch.Tensor:
    """A seeded unit vector (p,): Gaussian, or Rademacher (±1/sqrt(p))."""
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if kind == "rademacher":
        v = torch.randint(0, 2, (dim,), generator=gen, dtype=torch.float64) * 2 - 1
    else:
        v = torch.randn(dim, generator=gen, dtype=torch.float64)
    v = v / v.norm()
    return v.to(dtype=dtype, device=device)


def _orthogonalize(w: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    # Two passes of classical Gram-Schmidt ("twice is enough", Giraud et al. 2005).
    for _ in range(2):
        w = w - Q.T @ (Q @ w)
    return w


def lanczos(matvec: MatVec, v0: torch.Tensor, *, iters: int,
            stop: Callable[[int, torch.Tensor, torch.Tensor, float], bool] | None = None) -> LanczosResult:
    """Run up to ``iters`` Lanczos steps from unit vector ``v0`` (p,).

    ``stop(j, alpha, beta, last_beta)`` is consulted after each step (j = steps done) and
    may end the iteration early. Stops on its own at an invariant subspace.
    """
    iters = check_number(iters, "iters", "lanczos", kind=int, low=1)
    dim = v0.numel()
    iters = min(iters, dim)
    Q = torch.zeros(iters, dim, dtype=v0.dtype, device=v0.device)
    alphas, betas = [], []
    q = v0 / v0.norm()
    beta_prev = 0.0
    scale = 0.0
    last_beta = 0.0
    for j in range(iters):
        Q[j] = q
        w = matvec(q)
        a = torch.dot(q, w)
        w = w - a * q
        if j > 0:
            w = w - beta_prev * Q[j - 1]
        w = _orthogonalize(w, Q[:j + 1])
        b = float(w.norm())
        alphas.append(float(a))
        scale = max(scale, abs(float(a)), b)
        last_beta = b
        done = j + 1
        # Invariant subspace: the Krylov space is exhausted (relative to the operator's scale).
        if b <= 1e3 * torch.finfo(v0.dtype).eps * max(scale, 1e-300) or done == iters:
            break
        if stop is not None and stop(done, torch.tensor(alphas, dtype=torch.float64),
                                     torch.tensor(betas, dtype=torch.float64), b):
            break
        betas.append(b)
        beta_prev = b
        q = w / b
    m = len(alphas)
    return LanczosResult(torch.tensor(alphas, dtype=torch.float64),
                         torch.tensor(betas[:m - 1], dtype=torch.float64), Q[:m], last_beta)


@dataclass
class EigResult:
    eigenvalues: torch.Tensor   # (k,) float64, in the requested order (descending for "LA")
    eigenvectors: torch.Tensor  # (k, p) Ritz vectors (rows), operator dtype
    residuals: torch.Tensor     # (k,) ||A y - theta y|| bounds, float64
    iterations: int
    converged: bool


def _select(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    if which == "LA":
        return torch.argsort(theta, descending=True)[:k]
    if which == "SA":
        return torch.argsort(theta)[:k]
    return torch.argsort(theta.abs(), descending=True)[:k]


def ritz_error(theta: torch.Tensor, idx: torch.Tensor, res: torch.Tensor) -> torch.Tensor:
    """Error estimates of the selected Ritz values theta[idx] (residuals ``res``): min(r, r²/δ), δ the
    distance to the nearest other Ritz value. |θ − λ| ≤ r for some eigenvalue λ always (Bauer–Fike for
    symmetric operators), and ≤ r²/δ when δ is the gap from θ to the rest of the spectrum (Kato–Temple;
    Parlett 1998, §11.7). Ritz gaps can overstate the true gap while the neighbours are unconverged, so
    only the first bound is rigorous."""
    th = theta.double()
    others = (th[idx][:, None] - th[None, :]).abs()                              # (k, m)
    others[torch.arange(len(idx)), idx] = float("inf")
    gap = others.min(1).values
    res = res.double()
    return torch.minimum(res, res ** 2 / gap.clamp_min(1e-300))


def eigsh(matvec: MatVec, dim: int, *, k: int = 5, which: str = "LA", tol: float | None = None,
          max_iters: int | None = None, seed: int = 0, dtype: torch.dtype = torch.float64,
          device=None, check_every: int = 5, vectors: bool = False,
          v0: torch.Tensor | None = None, bound: str = "residual") -> EigResult:
    """k extreme eigenpairs of a symmetric operator by Lanczos with full reorthogonalization.

    which: "LA" largest algebraic, "SA" smallest algebraic, "LM" largest magnitude.
    ``bound="residual"``: converged when every selected Ritz pair has residual <= tol * max|theta|
    (residual bound |beta_m * s_{m,i}|); tol defaults to 1e-8 in float64 and 1e-4 in float32 (the
    HVP's own rounding floor). ``bound="value"``: converged when every selected Ritz value's error
    estimate :func:`ritz_error` <= tol * max|theta| — what eigenvalues alone need (an eigenvalue's
    error is about residual² / gap, so residuals may stay far larger); tol then defaults to 1e-10 in
    float64 and 1e-5 in float32. ``v0`` (p,) is the start vector (a warm start, e.g. a combination
    of the last Ritz vectors); it defaults to a seeded Gaussian unit vector.
    """
    owner = "eigsh"
    dim = check_number(dim, "dim", owner, kind=int, low=1)
    k = check_number(k, "k", owner, kind=int, low=1)
    if k > dim:
        raise invalid("k", owner, f"an int <= the operator dimension {dim}", k)
    check_choice(which, "which", owner, ("LA", "SA", "LM"))
    check_choice(bound, "bound", owner, ("residual", "value"))
    if tol is None:
        tol = (1e-8 if dtype == torch.float64 else 1e-4) if bound == "residual" else \
              (1e-10 if dtype == torch.float64 else 1e-5)
    tol = check_number(tol, "tol", owner, low=0, low_open=True)
    check_every = check_number(check_every, "check_every", owner, kind=int, low=1)
    if max_iters is None:
        max_iters = max(3 * k + 30, 60)
    max_iters = min(check_number(max_iters, "max_iters", owner, kind=int, low=1), dim)
    if v0 is None:
        v0 = random_start(dim, seed=seed, dtype=dtype, device=device)
    elif v0.shape != (dim,) or not bool(torch.isfinite(v0).all()) or float(v0.norm()) == 0.0:
        raise invalid("v0", owner, f"a finite nonzero vector of shape ({dim},)", tuple(v0.shape))
    else:
        v0 = v0.to(dtype=dtype, device=device)

    def converged(alpha: torch.Tensor, beta: torch.Tensor, last_beta: float) -> tuple[bool, torch.Tensor]:
        T = torch.diag(alpha) + torch.diag(beta, 1) + torch.diag(beta, -1)
        theta, S = torch.linalg.eigh(T)
        idx = _select(theta, min(k, theta.numel()), which)
        res = (last_beta * S[-1, idx]).abs()
        err = res if bound == "residual" else ritz_error(theta, idx, res)
        ok = theta.numel() >= k and bool((err <= tol * theta.abs().max().clamp_min(1e-300)).all())
        return ok, res

    def stop(j, alpha, beta, last_beta):
        if j < k or j % check_every:
            return False
        return converged(alpha, beta, last_beta)[0]

    run = lanczos(matvec, v0, iters=max_iters, stop=stop)
    T = run.tridiagonal()
    theta, S = torch.linalg.eigh(T)
    idx = _select(theta, min(k, theta.numel()), which)
    res = (run.last_beta * S[-1, idx]).abs()
    err = res if bound == "residual" else ritz_error(theta, idx, res)
    ok = theta.numel() >= k and bool((err <= tol * theta.abs().max().clamp_min(1e-300)).all())
    if run.alpha.numel() == dim or run.last_beta == 0.0:
        ok = True   # the Krylov space is the whole space: Ritz values are exact
    vecs = (S[:, idx].T.to(run.basis) @ run.basis).cpu() if vectors else torch.empty(0, dim, dtype=dtype)
    return EigResult(theta[idx], vecs, res, int(run.alpha.numel()), ok)


def _orthonormal_rows(W: torch.Tensor, floor: float) -> torch.Tensor:
    """An orthonormal basis (r, p) of the rows of W (b, p), r ≤ b, dropping directions whose singular
    value is ≤ ``floor`` (deflation: the block Krylov space has lost rank there)."""
    _, s, vh = torch.linalg.svd(W, full_matrices=False)
    return vh[s > floor]


def block_eigsh(matmat: Callable[[torch.Tensor], torch.Tensor], dim: int, *, k: int = 5, block: int | None = None,
                which: str = "LA", tol: float | None = None, max_iters: int | None = None, seed: int = 0,
                dtype: torch.dtype = torch.float64, device=None, vectors: bool = False) -> EigResult:
    """k extreme eigenpairs of a symmetric operator by block Lanczos (full reorthogonalization) with
    Rayleigh–Ritz on the whole block Krylov basis.

    ``matmat: (b, p) -> (b, p)`` applies the operator to ``block`` vectors at once (b = k by default):
    one batched call per step, which for Hessian-vector products is one pass with b-times-wider GEMMs
    instead of b small ones. Each step stores the block Q_j and its image W_j = A Q_j; the projected
    matrix T = Q Wᵀ ((m, m), m = vectors so far) gives the Ritz pairs (θᵢ, yᵢ = sᵢᵀQ) and their exact
    residuals rᵢ = ‖sᵢᵀW − θᵢ sᵢᵀQ‖ (no recurrence is trusted). Stopping:

    * ``vectors=False``: every selected Ritz value's error estimate :func:`ritz_error`, min(rᵢ, rᵢ²/δᵢ),
      is ≤ tol·max|θ|;
    * ``vectors=True``: every selected residual rᵢ ≤ tol·max|θ| (eigenvectors need small residuals:
      their angle error is about r/δ).

    tol defaults to 1e-10 in float64 and 1e-5 in float32 (relative to the largest |Ritz value|).
    ``iterations`` of the result counts operator applications (vectors), as for ``eigsh``;
    ``max_iters`` (default max(3k + 30, 60)) bounds them.
    """
    owner = "block_eigsh"
    dim = check_number(dim, "dim", owner, kind=int, low=1)
    k = check_number(k, "k", owner, kind=int, low=1)
    if k > dim:
        raise invalid("k", owner, f"an int <= the operator dimension {dim}", k)
    check_choice(which, "which", owner, ("LA", "SA", "LM"))
    b = k if block is None else check_number(block, "block", owner, kind=int, low=1)
    b = min(b, dim)
    if tol is None:
        tol = 1e-10 if dtype == torch.float64 else 1e-5
    tol = check_number(tol, "tol", owner, low=0, low_open=True)
    if max_iters is None:
        max_iters = max(3 * k + 30, 60)
    max_iters = min(check_number(max_iters, "max_iters", owner, kind=int, low=1), dim)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    start = torch.randn(b, dim, generator=gen, dtype=torch.float64).to(dtype=dtype, device=device)
    q = _orthonormal_rows(start, 0.0)
    Qs, Ws = [], []                                   # blocks of the basis (rows) and their images
    T = torch.zeros(0, 0, dtype=torch.float64)
    floor = 1e3 * torch.finfo(dtype).eps
    count, scale, ok = 0, 0.0, False
    while True:
        w = matmat(q)                                 # (r, p)
        count += q.shape[0]
        Q_prev = torch.cat(Qs) if Qs else None
        # T grows by one block row/column: [T, Q_prev w_newᵀ; ·, q wᵀ], symmetrized
        cross = (Q_prev @ w.T).double().cpu() if Q_prev is not None else torch.zeros(0, q.shape[0], dtype=torch.float64)
        diag = (q @ w.T).double().cpu()
        T = torch.cat([torch.cat([T, cross], 1), torch.cat([cross.T, 0.5 * (diag + diag.T)], 1)], 0)
        Qs.append(q)
        Ws.append(w)
        theta, S = torch.linalg.eigh(T.cpu())
        idx = _select(theta, min(k, theta.numel()), which)
        Q_all, W_all = torch.cat(Qs), torch.cat(Ws)
        Sk = S[:, idx].to(dtype=dtype, device=Q_all.device)                           # (m, k')
        Y = Sk.T @ Q_all                                                                 # (k', p) Ritz vectors
        res = (Sk.T @ W_all - theta[idx].to(Y)[:, None] * Y).norm(dim=1).double().cpu()  # exact residuals
        scale = max(scale, float(theta.abs().max()))
        done = theta.numel() >= k
        err = ritz_error(theta, idx, res) if done and not vectors else res
        ok = done and bool((err <= tol * max(scale, 1e-300)).all())
        if ok or count >= max_iters:
            break
        # the next block: A q orthogonalized (twice) against the whole basis, orthonormalized with deflation
        for _ in range(2):
            w = w - (w @ Q_all.T) @ Q_all
        q = _orthonormal_rows(w, floor * max(scale, 1e-300))[: max_iters - count]
        if q.shape[0] == 0:                           # invariant subspace: the Ritz values are exact
            ok = True
            break
    vecs = Y.cpu() if vectors else torch.empty(0, dim, dtype=dtype)
    return EigResult(theta[idx], vecs, res, count, ok)


def lanczos_batched(matmat: Callable[[torch.Tensor], torch.Tensor], V0: torch.Tensor, *,
                    iters: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """b independent Lanczos runs at once (one batched operator call per step), with full
    reorthogonalization within each run — the fast path for stochastic Lanczos quadrature.

    V0 (b, p) start vectors (normalized here). Returns (alpha (b, m), beta (b, m-1), steps (b,)):
    run i is valid for its first ``steps[i]`` entries (it stops early at an invariant subspace).
    """
    iters = check_number(iters, "iters", "lanczos_batched", kind=int, low=1)
    b, dim = V0.shape
    m = min(iters, dim)
    Q = torch.zeros(b, m, dim, dtype=V0.dtype, device=V0.device)
    dev = V0.device                                                       # bookkeeping beside the vectors
    alpha = torch.zeros(b, m, dtype=torch.float64, device=dev)
    beta = torch.zeros(b, m, dtype=torch.float64, device=dev)
    steps = torch.full((b,), m, dtype=torch.long, device=dev)
    alive = torch.ones(b, dtype=torch.bool, device=dev)
    q = V0 / V0.norm(dim=1, keepdim=True)
    scale = torch.zeros(b, dtype=torch.float64, device=dev)
    eps = 1e3 * torch.finfo(V0.dtype).eps
    for j in range(m):
        Q[:, j] = q
        w = matmat(q)                                                     # (b, p)
        a = (q * w).sum(1)                                                # (b,)
        w = w - a[:, None] * q
        if j > 0:
            w = w - beta[:, j - 1].to(w.dtype)[:, None] * Q[:, j - 1]
        Qj = Q[:, :j + 1]                                                 # (b, j+1, p)
        for _ in range(2):
            w = w - torch.einsum("bjp,bj->bp", Qj, torch.einsum("bjp,bp->bj", Qj, w))
        nb = w.norm(dim=1).double()
        alpha[:, j] = torch.where(alive, a.double(), torch.zeros_like(nb))
        scale = torch.maximum(scale, torch.maximum(a.double().abs(), nb))
        broke = alive & (nb <= eps * scale.clamp_min(1e-300))
        steps[broke] = j + 1
        alive = alive & ~broke
        beta[:, j] = torch.where(alive, nb, torch.zeros_like(nb))
        q = torch.where(alive[:, None], w / nb.clamp_min(1e-300).to(w.dtype)[:, None], torch.zeros_like(w))
        if not bool(alive.any()):
            break
    return alpha.cpu(), beta[:, :m - 1].cpu(), steps.cpu()


def gauss_quadrature(alpha: torch.Tensor, beta: torch.Tensor, steps: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss quadrature nodes and weights of ``lanczos_batched`` runs (stochastic Lanczos
    quadrature): (nodes, weights), each (b, m) float64, the Ritz values of run i's tridiagonal T
    and the squared first components of its eigenvectors, so that for a unit start vector q,
    qᵀ f(A) q ≈ Σ_j weights[i, j] f(nodes[i, j]). Entries past ``steps[i]`` repeat the largest
    Ritz value with weight 0 (so they change neither a sum nor the nodes' range)."""
    b, m = alpha.shape
    nodes = torch.zeros(b, m, dtype=torch.float64)
    weights = torch.zeros(b, m, dtype=torch.float64)
    for i, s in enumerate(steps.tolist()):
        a, e = alpha[i, :s].double(), beta[i, :s - 1].double()
        theta, S = torch.linalg.eigh(torch.diag(a) + torch.diag(e, 1) + torch.diag(e, -1))
        nodes[i] = float(theta[-1])
        nodes[i, :s], weights[i, :s] = theta, S[0] ** 2
    return nodes, weights
