"""sdm: a command-line manager and downloader for Stable Diffusion models."""

__version__ = "0.1.0"
