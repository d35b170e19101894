"""The screenshots under docs/, one module per area, each `python -m bench.screenshots.AREA [--out DIR]`;
`python -m bench.screenshots [--out DIR] [--only AREA ...]` regenerates them all.

Each area runs offscreen with the shipped models (pretrained/) unless told otherwise, and writes
its images under the names docs/ and the README use.
"""

# area -> the images it writes
AREAS = {
    "training": ("screenshot-training.png",),
    "latent": (
        "latent-sliders.png",
        "latent-traversal.png",
        "latent-map.png",
        "latent-map-mixture.png",
        "latent-map-pca.png",
        "latent-posterior.png",
        "latent-posterior-hand.png",
        "latent-estimator-lab.png",
        "latent-estimator-lab-2d.png",
    ),
    "mixtures": ("mixtures-playground.png", "mixtures-digits.png", "mixtures-density.png"),
    "inpainting": ("inpainting.png", "inpainting-test-digit.png", "inpainting-2d.png"),
    "pixel_latents": ("pixel-latents-painted.png", "pixel-latents-choices.png", "pixel-latents-sweep.png"),
    "lecture": (
        "lecture-factors.png",
        "lecture-em.png",
        "lecture-naive-mc.png",
        "lecture-tight.png",
        "lecture-pick-phi.png",
        "lecture-pick-phi-presenter.png",
        "lecture-missing-pixels.png",
    ),
    "vade": ("vade-latent-map.png", "vade-components.png", "vade-curves.png"),
}
