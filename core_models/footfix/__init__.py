# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot-skating repair: contact detection, the analytic ``ik_lock`` fix and the foot restoration diffusion
model FRDM (InfiniteDance paper, Sec. 3.1 and App. B; our own implementation: no official code exists).

One concern per module, each importing only those above it:

    errors          FootFixError
    representation  the 259-d FRDM features, the merge step
    contacts        contacts, their intervals and overrides, the slides of planted feet
    ik_lock         the analytic fix and the two-bone leg solve both methods share
    model           the denoiser, FRDMWeights, saving and loading a weight set on torch
    sampler         Algorithm 2 on any backend (torch module or ``denoise`` callable)
    api             fix_feet, FootFixResult, clip metrics

Training losses are in :mod:`core_models.train.frdm`; putting a fix on a rig is :mod:`core_models.rig`.
"""
from .api import METHODS, MODES, FootFixResult, WeightLoader, clip_metrics, fix_feet, upper_body_change
from .contacts import (V_TH_REPAIR, ContactInfo, ContactOverride, SlideInfo, contact_intervals, detect_contacts,
                       measure_slides)
from .errors import FootFixError
from .ik_lock import ik_lock
from .model import FRDMConfig, FRDMDenoiser, FRDMWeights, load_frdm_weights, save_frdm_weights
from .representation import FRDM_DIM
from .sampler import DEFAULT_STEPS, SamplerConfig

__all__ = ["DEFAULT_STEPS", "FRDM_DIM", "METHODS", "MODES", "V_TH_REPAIR", "ContactInfo", "ContactOverride",
           "FRDMConfig", "FRDMDenoiser", "FRDMWeights", "FootFixError", "FootFixResult", "SamplerConfig",
           "SlideInfo", "WeightLoader", "clip_metrics", "contact_intervals", "detect_contacts", "fix_feet",
           "ik_lock", "load_frdm_weights", "measure_slides", "save_frdm_weights", "upper_body_change"]
