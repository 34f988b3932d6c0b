# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings: per scene (music, generation, start frame, the Library section's state), per armature object
(mapping, source), job state (window manager)."""
import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .scene.library import refresh_quietly
from .scene.settings import trained_genres, weight_set_folder

# The genres the weight sets are trained on (core_models.choreollama.GENRES); identifiers are passed as is.
GENRES = ("Ballet", "Popular", "Latin", "Modern", "Folk", "Classic")


_GENRE_ITEMS: dict = {}          # Blender needs the menu's strings kept alive while the menu shows them


def genre_items(self, context):
    """Genres of the weight set in use: trained ones first (with their minutes), the others marked."""
    try:
        trained = trained_genres(weight_set_folder(context)[0]) if context is not None else {}
    except ValueError:
        trained = {}
    key = tuple(sorted(trained.items()))
    if key not in _GENRE_ITEMS:
        order = sorted(range(len(GENRES)), key=lambda i: (bool(trained) and GENRES[i] not in trained, i))
        items = []
        for i in order:
            g = GENRES[i]
            if not trained or g in trained:
                label = f"{g} ({trained[g]:.0f} min)" if g in trained else g
                items.append((g, label, f"Dance in the {g.lower()} style", "", i))
            else:
                items.append((g, f"{g} (not trained)", f"The weight set was not trained on {g}: Generate refuses it "
                              "unless 'Allow untrained genres' is on", "ERROR", i))
        _GENRE_ITEMS[key] = items
    return _GENRE_ITEMS[key]


class ChoreoBoneMapItem(bpy.types.PropertyGroup):
    canonical: StringProperty(name="Canonical joint", description="SMPL-X body joint")
    bone: StringProperty(name="Bone", description="Bone of this rig that drives the canonical joint; "
                                                  "empty when it is synthesised from its neighbours")
    note: StringProperty(name="Note")
    confidence: FloatProperty(name="Confidence", min=0.0, max=1.0, subtype="FACTOR",
                              description="How sure the automatic mapping is of this bone (1 when chosen by hand)")
    candidates: StringProperty(name="Candidates", description="The best-scoring bones for this joint, best first")


class ChoreoContactOverride(bpy.types.PropertyGroup):
    """Force or forbid foot contact on a frame range for Fix Feet (``name`` labels it in the list)."""
    foot: EnumProperty(name="Foot", default="LEFT", items=(("LEFT", "Left", "The left foot"),
                                                           ("RIGHT", "Right", "The right foot"),
                                                           ("BOTH", "Both", "Both feet")))
    contact: EnumProperty(name="Contact", default="FORCE", items=(
        ("FORCE", "Force contact", "Plant the foot on these frames even if it seems to move"),
        ("NEVER", "Never contact", "Never plant the foot on these frames (a slide, a spin, a lift)")))
    frame_start: IntProperty(name="Start", description="First scene frame of the override")
    frame_end: IntProperty(name="End", description="Last scene frame of the override (included)")


class ChoreoLibraryClip(bpy.types.PropertyGroup):
    """One clip of the reference library as listed in the Library section (``name`` is the clip's name)."""
    genre: StringProperty(name="Genre")
    subgenre: StringProperty(name="Sub-genre")
    frames: IntProperty(name="Frames", description="Length at 30 fps")
    duration: FloatProperty(name="Duration", unit="TIME_ABSOLUTE", description="Length in seconds")
    licence: StringProperty(name="Licence")
    source: StringProperty(name="Source")
    shipped: BoolProperty(name="Starter library", description="Part of the starter library that ships with Choreo "
                                                            "(read-only)")


class ChoreoPinnedClip(bpy.types.PropertyGroup):
    """A library clip pinned as a reference for Generate (``name`` is the clip's name; best first)."""


class ChoreoRetrievalResult(bpy.types.PropertyGroup):
    """One reference retrieved for one window of the music (``name`` is the clip's name)."""
    window: IntProperty(name="Window", description="Music window (12.8 s, one every 6.4 s)")
    music_s: FloatProperty(name="Music", unit="TIME_ABSOLUTE", description="Where the window starts in the music")
    start_s: FloatProperty(name="Clip start", unit="TIME_ABSOLUTE",
                           description="Where the retrieved 12.8 s segment starts in the clip")
    score: FloatProperty(name="Score", description="Cosine similarity of music and dance embeddings")


_SUBGENRE_ITEMS: dict[str, list] = {}          # Blender needs the enum item strings kept alive


def _subgenre_items(self, context):
    genre = self.library_new_genre
    if genre not in _SUBGENRE_ITEMS:
        try:
            from ..core_models.library import TAXONOMY

            subs = TAXONOMY.get(genre, ())
        except ImportError:                        # dependencies missing: the panel says so
            subs = ()
        _SUBGENRE_ITEMS[genre] = [("NONE", "(none)", "No sub-genre")] + [(s, s, f"{genre}: {s}") for s in subs]
    return _SUBGENRE_ITEMS[genre]


def _new_genre_changed(self, context):
    self.library_new_subgenre = "NONE"           # the old choice belongs to another genre


def _library_filter_changed(self, context):
    refresh_quietly(context.scene)


class ChoreoObjectSettings(bpy.types.PropertyGroup):
    """Stored on each armature object, so several characters keep their own settings."""
    is_dancer: BoolProperty(name="SMPL-X dancer", default=False,
                            description="This armature was built by Choreo with SMPL-X bone names")
    skeleton_source: StringProperty(name="Skeleton", description="Where the rest skeleton came from")
    source_file: StringProperty(name="Source file", subtype="FILE_PATH")
    rig_profile: StringProperty(name="Rig profile", description="Naming scheme recognised for this rig")
    bone_map: CollectionProperty(type=ChoreoBoneMapItem)
    unmapped_bones: StringProperty(name="Unused bones")
    mapping_error: StringProperty(name="Mapping problem")
    # Foot Fix
    foot_method: EnumProperty(name="Method", default="FRDM", items=(
        ("FRDM", "FRDM", "Foot restoration diffusion model: repairs root, knees and feet as learned from clean "
                         "mocap (the analytic IK lock when no FRDM weights are installed)"),
        ("IK_LOCK", "IK Lock", "Analytic: lock planted feet in place and solve the legs with two-bone IK")))
    foot_mode: EnumProperty(name="Mode", default="AUTO", items=(
        ("AUTO", "Auto", "Plant the feet where they touch the floor"),
        ("GROUNDING", "Grounding", "Keep the feet on the floor (no float, no penetration) but allow the "
                                   "spins and slides dance needs")))
    foot_strength: FloatProperty(name="Strength", default=1.0, min=0.0, max=1.0, subtype="FACTOR",
                                 description="0 leaves the motion as it is, 1 applies the full repair")
    foot_steps: IntProperty(name="Steps", default=30, min=1, max=100,
                            description="FRDM sampling steps: more is slower and can be smoother")
    contact_overrides: CollectionProperty(type=ChoreoContactOverride)
    contact_override_index: IntProperty(name="Override", default=0, min=0)


class ChoreoSceneSettings(bpy.types.PropertyGroup):
    start_frame: IntProperty(name="Start frame", default=1, min=-100000, max=1000000,
                             description="Frame where loaded and generated motion starts")
    last_report: StringProperty(name="Last result")

    # Generate
    music_source: EnumProperty(name="Music", default="STRIP", items=(
        ("STRIP", "Timeline", "The scene's first sound strip; the dance starts where the strip plays"),
        ("FILE", "File", "A music file; it is added to the timeline at the start frame with the dance")))
    music_file: StringProperty(name="Music file", subtype="FILE_PATH",
                               description="Audio file to dance to (WAV, FLAC, OGG, MP3)")
    # Items from the weight set (trained genres first); numbers are fixed so reordering keeps the choice.
    genre: EnumProperty(name="Genre", default=GENRES.index("Popular"), items=genre_items)
    allow_untrained_genre: BoolProperty(
        name="Allow untrained genres", default=False,
        description="Generate even a genre the weight set was not trained on (the report says so; the dance may "
                    "not be in that style)")
    length_mode: EnumProperty(name="Length", default="WHOLE", items=(
        ("WHOLE", "Whole song", "Dance to the whole music (the strip as trimmed on the timeline)"),
        ("RANGE", "Range", "Dance to part of the music only")))
    range_start: FloatProperty(name="Start (s)", default=0.0, min=0.0, soft_max=600.0, precision=2,
                               description="Where the dance starts, in seconds from the start of the music "
                                           "(rounded to a whole frame)")
    range_length: FloatProperty(name="Length (s)", default=10.0, min=2.0, soft_max=600.0, precision=2,
                                description="How many seconds of music to dance to (at least 2)")
    dancer_target: EnumProperty(name="Dancer", default="NEW", items=(
        ("NEW", "New SMPL-X dancer", "Generate onto a new SMPL-X dancer (with the mannequin body)"),
        ("SELECTED_RIG", "Selected rig", "Generate and apply the dance to the selected armature (your character) "
                                         "as a new action; its own actions are kept")))
    seed: IntProperty(name="Seed", default=42, min=0,
                      description="Random seed: the same seed and settings give the same dance")
    temperature: FloatProperty(name="Temperature", default=0.8, min=0.05, soft_max=2.0, precision=2,
                               description="Higher gives more varied, riskier movement; lower, safer and "
                                           "more repetitive")
    top_k: IntProperty(name="Top-k", default=15, min=1, soft_max=100,
                       description="Sample each step among this many most likely motion tokens")
    top_p: FloatProperty(name="Top-p", default=0.95, min=0.01, max=1.0, precision=2,
                         description="Sample among the most likely tokens that together hold this probability")
    window_mode: EnumProperty(name="Windows", default="full", items=(
        ("full", "Full song", "Cover the music to its last frame"),
        ("official", "Official", "The original release's windows (25 Hz weight sets only; the song's tail "
                                 "is left out)")))
    weights_override: StringProperty(name="Weight set", subtype="DIR_PATH",
                                     description="This scene's own weight-set folder; empty uses the one in "
                                                 "the add-on preferences")

    # Library (the folder is in the preferences; the clip list mirrors it for the panel's list)
    library_genre: EnumProperty(name="Genre", default="ALL", update=_library_filter_changed,
                                items=[("ALL", "All genres", "Every clip of the library")]
                                + [(g, g, f"Only {g} clips") for g in GENRES])
    library_text: StringProperty(name="Filter", update=_library_filter_changed,
                                 description="Only clips whose name contains this text")
    library_clips: CollectionProperty(type=ChoreoLibraryClip)
    library_index: IntProperty(name="Clip", default=0, min=0)
    library_shown: StringProperty(name="Listed library", description="The library folder the list shows")
    library_status: StringProperty(name="Library problem", description="Why the library could not be listed")
    library_pins: CollectionProperty(type=ChoreoPinnedClip)
    library_results: CollectionProperty(type=ChoreoRetrievalResult)
    library_results_index: IntProperty(name="Reference", default=0, min=0)
    library_results_info: StringProperty(name="Retrieved for")
    library_new_name: StringProperty(name="Name", description="Name of the new clip (empty: the action's name)")
    library_new_genre: EnumProperty(name="Genre", default="Popular", update=_new_genre_changed,
                                    items=[(g, g, f"A {g.lower()} dance") for g in GENRES])
    library_new_subgenre: EnumProperty(name="Sub-genre", items=_subgenre_items)
    library_new_licence: StringProperty(name="Licence",
                                        description="Licence of the motion (who may use it and how); kept with "
                                                    "the clip. Empty: unknown")


class ChoreoJobStatus(bpy.types.PropertyGroup):
    """Transient state of the running job (window manager: not saved with the file)."""
    running: BoolProperty(default=False)
    title: StringProperty()
    stage: StringProperty()
    progress: FloatProperty(default=0.0, min=0.0, max=1.0, subtype="FACTOR")
    error: StringProperty()


classes = (ChoreoBoneMapItem, ChoreoContactOverride, ChoreoLibraryClip, ChoreoPinnedClip, ChoreoRetrievalResult,
           ChoreoObjectSettings, ChoreoSceneSettings, ChoreoJobStatus)


def register():
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Object.choreo = PointerProperty(type=ChoreoObjectSettings)
    bpy.types.Scene.choreo = PointerProperty(type=ChoreoSceneSettings)
    bpy.types.WindowManager.choreo_job = PointerProperty(type=ChoreoJobStatus)


def unregister():
    del bpy.types.WindowManager.choreo_job
    del bpy.types.Scene.choreo
    del bpy.types.Object.choreo
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
