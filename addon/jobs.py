# SPDX-License-Identifier: GPL-3.0-or-later
"""Long core work off Blender's main thread, with progress and Cancel; results applied on the main thread.

``work(progress, cancel)`` runs in a worker thread and must not touch bpy; ``apply(result)`` runs on the
main thread (from a ``bpy.app.timers`` poll) and is pushed as one undo step. In background mode timers
never fire, so everything runs synchronously in the caller (the path tests and batch scripts use).
The Cancel button next to every progress bar is this module's operator (``choreo.cancel_job``).
"""
from __future__ import annotations

import queue
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import bpy

from ..core_models.progress import Cancelled

POLL_INTERVAL = 0.1


@dataclass
class _Job:
    title: str
    apply: Callable[[Any], None]
    cancel: threading.Event = field(default_factory=threading.Event)
    messages: "queue.Queue" = field(default_factory=queue.Queue)
    thread: threading.Thread | None = None


_current: _Job | None = None


class JobError(RuntimeError):
    """A job failed; the message is shown to the user."""


def is_running() -> bool:
    return _current is not None


def poll_idle(operator_class) -> bool:
    """Operator poll: False (with the reason shown on the button) while a job runs."""
    if _current is not None:
        operator_class.poll_message_set("A Choreo job is running: wait for it or press Cancel")
        return False
    return True


def failure_message(exc: Exception, title: str) -> str:
    """What the user reads when a job fails: our own messages as they are, anything else with its type."""
    if isinstance(exc, (ValueError, OSError, JobError)):
        return str(exc)
    return f"{title} failed: {type(exc).__name__}: {exc}"


def _status():
    return bpy.context.window_manager.choreo_job


def _redraw() -> None:
    wm = bpy.context.window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _set_progress(stage: str, done: int, total: int) -> None:
    status = _status()
    status.stage = stage
    status.progress = (done / total) if total else 0.0


def run_job(title: str, work: Callable, apply: Callable[[Any], None], synchronous: bool | None = None) -> str:
    """Start a job; returns 'FINISHED' when it ran synchronously, 'RUNNING' when it runs in a thread.

    ``synchronous`` defaults to ``bpy.app.background``. Raises JobError when another job is running,
    and (when synchronous) whatever ``work``/``apply`` raise.
    """
    global _current
    if _current is not None:
        raise JobError(f"'{_current.title}' is still running; wait for it or press Cancel")
    status = _status()
    status.error = ""
    status.title = title
    if bpy.app.background if synchronous is None else synchronous:
        status.running = True
        try:
            result = work(_set_progress, threading.Event())
            apply(result)
        finally:
            status.running = False
            status.progress = 0.0
        return "FINISHED"

    job = _Job(title, apply)

    def progress(stage, done, total):
        job.messages.put(("progress", stage, done, total))

    def target():
        try:
            job.messages.put(("done", work(progress, job.cancel)))
        except Cancelled:
            job.messages.put(("cancelled",))
        except Exception as exc:  # surfaced in the panel, traceback in the console
            traceback.print_exc()
            job.messages.put(("error", f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)))

    _current = job
    status.running = True
    status.progress = 0.0
    status.stage = "starting"
    job.thread = threading.Thread(target=target, name=f"choreo: {title}", daemon=True)
    job.thread.start()
    if not bpy.app.timers.is_registered(_poll):
        bpy.app.timers.register(_poll, first_interval=POLL_INTERVAL)
    return "RUNNING"


def _finish(error: str = "") -> None:
    global _current
    _current = None
    status = _status()
    status.running = False
    status.progress = 0.0
    status.stage = ""
    status.error = error
    _redraw()


def _poll():
    job = _current
    if job is None:
        return None
    while True:
        try:
            msg = job.messages.get_nowait()
        except queue.Empty:
            _redraw()
            return POLL_INTERVAL
        kind = msg[0]
        if kind == "progress":
            _set_progress(*msg[1:])
        elif kind == "done":
            try:
                job.apply(msg[1])
                bpy.ops.ed.undo_push(message=f"Choreo: {job.title}")
                _finish()
            except Exception as exc:
                traceback.print_exc()
                _finish(f"{job.title} failed: {exc}")
            return None
        elif kind == "cancelled":
            _finish(f"{job.title} cancelled; nothing was changed")
            return None
        else:
            _finish(f"{job.title} failed: {msg[1]}")
            return None


def cancel_current() -> bool:
    if _current is None:
        return False
    _current.cancel.set()
    return True


def shutdown() -> None:
    """Called from unregister: stop polling and ask any worker to stop."""
    global _current
    if _current is not None:
        _current.cancel.set()
        _current = None
    while bpy.app.timers.is_registered(_poll):
        bpy.app.timers.unregister(_poll)


class CHOREO_OT_cancel_job(bpy.types.Operator):
    """Stop the running Choreo job; nothing it was computing is written"""
    bl_idname = "choreo.cancel_job"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return is_running()

    def execute(self, context):
        cancel_current()
        return {"FINISHED"}


classes = (CHOREO_OT_cancel_job,)

register, unregister = bpy.utils.register_classes_factory(classes)
