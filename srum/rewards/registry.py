"""Training-reward scorers by the name a recipe gives them (`reward.source`, the keys of `reward.mix`).

Import paths, not imports, so reading a config loads no scorer. Each entry is a factory
`(cfg: RunConfig, model: UnifiedModel) -> Scorer` (`srum.rewards.sources.Scorer`). Adding a scorer (e.g. an
external preference model) is one new file with its factory plus one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

SCORERS: dict[str, str] = {
    "self": "srum.rewards.sources:self_judge",  # the model judges its own images: SRUM, the product
    "oracle": "srum.rewards.sources:world_oracle",  # the prompt world's exact judge: an upper bound, not SRUM
    "uniform": "srum.rewards.sources:uniform",  # weight 1 everywhere: plain SFT on own samples (self-distillation)
}
MIX = "mix"  # reward.source=mix: the weighted blend of the scorers named in reward.mix


def scorer_factory(name: str) -> Callable:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; expected one of {sorted(SCORERS)}")
    module, attr = SCORERS[name].split(":")
    return getattr(importlib.import_module(module), attr)
