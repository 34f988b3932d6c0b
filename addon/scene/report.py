# SPDX-License-Identifier: GPL-3.0-or-later
"""How an operator ends: a failure reported in the UI and kept for the panel, or its work started as a job."""
from __future__ import annotations

from .. import jobs

# Job titles the panels recognise: these jobs show their progress bar in place of their own button.
GENERATE_JOB = "Generate"
FIX_FEET_JOB = "Fix Feet"


def fail(op, context, message: str):
    """Report an error in the UI and remember it for the panel; nothing was written."""
    op.report({"ERROR"}, message)
    context.scene.choreo.last_report = message
    return {"CANCELLED"}


def start_job(op, context, title: str, work, apply):
    """Run ``work`` as a job (see :mod:`..jobs`) and end the operator: it either finished at once (background
    mode) or runs with a progress bar; a job that cannot start or fails at once is reported as a failure."""
    try:
        jobs.run_job(title, work, apply)
    except Exception as exc:
        return fail(op, context, str(exc))
    return {"FINISHED"}
