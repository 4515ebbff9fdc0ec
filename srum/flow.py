"""Rectified-flow conventions shared by sampling and training.

t ∈ [0, 1] with t = 0 clean data and t = 1 pure noise: x_t = (1 − t)·x0 + t·ε, and the network
predicts the velocity v = ε − x0 (= dx_t/dt), so an Euler step towards data is x ← x − v·dt.
"""

from __future__ import annotations

import torch


def shift_timesteps(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3-style shift s·t / (1 + (s − 1)·t): s > 1 spends more steps near noise."""
    return shift * t / (1 + (shift - 1) * t)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 − t)·x0 + t·ε; t broadcasts from the left over x0's trailing dims."""
    t = t.reshape(*t.shape, *([1] * (x0.dim() - t.dim())))
    return (1 - t) * x0 + t * noise


def velocity_target(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return noise - x0


def sample_training_timesteps(n: int, shift: float = 1.0, generator: torch.Generator | None = None,
                              device: torch.device | str = "cpu") -> torch.Tensor:
    """Logit-normal t = sigmoid(N(0, 1)), then shifted, as BAGEL trains its generator."""
    return shift_timesteps(torch.randn(n, generator=generator, device=device).sigmoid(), shift)


def euler_schedule(num_timesteps: int, shift: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Times the model is evaluated at and the step sizes: `num_timesteps − 1` Euler steps from 1 to 0."""
    ts = shift_timesteps(torch.linspace(1, 0, num_timesteps), shift)
    return ts[:-1], ts[:-1] - ts[1:]


def sde_step(x: torch.Tensor, v: torch.Tensor, t: torch.Tensor, dt: torch.Tensor, noise_level: float,
             floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of one step from t to t − dt of the SDE with the flow's marginals (Flow-GRPO, Liu et al. 2025,
    arXiv 2505.05470): the score is −(x + (1 − t)·v)/t for this interpolation, so

        x_{t−dt} = x − [v + σ²/(2t)·(x + (1 − t)·v)]·dt + σ·√dt·z,   σ = a·√(t / max(1 − t, floor)).

    A stochastic step is what makes a trajectory a policy with a likelihood to raise or lower; a = 0 is the Euler
    (ODE) step. `floor` (the schedule's first step size) keeps σ finite at t = 1. t, dt: tensors broadcasting over x
    from the left (e.g. (B,) for x (B, N, C)), or floats."""
    t, dt = (torch.as_tensor(u, dtype=x.dtype, device=x.device) for u in (t, dt))
    t, dt = (u.reshape(*u.shape, *([1] * (x.dim() - u.dim()))) for u in (t, dt))
    sigma = noise_level * (t / (1 - t).clamp(min=floor)).sqrt()
    mean = x - (v + sigma.pow(2) / (2 * t) * (x + (1 - t) * v)) * dt
    return mean, sigma * dt.sqrt()
