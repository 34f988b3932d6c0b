# SPDX-License-Identifier: GPL-3.0-or-later
"""The generation runtime: weight-set files (files), the torch-or-ONNX choice (backends), the token loop (decoding)."""
