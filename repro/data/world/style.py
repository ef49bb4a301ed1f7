"""RGB values for the vocabulary's colour words, and the lighting presets."""

from repro.data.world.vocabulary import BACKDROPS, HAND_COLOURS, PLAIN_COLOURS

# Skin albedos, far enough apart in hue and value to be named under any lighting.
HAND_RGB = {
    "white": (0.97, 0.92, 0.90),
    "peach": (1.00, 0.72, 0.55),
    "light beige": (0.86, 0.76, 0.62),
    "pale yellow": (0.97, 0.90, 0.52),
    "brown": (0.62, 0.40, 0.24),
    "dark brown": (0.36, 0.21, 0.12),
    "black": (0.14, 0.11, 0.10),
}
COLOUR_RGB = {
    "green": (0.12, 0.68, 0.20),
    "purple": (0.48, 0.18, 0.62),
    "white": (0.95, 0.95, 0.95),
    "yellow": (0.96, 0.84, 0.10),
    "sky blue": (0.53, 0.80, 0.95),
    "orange": (0.98, 0.52, 0.08),
    "black": (0.04, 0.04, 0.04),
    "red": (0.84, 0.08, 0.10),
    "blue": (0.10, 0.20, 0.80),
    "gray": (0.50, 0.50, 0.50),
    "beige": (0.90, 0.84, 0.68),
    "pink": (0.98, 0.60, 0.76),
    "brown": (0.45, 0.29, 0.14),
}
# (ambient, diffuse, overall gain): "bright" washes out, "dark" is dim.
LIGHTING = {"normal": (0.40, 0.60, 1.0), "bright": (0.60, 0.55, 1.25), "dark": (0.30, 0.55, 0.55)}

assert set(HAND_RGB) == set(HAND_COLOURS) and set(COLOUR_RGB) == set(PLAIN_COLOURS)
assert set(BACKDROPS) - set(COLOUR_RGB) == {"dotted", "flower", "mountain", "lake"}
