"""The curves panel's hover read-out: the recorded values nearest the cursor's epoch, as HTML."""

from __future__ import annotations

from lvm_studio.ui.training.curve_buffers import CurveBuffers
from lvm_studio.ui.widgets import style


def hover_html(b: CurveBuffers, x: float, bounds: bool = True) -> str:
    """The values nearest epoch x, as the hover read-out shows them: bounds (upper plot) or terms (lower)."""
    c = style.COLORS
    rows = []
    i = b.train_raw.nearest(x)
    if i >= 0:
        rows.append(f"<b>epoch {b.train_raw.xs[i]:.2f}</b> &nbsp;step {int(b.steps.ys[i])}")
        if bounds:
            rows.append(
                f"<span style='color:{c['train_elbo_smooth']}'>train ELBO {b.train_raw.ys[i]:.2f}"
                f" (smoothed {b.train_smooth.ys[i]:.2f})</span>"
            )
        else:
            rows.append(
                f"<span style='color:{c['recon']}'>train recon {b.recon_smooth.ys[i]:.2f}</span>"
                f" &nbsp;<span style='color:{c['kl']}'>KL {b.kl_smooth.ys[i]:.2f}</span>"
            )
    j = b.log_px.nearest(x)
    if j >= 0:
        rows.append(f"<i>evaluation at epoch {b.log_px.xs[j]:.2f}</i>")
        if bounds:
            elbo, log_px = b.val_elbo.ys[j], b.log_px.ys[j]
            rows.append(f"<span style='color:{c['val_elbo']}'>val ELBO {elbo:.2f}</span>")
            rows.append(f"<span style='color:{c['log_px']}'>log p(x) ≈ {log_px:.2f} (IWAE-{b.eval_k})</span>")
            rows.append(f"gap ≈ KL(q‖p(z|x)) {log_px - elbo:.2f}")
            for k in sorted(b.iw):
                s = b.iw[k]
                jj = s.nearest(x)
                if jj >= 0:
                    rows.append(f"IW-{k} {s.ys[jj]:.2f}")
        else:
            rows.append(
                f"<span style='color:{c['recon']}'>val recon {b.val_recon.ys[j]:.2f}</span>"
                f" &nbsp;<span style='color:{c['kl']}'>val KL {b.val_kl.ys[j]:.2f}</span>"
            )
    return f"<div style='color:{style.FOREGROUND}; font-size:8pt'>" + "<br>".join(rows) + "</div>"
