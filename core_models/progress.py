# SPDX-License-Identifier: GPL-3.0-or-later
"""Progress reporting and cooperative cancellation for long core work."""
from __future__ import annotations

import threading
from typing import Callable, Optional

ProgressFn = Callable[[str, int, int], None]   # (stage, done, total)


class Cancelled(Exception):
    """Raised by long work when its cancel event is set; nothing half-written is left behind."""


def no_progress(stage: str, done: int, total: int) -> None:
    pass


def check_cancel(cancel: Optional[threading.Event]) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled by the user")
