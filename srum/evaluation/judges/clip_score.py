"""CLIPScore (torchmetrics) over a local CLIP model."""

from __future__ import annotations


def _features(out):
    """transformers 5 returns output objects from get_*_features; CLIPScore expects the projected tensor."""
    import torch

    if isinstance(out, torch.Tensor):
        return out
    return out.pooler_output if getattr(out, "pooler_output", None) is not None else out[0]


def local_clip_score(model, processor):
    """A torchmetrics `CLIPScore` over a local `CLIPModel`/`CLIPProcessor` (no hub name needed).

    Wraps the model so `get_image_features`/`get_text_features` return tensors, as torchmetrics expects, where
    transformers 5 returns output objects.
    """
    import torch
    from torchmetrics.multimodal.clip_score import CLIPScore

    class _TensorFeatures(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner, self.config = inner, inner.config

        def get_image_features(self, *args, **kwargs):
            return _features(self.inner.get_image_features(*args, **kwargs))

        def get_text_features(self, *args, **kwargs):
            return _features(self.inner.get_text_features(*args, **kwargs))

    wrapped = _TensorFeatures(model)
    return CLIPScore(model_name_or_path=lambda: (wrapped, processor))
