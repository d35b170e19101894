"""LVM Studio: see latent variable models work."""

__version__ = "0.1.0"
