# SPDX-License-Identifier: GPL-3.0-or-later
"""Training: datasets built from the shared mocap (cached outside the repository) and the trainers.

``python -m core_models.train.frdm --out runs/frdm`` trains the FRDM foot-restoration denoiser.
"""
