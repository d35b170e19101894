"""Colours mixed by responsibilities: one point, Σ_k γ_nk colour_k (no Qt).

    rgb_n = Σ_k γ_nk c_k,   γ_nk = p(component k | point n)   (Bishop, PRML 2006, eq. 9.23; Fig. 9.5
                                                                colours points this way)

Used by the EM playground's points (responsibilities of the fitted mixture) and by the latent map
(p(c|z) of the mixture published from the digit clusters panel).
"""

from __future__ import annotations

import numpy as np

ROUNDINGS = ("nearest", "truncate")


def mix_colours(resp, colours, rounding: str = "nearest") -> np.ndarray:
    """(N, K) responsibilities and (K, 3) colours -> (N, 3) uint8 Σ_k γ_nk colour_k.

    rounding 'nearest': rows renormalised first (so that rounding in γ never darkens a colour),
    float64, rounded to the nearest integer. 'truncate': the rows as given, float32, truncated
    toward zero (the latent map's colours). Either way a point with γ = e_k gets exactly colour k.
    """
    if rounding == "nearest":
        resp = np.asarray(resp, dtype=np.float64)
        total = resp.sum(1, keepdims=True)  # (N, 1)
        resp = resp / np.where(total > 0, total, 1.0)
        return np.clip(np.floor(resp @ np.asarray(colours, dtype=np.float64) + 0.5), 0, 255).astype(np.uint8)
    if rounding == "truncate":
        rgb = np.asarray(resp, dtype=np.float32) @ np.asarray(colours).astype(np.float32)  # (N, 3)
        return np.clip(rgb, 0, 255).astype(np.uint8)
    raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
