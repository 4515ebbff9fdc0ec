"""srum: an open implementation of SRUM, fine-grained self-rewarding post-training for unified multimodal models."""

__version__ = "0.1.0"
