"""The synthetic domains, declared in one table: adding a domain is adding an entry.

Each domain is modelled on a real dataset (SPEC section 6), field by field; the comment on each field
names what it stands for and where that comes from ("from memory" marks a number not checked
against the dataset's paper or files here). The viewpoints of every target lie inside the source's,
so that the gap between them is mostly one of STYLE (hand colour, backdrop, scene, lighting), as
between FreiHAND and STB/RHD; what geometric gap remains (distance, how far off the optical axis the
hand sits) is measured by the diagnostics:

- `synth-frei`: the source, FreiHAND-like; its samples come in 4 versions per pose (one background
  each) like FreiHAND's training set.
- `synth-stb`, `synth-rhd`: the targets, STB-like and RHD-like.
- `synth-<target>-style` / `synth-<target>-view`: diagnostics (`diagnostics_of`): the target's style
  with the source's view fields, and the target's view fields with the source's style. Derived from
  the two specs with dataclasses.replace, so they cannot drift from them.
- `synth-frei-restyle`: the source's training split re-rendered, sample by sample, in another style
  (same hand, pose, camera and crop), for studies of positives that differ in style only.
- `synth-clip`: every style, no pose labels; it pre-trains the suite's own CLIP.
"""

import dataclasses
from dataclasses import dataclass, field

from repro.data.errors import DataError
from repro.data.world.vocabulary import BACKDROPS, HAND_COLOURS, PATTERNS, SCENERY, SCENES

GENERATOR_VERSION = 5  # bump whenever a change to the world alters any rendered sample

LIGHTINGS = ("normal", "bright", "dark")  # the world's lighting presets (repro.data.world.style.LIGHTING)


@dataclass(frozen=True)
class DomainSpec:
    name: str
    description: str
    seed_base: int  # each split draws from seed_base + its position in `splits`
    splits: dict[str, int] = field(hash=False)  # split -> default number of samples
    labelled: bool
    # Style: what the hand and its surroundings look like (STYLE_FIELDS).
    hand_colours: tuple[str, ...]
    backdrops: tuple[str, ...]  # version 0's backdrop words (every sample's, when versions == 1)
    lighting: tuple[str, ...]
    scenes: tuple[str, ...]  # "background" (a flat backdrop) and/or "room" (a wall and a floor)
    # View: where the hand is seen from and how far (VIEW_FIELDS).
    azimuth: tuple[float, float]  # degrees about the camera's vertical axis; 0 = palm towards the camera, 180 = back
    elevation: tuple[float, float]  # degrees, about the camera's horizontal axis
    roll: tuple[float, float]  # degrees, in the image plane; 0 = fingers up
    distance_mm: tuple[float, float]  # camera to palm centre
    # Focal length (px) of the original camera the crop is cut from. The crop is cut around the hand
    # and resized, so a crop (pixels, uv, its K) barely depends on it (a sub-pixel shift from the
    # pixel-centre convention): distance_mm and off_axis_deg shape the perspective. Kept so that a
    # spec reads like its dataset's camera.
    focal_px: tuple[float, float]
    off_axis_deg: float = 12.0  # how far from the optical axis the hand may sit (each of x and y)
    # The camera's image quality: per-pixel Gaussian noise (sigma, share of full scale) and a Gaussian
    # blur (sigma as a share of the crop's side, so that it looks alike at every render size).
    sensor_noise: tuple[float, float] = (0.005, 0.02)
    blur: tuple[float, float] = (0.0, 0.0)
    versions: int = 1  # renders per pose: sample i shows pose i // versions in version i % versions
    replaced_backdrops: tuple[str, ...] = ()  # versions 1.. draw their backdrop from these
    replaced_scenes: tuple[str, ...] = ()  # ... and their scene from these (empty: `scenes`)
    # How versions 1.. are composited (FreiHAND's post-processed versions); the defaults leave them as rendered.
    replaced_texture: str | None = None  # a texture (world.backdrops.TEXTURES) in the backdrop word's colour, or its own
    replaced_exposure: tuple[float, float] = (1.0, 1.0)  # whole-image gain
    replaced_white_balance: float = 0.0  # whole-image per-channel gain in 1 +- this
    replaced_tint: tuple[float, float] = (0.0, 0.0)  # share of the hand's colour pulled towards the backdrop's
    diagnoses: str | None = None  # a diagnostic: the target it diagnoses ...
    keeps: str | None = None  # ... and what it keeps of it: "style" or "view" (the rest is the source's)
    restyles: "DomainSpec | None" = None  # a twin: sample i is this spec's sample i in another style

    def __post_init__(self):
        if self.versions < 1 or (self.versions > 1 and not self.replaced_backdrops and self.restyles is None):
            raise DataError(f"domain {self.name!r}: {self.versions} versions need replaced_backdrops")
        if (self.diagnoses is None) != (self.keeps is None) or self.keeps not in (None, "style", "view"):
            raise DataError(f"domain {self.name!r}: a diagnostic names both `diagnoses` and `keeps` ('style' or 'view')")
        if self.restyles is not None and not set(self.splits) <= set(self.restyles.splits):
            raise DataError(f"domain {self.name!r}: restyles {self.restyles.name!r}, which lacks its splits {tuple(self.splits)}")


STYLE_FIELDS = (
    "hand_colours",
    "backdrops",
    "replaced_backdrops",
    "replaced_scenes",
    "replaced_texture",
    "replaced_exposure",
    "replaced_white_balance",
    "replaced_tint",
    "versions",
    "lighting",
    "scenes",
    "sensor_noise",
    "blur",
)
VIEW_FIELDS = ("azimuth", "elevation", "roll", "distance_mm", "focal_px", "off_axis_deg")


def _fields(spec: DomainSpec, names: tuple[str, ...]) -> dict:
    return {name: getattr(spec, name) for name in names}


# Sources: FreiHAND = Zimmermann et al., ICCV 2019; STB = Zhang et al., ICIP 2017 (and its readme);
# RHD = Zimmermann & Brox, ICCV 2017. Colour words are the paper's prompt vocabulary (vocabulary.py).
FREI = DomainSpec(
    name="synth-frei",
    description="source, FreiHAND-like: views from all sides; each pose on a green screen and on 3 cluttered backgrounds, recoloured; light skin tones, bright",
    seed_base=1000,
    splits={"train": 16384, "val": 1024, "test": 2048},  # val and test: the same distribution as train, 4 versions too
    labelled=True,
    # FreiHAND's 32 subjects are mostly light-skinned (from its images); three light tones of the vocabulary.
    hand_colours=("peach", "light beige", "white"),
    # FreiHAND: captured in front of a green screen; its version 0 (the original) shows it.
    backdrops=("green",),
    # FreiHAND: versions 1-3 (hom, sample, auto) paste the hand onto photographs (landscapes, city
    # scenes, indoor shots) and recolour the composite: Zhang et al.'s colorization, automatic and
    # sampled, and Tsai et al.'s deep harmonisation (seed paper 002, HanCo, its "Dataset" paragraph).
    # Ours: cluttered "photographs" (random-coloured patches over a base colour that no target uses as a plain wall: the targets use STB's 8 wall colours and RHD's
    # patterns and scenery), flat or as a room's walls, and the composite's exposure, white balance
    # and hand colour varied as a harmonisation does. So the source has seen varied surroundings and
    # hand colours, as FreiHAND's has, but never a target's style (its hand colours, wall colours,
    # patterns, scenery or lighting presets).
    replaced_backdrops=("red", "blue", "purple", "black"),
    replaced_scenes=("background", "room"),
    replaced_texture="clutter",
    replaced_exposure=(0.3, 1.3),
    replaced_white_balance=0.3,
    replaced_tint=(0.0, 0.7),
    # FreiHAND: every training pose in 4 versions (index + 32,560 v there, version-major). Here
    # interleaved, sample i = pose i // 4 in version i % 4, so that the first n samples (a run's
    # n_train keeps a prefix) are n / 4 poses in all four versions rather than n green-screen images.
    versions=4,
    lighting=("bright",),  # FreiHAND: a lit capture studio (from its images): bright, even light
    scenes=("background",),  # version 0: the green screen, flat
    # FreiHAND: 8 calibrated cameras around the hand, which subjects turn freely: palm, back and side
    # views at any in-plane rotation. All sides, so that both targets' views lie inside this range.
    azimuth=(-180.0, 180.0),
    elevation=(-80.0, 80.0),
    roll=(-180.0, 180.0),
    # FreiHAND: root depths in training_xyz.json of roughly 0.5-0.8 m (from memory, not checked here).
    distance_mm=(500.0, 800.0),
    # FreiHAND's K (training_K.json) is given per 224x224 crop; the capture cameras' own focal is not
    # something we know: ~600 px of a 640x480 frame (next to no effect on a crop, see DomainSpec.focal_px).
    focal_px=(560.0, 640.0),
    off_axis_deg=12.0,  # FreiHAND: the cameras are aimed at the rig's centre, where the hand is held
)

STB = DomainSpec(
    name="synth-stb",
    description="target, STB-like: a RealSense-like camera in front of a hand raised palm-first, office rooms, a light skin tone the source lacks, office light",
    seed_base=2000,
    splits={"test": 3000},  # STB: its test split is B1's counting and random sequences, 1,500 frames each
    labelled=True,
    # STB is one person's light-skinned hand (from its images); the world gives it a light tone the
    # source never shows, so hand colour is part of the style gap without a change of skin type.
    hand_colours=("pale yellow",),
    # STB: 6 backgrounds (B1-B6), office rooms; here rooms whose back wall has one of 6 plain colours
    # (white and beige left out: on them the pale-yellow hand all but vanishes, RESULTS.md).
    backdrops=("gray", "brown", "orange", "sky blue", "pink", "yellow"),
    # STB: a dim indoor office (from memory of its frames), which the source's bright studio never shows.
    lighting=("dark",),
    scenes=("room",),  # STB: a real room behind the hand (wall and floor here)
    # STB: the RealSense F200's colour stream, noisier and softer than FreiHAND's studio cameras (from
    # memory of its frames): noise of 4-8% and a blur of about one pixel at 128 px (0.6-1.0% of the side).
    sensor_noise=(0.04, 0.08),
    blur=(0.006, 0.010),
    # STB (from memory of its frames, not checked against the paper): the subject raises the left hand
    # (mirrored here to a right hand) in front of the camera, fingers roughly up, mostly the palm
    # towards the camera while counting, turned further in the random sequence.
    azimuth=(-90.0, 90.0),
    elevation=(-40.0, 40.0),
    roll=(-60.0, 60.0),
    # STB: the hand at arm's length, spanning roughly a third to a half of the 480-px frame height at
    # fx 608, i.e. about 0.45-0.75 m (our estimate from its images; STB's paper gives no range we recall).
    distance_mm=(450.0, 750.0),
    # STB: the SK colour camera (Intel RealSense F200, 640x480): fx 607.92, fy 607.88, principal point
    # (314.78, 236.42), from STB's readme and the published STB loaders.
    focal_px=(607.92, 607.92),
    off_axis_deg=15.0,  # STB: the hand anywhere in the middle of a 640x480 frame (half-FOV 28 x 21 deg)
)

RHD = DomainSpec(
    name="synth-rhd",
    description="target, RHD-like: views from all sides, a 320x320 camera, patterned and scenic backdrops, all skin tones, any light",
    seed_base=3000,
    splits={"test": 2728},  # RHD: 2,728 evaluation images
    labelled=True,
    hand_colours=HAND_COLOURS,  # RHD: 20 characters (Mixamo) with their own skin textures: every tone
    backdrops=PATTERNS + SCENERY,  # RHD: random photographs (cities, landscapes) as backgrounds
    lighting=LIGHTINGS,  # RHD: rendered with random lighting (from memory of its paper)
    scenes=("background",),  # RHD: the photograph is a flat backdrop behind the rendered character
    # RHD: random viewpoints around the character's hand: every side and in-plane rotation.
    azimuth=(-180.0, 180.0),
    elevation=(-80.0, 80.0),
    roll=(-180.0, 180.0),
    # RHD: camera placed randomly around the hand, about 0.4-0.65 m from it (from memory of its paper, unverified).
    distance_mm=(400.0, 650.0),
    focal_px=(280.0, 300.0),  # RHD: per-image K of its 320x320 frames, fx about 280-300 px
    off_axis_deg=25.0,  # RHD: the hand anywhere in the frame (half-FOV about 29 deg at fx 290)
)


def _diagnostic(target: DomainSpec, keeps: str, seed_base: int) -> DomainSpec:
    """The target's style with the source's view fields (keeps="style"), or its view fields with the
    source's style (keeps="view"); a test split of its own seeds."""
    other = "view" if keeps == "style" else "style"
    taken = _fields(FREI, VIEW_FIELDS if keeps == "style" else STYLE_FIELDS)
    return dataclasses.replace(
        target,
        name=f"{target.name}-{keeps}",
        description=f"diagnostic of {target.name}: its {keeps}, the source's {other}",
        seed_base=seed_base,
        splits={"test": 3000},
        diagnoses=target.name,
        keeps=keeps,
        **taken,
    )


FREI_RESTYLE = dataclasses.replace(
    FREI,
    name="synth-frei-restyle",
    description="twin of synth-frei/train: sample i is its sample i (same hand, pose, camera, crop) in a style other than its own",
    seed_base=1500,
    splits={"train": FREI.splits["train"]},
    # The pool of styles a sample is re-rendered in: every style of the vocabulary, rooms included,
    # less the original sample's own (hand colour, backdrop, lighting, scene).
    hand_colours=HAND_COLOURS,
    backdrops=BACKDROPS,
    replaced_backdrops=(),
    replaced_texture=None,
    replaced_exposure=(1.0, 1.0),
    replaced_white_balance=0.0,
    replaced_tint=(0.0, 0.0),
    lighting=LIGHTINGS,
    scenes=SCENES,
    restyles=FREI,  # also puts the source's spec into this one's cache key
)

CLIP = DomainSpec(
    name="synth-clip",
    description="CLIP pre-training: every style with its caption, no pose labels, seeds of its own",
    seed_base=9000,
    splits={"train": 24000, "val": 1000},
    labelled=False,
    hand_colours=HAND_COLOURS,
    backdrops=BACKDROPS,
    lighting=LIGHTINGS,
    scenes=SCENES,
    azimuth=(-180.0, 180.0),
    elevation=(-80.0, 80.0),
    roll=(-180.0, 180.0),
    distance_mm=(350.0, 900.0),
    focal_px=(280.0, 840.0),
)

DOMAINS: dict[str, DomainSpec] = {
    d.name: d
    for d in (
        FREI,
        STB,
        RHD,
        CLIP,
        _diagnostic(STB, "style", 2100),
        _diagnostic(STB, "view", 2200),
        _diagnostic(RHD, "style", 3100),
        _diagnostic(RHD, "view", 3200),
        FREI_RESTYLE,
    )
}


def get_domain(name: str) -> DomainSpec:
    if name not in DOMAINS:
        raise DataError(f"unknown synthetic domain {name!r}; known: {', '.join(DOMAINS)}")
    return DOMAINS[name]


def restyled_twin_of(source: str) -> str | None:
    """The domain whose sample i is `source`'s sample i re-rendered in another style, if there is one."""
    return next((d.name for d in DOMAINS.values() if d.restyles is not None and d.restyles.name == source), None)


def diagnostics_of(target: str) -> tuple[str, ...]:
    """The diagnostic domains of a target, style before view, e.g. ("synth-stb-style", "synth-stb-view")."""
    found = [d for d in DOMAINS.values() if d.diagnoses == target]
    return tuple(d.name for d in sorted(found, key=lambda d: ("style", "view").index(d.keeps)))


def split_seed(domain: DomainSpec, split: str) -> int:
    if split not in domain.splits:
        raise DataError(f"domain {domain.name!r} has no split {split!r}; expected one of {tuple(domain.splits)}")
    return domain.seed_base + list(domain.splits).index(split)
