# SPDX-License-Identifier: GPL-3.0-or-later
"""The token loop of one generation window on the host: sample a slot's token, feed it back, repeat.

ChoreoLLaMA interleaves the Q quantiser levels (slot i % Q), and each slot samples from its own range of the
vocabulary with the shared numpy sampler (:func:`core_models.sampling.sample_slot`), so the same logits and
seed give the same tokens on every backend. A backend supplies only its forward pass: the first slot's
logits after the prefill, and ``step(token, slot, i)`` giving the next slot's logits after token ``i``.
The ONNX runner drives this loop; torch's ``ChoreoLLaMA.generate_window`` keeps its own loop because it also
samples several rows at once and, on CUDA, on the device (the same rules, see ``device_sampling``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..progress import check_cancel
from ..sampling import make_rng, sample_slot

CANCEL_EVERY = 48          # tokens between cancel checks: a check is cheap, but not free at ~1 ms a token


def decode_window(first_logits: np.ndarray, step: Callable[[np.ndarray, int, int], np.ndarray], new_tokens: int,
                  num_quantizers: int, sampling, rng, cancel=None, on_token=None) -> np.ndarray:
    """``new_tokens`` slot-local ids (new_tokens,) of one window.

    first_logits: (1, slot range) logits of slot 0; step(ids (1, 1), slot of that id, index i) -> (1, range)
    logits of slot (i + 1) % Q. No forward pass runs after the last token."""
    q = int(num_quantizers)
    rng = make_rng(rng)
    out = np.zeros((1, new_tokens), np.int64)
    logits = first_logits
    for i in range(new_tokens):
        slot = i % q
        out[:, i] = sample_slot(logits, out[:, slot:i:q], slot, sampling, rng)
        if on_token is not None:
            on_token(i + 1, new_tokens)
        if i + 1 == new_tokens:
            break
        if cancel is not None and i % CANCEL_EVERY == CANCEL_EVERY - 1:
            check_cancel(cancel)
        logits = step(out[:, i:i + 1], slot, i)
    return out[0]
