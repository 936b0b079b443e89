"""Discrete flow matching: probability paths, the Euler CTMC sampler, the training loss.

Pure torch; knows nothing of models or modalities, so any discrete sequence model can use it.
Time t in [0, 1], t = 0 noise, t = 1 data. For a vocabulary with normalised embeddings e:

    d(x, x1)    = ||e_x - e_x1||^4                                   path.MetricPath.distance
    p_t(x | x1) = softmax_x(-beta_t d(x, x1)),  beta_t = c (t/(1-t))^a     .probs / .sample
    u_t(x, z)   = p_t(x | x1) dbeta_t max(0, d(z, x1) - d(x, x1))            .velocity
    Euler step: jump w.p. 1 - exp(-h sum_x u), to x ~ u; last step x_t = x1     sampler
    loss:  t ~ U[0, 1-eps], x_t ~ p_t(. | x1) on targets, CE(model(x_t), x1)   loss.dfm_loss

Each module's docstring carries its own equations next to the code.
"""

from nextomni.dfm.loss import dfm_loss, drop_condition, noise_targets, sample_time
from nextomni.dfm.path import MaskedPath, MetricPath
from nextomni.dfm.sampler import (
    SamplerStep, choose_x1, draw_source, euler_jump, euler_sample, euler_steps, guided,
    make_time_grid, space_masks,
)

__all__ = [
    "MetricPath", "MaskedPath", "euler_sample", "euler_steps", "euler_jump", "SamplerStep",
    "choose_x1", "guided", "draw_source", "make_time_grid", "space_masks", "dfm_loss",
    "noise_targets", "sample_time", "drop_condition",
]
