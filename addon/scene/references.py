# SPDX-License-Identifier: GPL-3.0-or-later
"""Which references the core is handed, planned once for every operator that samples a dance.

Generate and the Takes section's Regenerate Range both sample the model, and both must see the same
libraries (the preferences' own and the starter library, as one stack) and the same pins; keeping the plan
here, under the operators, is what makes a regenerated range use the references its take was made with.
"""
from __future__ import annotations

from typing import NamedTuple

from .settings import library_folder, use_starter_library


class ReferencePlan(NamedTuple):
    """What Generate hands the core about references, and what it records of them."""
    library: object               # the core's LibraryStack, or None without any library
    references: object            # "auto" (retrieved) or the pinned clip names, best first
    mode: str                     # "auto", "pinned" or "none": recorded on the action and in the report
    note: str = ""                # the libraries' own notes when none could be used (e.g. no starter library)


def reference_plan(context) -> ReferencePlan:
    """What the core is handed about references.

    The libraries are the preferences' own (when set) and the starter library shipped with Choreo, seen as
    one. Pinned clips (the Library section's pins, best first) are passed by name; without pins the
    references are retrieved ("auto"); with no library at all, none. ValueError (LibraryError) with a
    user-facing message when the user's library cannot be opened or a pinned clip is in neither.
    """
    from ...core_models.starter_library import open_libraries

    pins = [p.name for p in context.scene.choreo.library_pins]
    folder = library_folder(context)
    library = open_libraries(folder or None, with_shipped=use_starter_library(context))
    if not library.libraries:
        if pins:
            raise ValueError(f"{len(pins)} pinned reference(s) but no reference library: choose the library "
                             "folder in Preferences > Add-ons > Choreo, or unpin them in the Library section")
        # the core itself notes that there was no library; say why (e.g. the starter library is missing)
        return ReferencePlan(None, "auto", "none", "; ".join(library.notes))
    if pins:
        missing = [p for p in pins if p not in library]
        if missing:
            raise ValueError(f"pinned clip(s) {', '.join(repr(m) for m in missing)} are not in "
                             f"{library.describe()}: unpin them in the Library section")
        return ReferencePlan(library, pins, "pinned")
    return ReferencePlan(library, "auto", "auto")    # a genre without clips: the core generates without, noted
