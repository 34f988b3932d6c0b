# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error type of the foot fix (every stage raises it, so callers catch one thing)."""


class FootFixError(ValueError):
    """Input the foot fix cannot work on; the message says what to change."""
