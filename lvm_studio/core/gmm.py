"""Gaussian mixture model fitted by EM, in torch, on any device, float32 or float64.

    p(x) = Σ_k π_k N(x; μ_k, Σ_k)                                  (Bishop, PRML 2006, eq. 9.7)

The API is stepwise so that a GUI can show every half-step:

    gmm = GaussianMixture(GMMConfig(n_components=3))
    gmm.initialize(x)                        # k-means++ seeds, uniform π, shared data covariance
    log_resp, ll = gmm.e_step(x)             # γ_nk in log space, mean log p(x) of the current parameters
    gmm.m_step(x, log_resp)                  # new π, μ, Σ
    ll = gmm.step(x)                         # both; returns the mean log-likelihood *before* the M-step
    trace = gmm.fit(x, max_iter=100)         # trace[t] = mean log p(x) after t M-steps

Every log-likelihood here is a mean over points, in nats per point (as scikit-learn's
``score``); ``log_prob`` gives the per-point log density.

The model is not thread-safe: a worker thread owns the model it fits; other threads use
``copy()`` or ``get_parameters()`` (detached CPU clones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch

from lvm_studio.core.em import MixtureModel, as_tensor, kmeans_plusplus_indices
from lvm_studio.core.gaussian import covariance_root, sample_gaussian

LOG_2PI = math.log(2 * math.pi)
COVARIANCE_TYPES = ("full", "diag")
INIT_METHODS = ("kmeans++", "random", "given")
# Elements of the (rows, K·D) work buffer per chunk of points. One CPU thread: ~2 MB (float64)
# stays in cache, fastest. Several threads: every op is a parallel region whose threads must all
# finish, and on a shared machine one of them is often descheduled, so fewer, larger chunks win
# (measured on 2 busy cores, N = 60000, D = 16, K = 10: 2^18 → 870 ms/iteration, 2^22 → 510 ms).
CPU_CHUNK_ELEMENTS_ONE_THREAD = 1 << 18
CPU_CHUNK_ELEMENTS_THREADS = 1 << 22
CUDA_CHUNK_ELEMENTS = 1 << 25


@dataclass
class GMMConfig:
    n_components: int = 3  # K
    covariance: str = "full"  # 'full' (K, D, D) or 'diag' (K, D)
    init: str = "kmeans++"  # 'kmeans++' (Arthur & Vassilvitskii 2007), 'random' data points, 'given' means
    ridge: float = 1e-6  # added to every covariance diagonal (scikit-learn's reg_covar); keeps Σ_k invertible
    seed: int = 0  # seeds the initialisation's torch.Generator
    chunk_elements: int | None = None  # work-buffer size per chunk of points; None: by device

    def __post_init__(self):
        if int(self.n_components) < 1:
            raise ValueError("n_components must be at least 1")
        if self.covariance not in COVARIANCE_TYPES:
            raise ValueError(f"covariance must be one of {COVARIANCE_TYPES}, not {self.covariance!r}")
        if self.init not in INIT_METHODS:
            raise ValueError(f"init must be one of {INIT_METHODS}, not {self.init!r}")
        if self.ridge < 0:
            raise ValueError("ridge must be non-negative")


@dataclass(frozen=True)
class GMMParameters:
    """A detached snapshot of the parameters (CPU tensors), safe to hand to another thread."""

    weights: torch.Tensor  # (K,)
    means: torch.Tensor  # (K, D)
    covariances: torch.Tensor  # (K, D, D) for 'full', (K, D) variances for 'diag'
    covariance: str  # 'full' | 'diag'

    def covariance_matrices(self) -> torch.Tensor:
        """(K, D, D) for either covariance type."""
        return self.covariances if self.covariance == "full" else torch.diag_embed(self.covariances)


class GaussianMixture(MixtureModel):
    """A K-component Gaussian mixture; EM in log space (Bishop, PRML 2006, §9.2.2).

    State after ``initialize`` / ``set_parameters``:
      weights (K,), means (K, D), covariances (K, D, D) for 'full' or variances (K, D) for 'diag',
      on ``device`` with ``dtype`` (taken from the first data unless given here).
    Cached for speed: the Cholesky factors L_k (Σ_k = L_k L_kᵀ), their inverses and ½ log|Σ_k|.
    """

    def __init__(self, config: GMMConfig | None = None, *, device=None, dtype: torch.dtype | None = None):
        super().__init__(config if config is not None else GMMConfig(), device=device, dtype=dtype)
        self.means: torch.Tensor | None = None
        self.covariances: torch.Tensor | None = None
        self._buffer = None  # scratch space of the chunked loops, see _work
        self._clear_cache()

    # --- bookkeeping -------------------------------------------------------------------

    @property
    def covariance_type(self) -> str:
        return self.config.covariance

    def _clear_cache(self):
        self._chol = None  # (K, D, D) L_k, 'full'
        self._chol_inv = None  # (K, D, D) L_k⁻¹ ('full'); (K, D) 1/σ_k ('diag')
        self._half_log_det = None  # (K,) ½ log|Σ_k|
        self._shift = None  # (D,) Σ_k π_k μ_k: points are centred on it before the quadratic forms

    def _work(self, numel: int) -> torch.Tensor:
        """A flat scratch buffer, kept between calls: allocating (and page-faulting) tens of
        megabytes afresh on every E- and M-step costs as much as the arithmetic."""
        buf = self._buffer
        if buf is None or buf.numel() < numel or buf.dtype != self.dtype or buf.device != self.device:
            self._buffer = buf = torch.empty(numel, device=self.device, dtype=self.dtype)
        return buf

    def _chunk_rows(self, n: int) -> int:
        elements = self.config.chunk_elements
        if elements is None:
            if self.device.type != "cpu":
                elements = CUDA_CHUNK_ELEMENTS
            elif torch.get_num_threads() == 1:
                elements = CPU_CHUNK_ELEMENTS_ONE_THREAD
            else:
                elements = CPU_CHUNK_ELEMENTS_THREADS
        per_row = max(1, self.n_components * (self.means.shape[1] if self.means is not None else 1))
        return max(1, min(n, elements // per_row))

    # --- parameters --------------------------------------------------------------------

    def set_parameters(self, weights, means, covariances) -> GaussianMixture:
        """Set π (K,), μ (K, D) and Σ ((K, D, D) full, or (K, D) variances for diag), as given.

        Weights are renormalised to sum to one. No ridge is added: a covariance that is
        not positive definite is an error.
        """
        means = self._as_data(means, check_dim=False)
        weights = as_tensor(weights).to(device=self.device, dtype=self.dtype).reshape(-1)
        covariances = as_tensor(covariances).to(device=self.device, dtype=self.dtype)
        k, d = means.shape
        if k != self.n_components:
            raise ValueError(f"got {k} means for {self.n_components} components")
        if weights.shape != (k,) or bool((weights < 0).any()) or float(weights.sum()) <= 0:
            raise ValueError("weights must be K non-negative numbers with a positive sum")
        expected = (k, d, d) if self.covariance_type == "full" else (k, d)
        if tuple(covariances.shape) != expected:
            raise ValueError(
                f"{self.covariance_type} covariances must have shape {expected}, got {tuple(covariances.shape)}"
            )
        self.weights = weights / weights.sum()
        self.means = means.clone()
        self.covariances = covariances.clone()
        self._update_cache(strict=True)
        return self

    def get_parameters(self) -> GMMParameters:
        """Detached CPU clones of π, μ, Σ (a snapshot for the GUI thread)."""
        self._require_init()
        return GMMParameters(
            self.weights.detach().cpu().clone(),
            self.means.detach().cpu().clone(),
            self.covariances.detach().cpu().clone(),
            self.covariance_type,
        )

    def covariance_matrices(self) -> torch.Tensor:
        """Σ_k as (K, D, D) for either covariance type."""
        self._require_init()
        return self.covariances if self.covariance_type == "full" else torch.diag_embed(self.covariances)

    def copy(self) -> GaussianMixture:
        """An independent mixture with the same configuration and parameters."""
        other = GaussianMixture(replace(self.config), device=self.device, dtype=self.dtype)
        if self.is_initialized:
            other.weights = self.weights.clone()
            other.means = self.means.clone()
            other.covariances = self.covariances.clone()
            other._update_cache(strict=True)
        return other

    def _update_cache(self, strict: bool = False):
        """Cholesky factors, their inverses and ½ log|Σ_k| for the current Σ.

        A full Σ_k that is not numerically positive definite (possible in float32 when a
        component collapses onto a point and the ridge is below rounding) gets the smallest
        extra diagonal jitter, growing ×10, that makes its Cholesky factorisation succeed.
        With ``strict`` it is an error instead.
        """
        self._shift = self.weights @ self.means  # (D,)
        if self.covariance_type == "diag":
            if bool((self.covariances <= 0).any()):
                raise ValueError("variances must be positive")
            self._chol = None
            self._chol_inv = self.covariances.rsqrt()  # (K, D)
            self._half_log_det = 0.5 * self.covariances.log().sum(-1)  # (K,)
            return
        cov = 0.5 * (self.covariances + self.covariances.transpose(-1, -2))  # (K, D, D)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info > 0).any()):
            if strict:
                raise ValueError(
                    f"covariances of components {torch.nonzero(info).flatten().tolist()} are not positive definite"
                )
            chol, cov = self._jittered_cholesky(cov, info)
        self.covariances = cov
        self._chol = chol  # (K, D, D)
        eye = torch.eye(cov.shape[-1], device=cov.device, dtype=cov.dtype).expand_as(cov)
        self._chol_inv = torch.linalg.solve_triangular(chol, eye, upper=False)  # (K, D, D) L_k⁻¹
        self._half_log_det = chol.diagonal(dim1=-2, dim2=-1).log().sum(-1)  # (K,) ½ log|Σ_k|

    def _jittered_cholesky(self, cov: torch.Tensor, info: torch.Tensor):
        d = cov.shape[-1]
        eye = torch.eye(d, device=cov.device, dtype=cov.dtype)
        cov = cov.clone()
        scale = cov.diagonal(dim1=-2, dim2=-1).abs().mean(-1)  # (K,)
        for k in torch.nonzero(info).flatten().tolist():
            jitter = max(float(self.config.ridge), float(torch.finfo(cov.dtype).eps) * float(scale[k]), 1e-30)
            for _ in range(40):
                trial = cov[k] + jitter * eye
                _, bad = torch.linalg.cholesky_ex(trial)
                if int(bad) == 0:
                    cov[k] = trial
                    break
                jitter *= 10.0
            else:
                raise FloatingPointError(f"covariance of component {k} cannot be made positive definite")
        return torch.linalg.cholesky(cov), cov

    # --- initialisation -----------------------------------------------------------------

    def initialize(self, x, means=None) -> GaussianMixture:
        """Seed the means, then set uniform weights and every Σ_k to the data covariance + ridge.

        init 'kmeans++' (or 'random') draws K distinct data points with a torch.Generator seeded
        by config.seed, so the result depends only on the data and the seed. 'given' (or any
        call with ``means``) takes the (K, D) means as they are.
        """
        x = self._as_data(x, check_dim=False)
        n, d = x.shape
        k = self.n_components
        if means is not None:
            means = as_tensor(means).to(device=self.device, dtype=self.dtype)
            if tuple(means.shape) != (k, d):
                raise ValueError(f"means must have shape {(k, d)}, got {tuple(means.shape)}")
            means = means.clone()
        elif self.config.init == "given":
            raise ValueError("init='given' needs the means: initialize(x, means=...)")
        else:
            if n < k:
                raise ValueError(f"cannot seed {k} components from {n} points")
            generator = torch.Generator().manual_seed(int(self.config.seed))
            if self.config.init == "kmeans++":
                index = kmeans_plusplus_indices(x, k, generator)
            else:
                index = torch.randperm(n, generator=generator)[:k]
            means = x[index.to(self.device)].clone()  # (K, D)
        centred = x - x.mean(0)  # (N, D)
        if self.covariance_type == "full":
            cov = centred.T @ centred / n  # (D, D)
            cov = cov + self.config.ridge * torch.eye(d, device=self.device, dtype=self.dtype)
            covariances = cov.expand(k, d, d).clone()  # (K, D, D)
        else:
            covariances = (centred.square().mean(0) + self.config.ridge).expand(k, d).clone()  # (K, D)
        weights = torch.full((k,), 1.0 / k, device=self.device, dtype=self.dtype)
        self.weights, self.means, self.covariances = weights, means, covariances
        self._update_cache()
        self.n_iter, self.converged = 0, False
        return self

    # --- densities ----------------------------------------------------------------------

    def _log_joint(self, x: torch.Tensor) -> torch.Tensor:
        """log π_k + log N(x_n; μ_k, Σ_k), (N, K).

        log N = −½ D log 2π − ½ log|Σ_k| − ½ ‖L_k⁻¹ (x − μ_k)‖²  (PRML eq. 2.43, Σ_k = L_k L_kᵀ).
        For all K at once: y = (x − c) A − b with A = [L_1⁻ᵀ … L_K⁻ᵀ] (D, K·D) and
        b_k = (μ_k − c) L_k⁻ᵀ, one matrix product per chunk of points; c = Σ π_k μ_k centres the
        data so that float32 keeps its digits.
        """
        n, d = x.shape
        k = self.n_components
        log_joint = torch.empty(n, k, device=x.device, dtype=x.dtype)  # (N, K)
        mu_c = self.means - self._shift  # (K, D)
        if self.covariance_type == "full":
            a = self._chol_inv.transpose(-1, -2).permute(1, 0, 2).reshape(d, k * d)  # (D, K·D)
            b = torch.einsum("kd,ked->ke", mu_c, self._chol_inv).reshape(k * d)  # (K·D,)
        else:
            inv_std = self._chol_inv  # (K, D)
            b = (mu_c * inv_std).reshape(k * d)  # (K·D,)
        rows = self._chunk_rows(n)
        neg_b = (-b).expand(rows, k * d)
        work = self._work(rows * (k * d + d))
        for start in range(0, n, rows):
            r = min(rows, n - start)
            xs = torch.sub(x[start : start + r], self._shift, out=work[: r * d].view(r, d))  # (r, D)
            y = work[rows * d : rows * d + r * k * d].view(r, k * d)  # (r, K·D)
            if self.covariance_type == "full":
                torch.addmm(neg_b[:r], xs, a, out=y)  # (r, K·D)
            else:
                torch.mul(xs.unsqueeze(1), inv_std, out=y.view(r, k, d)).sub_(b.view(k, d))  # (r, K, D)
            # ‖y‖ then squared below: one pass over y, no (r, K, D) temporary as in vecdot
            torch.linalg.vector_norm(y.view(r, k, d), dim=-1, out=log_joint[start : start + r])  # (r, K)
        const = torch.log(self.weights) - self._half_log_det - 0.5 * d * LOG_2PI  # (K,)
        return log_joint.square_().mul_(-0.5).add_(const)  # (N, K)

    def _e_step(self, x: torch.Tensor):
        log_joint = self._log_joint(x)  # (N, K)
        log_px = _logsumexp_rows(log_joint)  # (N,)
        log_resp = log_joint.sub_(log_px.unsqueeze(1))  # (N, K) log γ_nk, PRML eq. 9.23
        return log_resp, log_px

    @torch.no_grad()
    def e_step(self, x):
        """E-step: log γ_nk = log π_k N(x_n|μ_k,Σ_k) − log Σ_j π_j N(x_n|μ_j,Σ_j) (PRML eq. 9.23).

        Returns (log_resp (N, K), mean log-likelihood of the current parameters, nats/point).
        """
        self._require_init()
        x = self._as_data(x)
        log_resp, log_px = self._e_step(x)
        return log_resp, float(log_px.sum(dtype=torch.float64)) / x.shape[0]

    @torch.no_grad()
    def m_step(self, x, log_resp) -> GaussianMixture:
        """M-step (PRML eqs. 9.24–9.26): N_k = Σ_n γ_nk, μ_k = Σ γ_nk x_n / N_k,
        Σ_k = Σ γ_nk (x_n − μ_k)(x_n − μ_k)ᵀ / N_k + ridge·I, π_k = N_k / N.

        Two passes over the data: the means first, then the scatter around each component's own
        mean. The one-pass form Σ γ (x−c)(x−c)ᵀ / N_k − (μ_k−c)(μ_k−c)ᵀ cancels catastrophically
        for a component collapsed onto a point: in float32 it left ~1e-5 of noise against the 1e-6
        ridge and EM's log-likelihood fell by up to 1.5 nats per point (issue 13, item 8); around
        μ_k the duplicates contribute exact zeros. A component whose responsibility has vanished
        (N_k below the float resolution) keeps its μ_k and Σ_k and gets π_k = N_k / N, so nothing
        is divided by zero and the log-likelihood is unchanged by it.
        """
        self._require_init()
        x = self._as_data(x)
        n, d = x.shape
        k = self.n_components
        log_resp = as_tensor(log_resp).to(device=self.device, dtype=self.dtype)
        # exp of the clamped values then zeroed: exact, and no slow subnormal exp (see _logsumexp_rows)
        log_tiny = _log_tiny(self.dtype)
        resp = log_resp.clamp_min(log_tiny).exp_().masked_fill_(log_resp < log_tiny, 0.0)  # (N, K)
        if tuple(resp.shape) != (n, k):
            raise ValueError(f"log_resp must be {(n, k)}, got {tuple(resp.shape)}")
        centre = x.mean(0)  # (D,)
        nk = resp.sum(0)  # (K,)
        tiny = torch.finfo(self.dtype).tiny
        alive = nk > 1e3 * tiny * n  # (K,)
        safe_nk = torch.where(alive, nk, torch.ones_like(nk))  # (K,)
        full = self.covariance_type == "full"
        rows = self._chunk_rows(n)
        work = self._work(rows * (2 * k * d + d))
        # pass 1: Σ_n γ_nk (x_n − c), one (K, N)·(N, D) product per chunk
        first = torch.zeros(k, d, device=self.device, dtype=self.dtype)  # (K, D)
        for start in range(0, n, rows):
            r = min(rows, n - start)
            xs = torch.sub(x[start : start + r], centre, out=work[: r * d].view(r, d))  # (r, D)
            first.addmm_(resp[start : start + r].T, xs)  # (K, D)
        mu_c = first / safe_nk.unsqueeze(1)  # (K, D) μ_k − c
        # pass 2: Σ_n γ_nk (x_n − μ_k)(x_n − μ_k)ᵀ as K batched (D, r)·(r, D) products ('diag': its diagonal)
        second = torch.zeros((k, d, d) if full else (k, d), device=self.device, dtype=self.dtype)
        for start in range(0, n, rows):
            r = min(rows, n - start)
            xs = torch.sub(x[start : start + r], centre, out=work[: r * d].view(r, d))  # (r, D)
            g = resp[start : start + r]  # (r, K)
            diff = work[rows * d : rows * d + r * k * d].view(r, k, d)
            torch.sub(xs.unsqueeze(1), mu_c, out=diff)  # (r, K, D) x_n − μ_k
            w = work[rows * d + rows * k * d : rows * d + rows * k * d + r * k * d].view(r, k, d)
            torch.mul(g.unsqueeze(-1), diff, out=w)  # (r, K, D) γ_nk (x_n − μ_k)
            if full:
                second.baddbmm_(diff.permute(1, 2, 0), w.permute(1, 0, 2))  # (K, D, D)
            else:
                second.add_((w * diff).sum(0))  # (K, D)
        eye = torch.eye(d, device=self.device, dtype=self.dtype)
        if full:
            cov = second / safe_nk.view(k, 1, 1) + self.config.ridge * eye  # (K, D, D)
        else:
            cov = second / safe_nk.unsqueeze(1) + self.config.ridge  # (K, D)
        keep = ~alive
        means = torch.where(keep.unsqueeze(1), self.means, mu_c + centre)  # (K, D)
        if full:
            cov = torch.where(keep.view(k, 1, 1), self.covariances, cov)
        else:
            cov = torch.where(keep.unsqueeze(1), self.covariances, cov)
            cov = torch.where(cov > 0, cov, torch.full_like(cov, max(self.config.ridge, tiny)))
        self.weights = nk / nk.sum()  # (K,)
        self.means = means
        self.covariances = cov
        self._update_cache()
        return self

    @torch.no_grad()
    def log_prob(self, x) -> torch.Tensor:
        """log p(x_n) = logsumexp_k [log π_k + log N(x_n; μ_k, Σ_k)] per point, (N,)."""
        self._require_init()
        return _logsumexp_rows(self._log_joint(self._as_data(x)))

    @torch.no_grad()
    def responsibilities(self, x) -> torch.Tensor:
        """γ_nk = p(z = k | x_n), (N, K); each row sums to one."""
        self._require_init()
        return self._e_step(self._as_data(x))[0].exp_()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None):
        """Draw from the generative process: z ~ Cat(π), x | z ~ N(μ_z, Σ_z).

        Returns (x (n, D), z (n,) int64). The generator must live on the model's device.
        """
        self._require_init()
        z = torch.multinomial(self.weights, int(n), replacement=True, generator=generator)  # (n,)
        roots = covariance_root(self.covariances, diagonal=self.covariance_type == "diag")  # (K, D, D) or (K, D)
        return sample_gaussian(self.means, roots, z, generator), z

    def n_free_parameters(self) -> int:
        """Free parameters: (K − 1) weights, K·D means, K·D(D+1)/2 or K·D covariance entries."""
        k, d = self.n_components, self.dim
        cov = k * d * (d + 1) // 2 if self.covariance_type == "full" else k * d
        return (k - 1) + k * d + cov

    def bic(self, x) -> float:
        """Bayesian information criterion −2 log p(X) + P log N (Schwarz 1978); lower is better.
        For choosing K: it trades the likelihood against the P free parameters."""
        n = as_tensor(x).shape[0]
        return -2.0 * n * self.log_likelihood(x) + self.n_free_parameters() * math.log(n)


def _log_tiny(dtype: torch.dtype) -> float:
    return math.log(torch.finfo(dtype).tiny)


def _logsumexp_rows(a: torch.Tensor) -> torch.Tensor:
    """logsumexp over dim 1 of (N, K), as torch.logsumexp, but terms below the smallest normal
    float are raised to it before exp: exp with subnormal results is ~7× slower on a CPU, and
    each such term changes the sum by less than one part in 1e300 (float64) or 1e37 (float32)."""
    top = a.amax(1, keepdim=True)  # (N, 1)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    total = (a - top).clamp_min_(_log_tiny(a.dtype)).exp_().sum(1)  # (N,)
    return total.log_().add_(top.squeeze(1))
