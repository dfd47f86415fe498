"""
Diagnostics of an actor's gradient: a probe that measures each action-gradient signal of a trained SB3 model against
the smoothed ``grad_a Q`` of its policy, by rewinding the simulator (:mod:`.gradient_truth`), and a callback that runs
it during training (:mod:`.callback`).
"""

from sb3_denoise_pg.diagnostics.callback import GradientTruthCallback
from sb3_denoise_pg.diagnostics.gradient_truth import GradientTruthProbe, NonFiniteError, ProbeConfig, ProbeResult
from sb3_denoise_pg.diagnostics.rewind import RewindError, reseed_noise, restore, rollout_env, snapshot

__all__ = [
    "GradientTruthCallback",
    "GradientTruthProbe",
    "NonFiniteError",
    "ProbeConfig",
    "ProbeResult",
    "RewindError",
    "reseed_noise",
    "restore",
    "rollout_env",
    "snapshot",
]
