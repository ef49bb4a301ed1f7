"""The paper's prompt vocabulary (paper Table 2, supplement Table 3), shared by the world's captions
and the CLIP layer's prompt grammar: "{head} {hand colour} {hand} with {slot word} {scene}".

The slot column lists "yellow" twice, as the paper's table does, so the grammar yields
7 * 7 * 2 * 20 * 2 = 3,920 prompts of which 3,724 are distinct.
"""

HEADS = ("a cropped image of", "a image of", "a cropped photo of", "a picture of", "one", "a photo of", "a photo of right")
HAND_COLOURS = ("white", "dark brown", "peach", "brown", "pale yellow", "light beige", "black")
HANDS = ("hand", "right hand")
SLOT_WORDS = (
    "mountain",
    "lake",
    "bright",
    "dark",
    "green",
    "purple",
    "white",
    "yellow",
    "sky blue",
    "orange",
    "black",
    "red",
    "blue",
    "yellow",
    "gray",
    "beige",
    "pink",
    "brown",
    "dotted",
    "flower",
)
SCENES = ("background", "room")

PLAIN_COLOURS = tuple(dict.fromkeys(w for w in SLOT_WORDS if w not in ("mountain", "lake", "bright", "dark", "dotted", "flower")))
PATTERNS = ("dotted", "flower")
SCENERY = ("mountain", "lake")
BACKDROPS = PLAIN_COLOURS + PATTERNS + SCENERY  # what a backdrop can look like: 17 words
LIGHTING_WORDS = ("bright", "dark")  # slot words that name the lighting rather than the backdrop


def caption(head: str, hand_colour: str, hand: str, slot: str, scene: str) -> str:
    return f"{head} {hand_colour} {hand} with {slot} {scene}"
