"""The synthetic domains, declared in one table: adding a domain is adding an entry.

The source (`synth-frei`) shows a few skin tones on a bright green screen with palm-side views; the
targets show styles and viewpoints the source never does (SPEC section 6). `synth-clip` shows every
style and carries no pose labels; it pre-trains the suite's own CLIP.
"""

from dataclasses import dataclass, field

from repro.data.errors import DataError
from repro.data.world.vocabulary import BACKDROPS, HAND_COLOURS, PATTERNS, SCENERY

GENERATOR_VERSION = 2  # bump whenever a change to the world alters any rendered sample


@dataclass(frozen=True)
class DomainSpec:
    name: str
    description: str
    seed_base: int  # each split draws from seed_base + its position in `splits`
    splits: dict[str, int] = field(hash=False)  # split -> default number of samples
    labelled: bool
    hand_colours: tuple[str, ...]
    backdrops: tuple[str, ...]
    lighting: tuple[str, ...]
    scenes: tuple[str, ...]
    azimuth: tuple[float, float]  # degrees about the camera's vertical axis; 0 = palm towards the camera
    elevation: tuple[float, float]
    roll: tuple[float, float]
    distance_mm: tuple[float, float]  # camera to palm centre
    focal_px: tuple[float, float]  # of the original 640x480 camera the crop is cut from
    off_axis_deg: float = 12.0  # how far from the optical axis the hand may sit


_SOURCE_VIEW = dict(azimuth=(-70.0, 70.0), elevation=(-35.0, 35.0), roll=(-50.0, 50.0))

DOMAINS: dict[str, DomainSpec] = {
    d.name: d
    for d in (
        DomainSpec(
            name="synth-frei",
            description="source, FreiHAND-like: green screen, three light skin tones, bright light, palm-side views",
            seed_base=1000,
            splits={"train": 16384, "val": 1024, "test": 2048},
            labelled=True,
            hand_colours=("peach", "light beige", "white"),
            backdrops=("green",),
            lighting=("bright",),
            scenes=("background",),
            distance_mm=(350.0, 550.0),
            focal_px=(560.0, 640.0),
            **_SOURCE_VIEW,
        ),
        DomainSpec(
            name="synth-stb",
            description="target, STB-like: rooms, darker skin tones, another camera further away, back-of-hand views",
            seed_base=2000,
            splits={"test": 3000},
            labelled=True,
            hand_colours=("brown", "dark brown", "pale yellow"),
            backdrops=("white", "beige", "gray", "brown", "orange", "sky blue", "pink", "yellow"),
            lighting=("normal", "dark"),
            scenes=("room",),
            azimuth=(110.0, 250.0),
            elevation=(-30.0, 30.0),
            roll=(-40.0, 40.0),
            distance_mm=(600.0, 900.0),
            focal_px=(800.0, 840.0),
        ),
        DomainSpec(
            name="synth-rhd",
            description="target, RHD-like: scenic and patterned backdrops, all skin tones, views from all sides",
            seed_base=3000,
            splits={"test": 2728},
            labelled=True,
            hand_colours=HAND_COLOURS,
            backdrops=PATTERNS + SCENERY,
            lighting=("normal", "bright", "dark"),
            scenes=("background",),
            azimuth=(-180.0, 180.0),
            elevation=(-80.0, 80.0),
            roll=(-180.0, 180.0),
            distance_mm=(400.0, 800.0),
            focal_px=(280.0, 320.0),
        ),
        DomainSpec(
            name="synth-clip",
            description="CLIP pre-training: every style with its caption, no pose labels, seeds of its own",
            seed_base=9000,
            splits={"train": 24000, "val": 1000},
            labelled=False,
            hand_colours=HAND_COLOURS,
            backdrops=BACKDROPS,
            lighting=("normal", "bright", "dark"),
            scenes=("background", "room"),
            azimuth=(-180.0, 180.0),
            elevation=(-80.0, 80.0),
            roll=(-180.0, 180.0),
            distance_mm=(350.0, 900.0),
            focal_px=(280.0, 840.0),
        ),
    )
}


def get_domain(name: str) -> DomainSpec:
    if name not in DOMAINS:
        raise DataError(f"unknown synthetic domain {name!r}; known: {', '.join(DOMAINS)}")
    return DOMAINS[name]


def split_seed(domain: DomainSpec, split: str) -> int:
    if split not in domain.splits:
        raise DataError(f"domain {domain.name!r} has no split {split!r}; expected one of {tuple(domain.splits)}")
    return domain.seed_base + list(domain.splits).index(split)
