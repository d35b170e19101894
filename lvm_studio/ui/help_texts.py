"""The "What am I looking at?" texts, one per dock (keyed by the dock's key in ui/panels.py), and About.

Plain data (rich text, Qt's HTML subset) so the texts can be read, reviewed and corrected without
reading widget code; ui/help.py shows them. Each text says what is drawn, the formula behind it
(with its source) and how to read it.
"""

from __future__ import annotations

APP_NAME = "LVM Studio"
LICENCE = "MIT licence (see the LICENSE file)"
DATA_CREDIT = (
    "MNIST handwritten digits: Yann LeCun, Corinna Cortes and Christopher J. C. Burges, "
    "<i>The MNIST database of handwritten digits</i> (1998)."
)

PANEL_HELP: dict[str, dict[str, str]] = {
    "training": {
        "title": "Training",
        "body": (
            "<p>Trains the current model with Adam on the MNIST training digits.</p>"
            "<p><b>Train a new model</b> starts from fresh weights of the default architecture and a new "
            "model's settings, so the curves and the latent views show learning from the start. "
            "<b>Continue</b> trains the current model further, with its optimizer state when the checkpoint "
            "has one.</p>"
            "<p>Objectives: the <b>ELBO</b> E<sub>q</sub>[log p(x|z)] − β·KL(q(z|x) ‖ p(z)) "
            "(Kingma &amp; Welling 2014, eq. 3), or <b>IWAE-k</b> E[log (1/k) Σ<sub>j</sub> p(x, z<sub>j</sub>) / "
            "q(z<sub>j</sub>|x)] (Burda et al. 2016, eq. 8), a tighter bound on log p(x) as k grows.</p>"
            "<p>Every evaluation estimates the validation ELBO and log p(x) with k importance samples. "
            "Only the learning rate can change while a run is going.</p>"
        ),
    },
    "curves": {
        "title": "Live curves",
        "body": (
            "<p>Top: the training ELBO per logged step (grey, with a smoothed line) and, at each evaluation, "
            "the validation ELBO and the importance-sampled log p̂(x) (IWAE-k). Higher is better: both are "
            "log-probabilities in nats per digit.</p>"
            "<p>The shaded band between them is the gap log p(x) − ELBO = KL(q(z|x) ‖ p(z|x)) averaged over the "
            "digits (Kingma &amp; Welling 2014, eq. 1): how far the encoder's guess is from the true posterior, "
            "up to the estimator's own gap at finite k (Burda et al. 2016, Thm 1).</p>"
            "<p>Bottom: the two terms of the ELBO, the reconstruction E<sub>q</sub>[log p(x|z)] and the "
            "KL(q(z|x) ‖ p(z)) the code pays for its information. The x axis is epochs (passes over the "
            "training set).</p>"
        ),
    },
    "latent_sliders": {
        "title": "Latent sliders",
        "body": (
            "<p>One slider per latent dimension z<sub>d</sub>, in prior standard deviations (p(z) = N(0, I)); "
            "the image is the decoder's mean E[x | z] for the z the sliders set.</p>"
            "<p>Dimensions are sorted by their average KL(q(z<sub>d</sub>|x) ‖ p(z<sub>d</sub>)) over validation "
            "digits, largest first; the bar shows it. A dimension with almost no KL (≤ 0.01 nats, greyed) is "
            "inactive: the decoder ignores it, so its slider changes nothing (posterior collapse of that unit).</p>"
        ),
    },
    "traversals": {
        "title": "Traversals",
        "body": (
            "<p>A grid of decoded digits E[x | z] where one or two latent dimensions vary over a range of "
            "prior standard deviations while the others stay at the current z (the sliders' z). Smooth "
            "changes along a row mean that dimension encodes one factor (slant, thickness, class).</p>"
            "<p>Below: an interpolation between the codes of two test digits, linear or spherical "
            "(slerp, White 2016), decoded at each step: a good latent space gives plausible digits all the way.</p>"
        ),
    },
    "latent_map": {
        "title": "Latent map",
        "body": (
            "<p>Each dot is a test digit placed at its code μ<sub>φ</sub>(x), the mean of q(z|x), coloured by its "
            "label (or by a fitted mixture's p(c|z) from Digit clusters). Behind it, the decoded manifold: "
            "E[x | z] drawn at grid points of the plane.</p>"
            "<p>For more than two latent dimensions the plane is two chosen dimensions or the first two "
            "principal components of the codes. Clusters that separate without labels show what the "
            "unsupervised model has found; click or drag to decode a point.</p>"
        ),
    },
    "posterior": {
        "title": "Posterior",
        "body": (
            "<p>For a 2-D latent and one digit x: the exact posterior p(z|x) = p(x|z) p(z) / p(x) as a heat map "
            "(p(x) by integrating over the grid), with the encoder's guess q(z|x) = N(μ, diag σ²) drawn as its "
            "1σ and 2σ ellipses and importance samples z<sub>j</sub> ~ q sized by their normalised weight.</p>"
            "<p>The numbers: ELBO(q), the exact log p(x), and their difference KL(q ‖ p(z|x)) ≥ 0. Move q by hand "
            "to watch the ELBO change; “Optimise φ” fits q to this digit alone, and the improvement over the "
            "encoder is the amortization gap (Cremer, Li &amp; Duvenaud 2018).</p>"
        ),
    },
    "estimator_lab": {
        "title": "Estimator lab",
        "body": (
            "<p>Why log p(x) = log ∫ p(x|z) p(z) dz is not estimated with samples from the prior. For one digit, "
            "as k grows, over several runs:</p>"
            "<ul><li>naive Monte Carlo: log (1/k Σ p(x|z<sub>j</sub>)), z<sub>j</sub> ~ p(z);</li>"
            "<li>importance sampling: log (1/k Σ p(x, z<sub>j</sub>) / q(z<sub>j</sub>|x)), z<sub>j</sub> ~ q(z|x) "
            "(the IW-k bound, Burda et al. 2016).</li></ul>"
            "<p>The importance-sampled estimate settles within a few samples; the naive one stays far below "
            "for any k you can afford. The histograms show the log weights and the effective sample size "
            "(Σw)² / Σw² (Kong 1992): the prior's weight sits on one or two samples.</p>"
        ),
    },
    "em_playground": {
        "title": "EM playground",
        "body": (
            "<p>A Gaussian mixture z ~ Cat(π), x | z ~ N(μ<sub>z</sub>, Σ<sub>z</sub>) fitted to 2-D points by "
            "expectation–maximisation. The E-step sets the responsibilities γ<sub>nk</sub> = p(z = k | x<sub>n</sub>); "
            "the M-step refits π, μ and Σ to them. Each point's colour mixes the component colours by γ, so "
            "uncertain points look mixed; ellipses are 1σ and 2σ.</p>"
            "<p>Below: the free energy F(q, θ) = E<sub>q</sub>[log p(x, z | θ)] + H(q) after each half-step "
            "(Neal &amp; Hinton 1998). It never decreases: the E-step lifts it to the log-likelihood, the M-step "
            "lifts it with q fixed.</p>"
        ),
    },
    "digit_clusters": {
        "title": "Digit clusters",
        "body": (
            "<p><b>Clusters</b>: a Gaussian mixture fitted by EM, without labels, to the VAE's codes μ<sub>φ</sub>(x) "
            "or to a PCA projection of the pixels, then scored against the true labels (the best matching of "
            "clusters to digits, Hungarian accuracy, and normalised mutual information). The fitted p(c|z) can "
            "colour the latent map.</p>"
            "<p><b>Density</b>: a mixture of Bernoullis on binarized pixels as a density model, its exact test "
            "log p(x) beside the VAE's IWAE-k estimate: how much a continuous latent code gains over K prototypes.</p>"
        ),
    },
    "inpainting": {
        "title": "Inpainting",
        "body": (
            "<p>Draw or load a digit and hide part of it. A Gaussian q(z) = N(φ<sub>μ</sub>, diag φ<sub>σ</sub>²) "
            "is fitted to the seen pixels only, maximising E<sub>q</sub>[log p(x<sub>o</sub>|z)] − KL(q ‖ p(z)) "
            "(Kingma &amp; Welling 2014, eq. 3 with x → x<sub>o</sub>), starting from the encoder's guess.</p>"
            "<p>The completion keeps the seen pixels and fills the hidden ones with E<sub>q</sub>[E[x<sub>i</sub>|z]]; "
            "the grid shows completions for several z ~ q and the spread map where the model is unsure. "
            "Different plausible digits in the grid mean the seen pixels do not decide the digit.</p>"
        ),
    },
    "pixel_latents": {
        "title": "Missing pixels as latents",
        "body": (
            "<p>The lecture's own example: the hidden pixels x<sub>m</sub> of a binarized digit are the latent "
            "variable. q(x<sub>m</sub>; φ) = Π<sub>i</sub> φ<sub>i</sub><sup>x<sub>i</sub></sup>"
            "(1 − φ<sub>i</sub>)<sup>1 − x<sub>i</sub></sup>, and ELBO(φ) = E<sub>q</sub>[log p(x<sub>o</sub>, "
            "x<sub>m</sub>)] + H(q) ≤ log p(x<sub>o</sub>); the gap is KL(q ‖ p(x<sub>m</sub> | x<sub>o</sub>)) "
            "(Kingma &amp; Welling 2014, eq. 2).</p>"
            "<p>Paint φ on the hatched pixels (the heat map: black φ = 0, yellow φ = 1) or press the lecture's "
            "choices: φ = 0.5, φ = 1, φ = 0, the exact posterior marginals (Bernoulli mixture) or an optimised φ. "
            "With the Bernoulli mixture log p(x<sub>o</sub>) is exact; with the MADE (an autoregressive model, "
            "exact log p(x)) it is estimated by importance sampling with an optimised q.</p>"
            "<p><b>Naive vs importance</b>: p(x<sub>o</sub>) = 2<sup>M</sup> E<sub>uniform</sub>[p(x<sub>o</sub>, "
            "x<sub>m</sub>)] — uniform completions almost never look like a digit, so the naive estimate "
            "stays hundreds of nats low even at k = 10⁵, while k samples of a good q are enough.</p>"
        ),
    },
}


def panel_help(key: str) -> tuple[str, str] | None:
    """(title, rich text) for a dock key, or None when there is no text for it."""
    entry = PANEL_HELP.get(key)
    if entry is None:
        return None
    return entry["title"], entry["body"]
