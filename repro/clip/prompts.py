"""The text prompts of paper Table 2 / supplement Table 3: 3,920 sentences, 3,724 of them distinct.

Grammar: "{head} {hand colour} {hand} with {colour} {background}", every combination of
7 heads x 7 hand colours x 2 hand words x 20 colour-slot words x 2 background words = 3,920.
The text of Table 3 is garbled: its "color" and "background" columns together are the 20 colour-slot
words, and the background words proper ("background", "room") appear only in Table 4's sentences.
This reading yields exactly the 3,920 the paper states and contains all 35 sentences of Table 4.
The table lists "yellow" twice, so 196 sentences occur twice and 3,724 are distinct; we keep the
duplicate because the paper draws t uniformly from its 3,920 sentences.

The words are the synthetic world's vocabulary (repro.data.world.vocabulary), re-exported here, so
the renders' captions and the prompts cannot drift apart.
"""

from itertools import product
from typing import NamedTuple

from repro.data.world import vocabulary
from repro.data.world.vocabulary import BACKDROPS, HAND_COLOURS, HANDS, HEADS, LIGHTING_WORDS, SCENES
from repro.data.world.vocabulary import SLOT_WORDS as COLOUR_SLOTS

__all__ = [
    "HEADS",
    "HAND_COLOURS",
    "HANDS",
    "COLOUR_SLOTS",
    "SCENES",
    "BACKDROPS",
    "LIGHTING_WORDS",
    "N_PROMPTS",
    "PromptParts",
    "caption",
    "all_parts",
    "all_prompts",
    "unique_prompts",
]

N_PROMPTS = len(HEADS) * len(HAND_COLOURS) * len(HANDS) * len(COLOUR_SLOTS) * len(SCENES)


class PromptParts(NamedTuple):
    head: str
    hand_colour: str
    hand: str
    slot: str
    scene: str


def caption(head: str, hand_colour: str, hand: str, slot: str, scene: str) -> str:
    """One sentence of the grammar; raises ValueError for a word outside its column."""
    for word, column, name in (
        (head, HEADS, "head"),
        (hand_colour, HAND_COLOURS, "hand colour"),
        (hand, HANDS, "hand"),
        (slot, COLOUR_SLOTS, "colour slot"),
        (scene, SCENES, "background"),
    ):
        if word not in column:
            raise ValueError(f"{word!r} is not a {name} word of the prompt grammar; expected one of {column}")
    return vocabulary.caption(head, hand_colour, hand, slot, scene)


def all_parts() -> list[PromptParts]:
    """The 3,920 word tuples in the fixed order of `all_prompts` (heads outermost, scene innermost)."""
    return [PromptParts(*words) for words in product(HEADS, HAND_COLOURS, HANDS, COLOUR_SLOTS, SCENES)]


def all_prompts() -> list[str]:
    """The 3,920 sentences, duplicates included, in a fixed order."""
    return [caption(*parts) for parts in all_parts()]


def unique_prompts() -> list[str]:
    """The 3,724 distinct sentences, in order of first occurrence in `all_prompts`."""
    return list(dict.fromkeys(all_prompts()))
