"""retinal-reason-data: verified reasoning datasets for ophthalmic multimodal models."""

__version__ = "0.1.0"
