"""The prompt grammar of paper Table 2 / supplement Table 3 and the `repro clip prompts` command."""

from collections import Counter

import pytest

from repro.cli import main
from repro.clip import prompts

# Supplement Table 4, verbatim.
TABLE_4 = [
    "a picture of peach hand with sky blue background",
    "one white hand with orange room",
    "a photo of right black hand with dark room",
    "a photo of right white right hand with black background",
    "a photo of black hand with lake background",
    "a cropped photo of peach right hand with beige room",
    "a cropped photo of white right hand with yellow room",
    "a cropped image of light beige right hand with blue background",
    "a photo of pale yellow hand with bright background",
    "a cropped photo of pale yellow hand with brown room",
    "a cropped image of peach right hand with yellow background",
    "a cropped image of white right hand with white room",
    "one white hand with bright room",
    "one peach hand with green background",
    "a photo of peach hand with black room",
    "a photo of right white hand with green background",
    "a photo of right dark brown hand with brown background",
    "a photo of right dark brown hand with blue background",
    "a picture of light beige right hand with blue room",
    "a image of light beige right hand with red background",
    "a picture of brown right hand with green background",
    "a cropped photo of pale yellow hand with lake room",
    "a cropped photo of light beige right hand with blue room",
    "a cropped image of peach hand with green room",
    "one white hand with gray background",
    "a picture of white right hand with white background",
    "a image of black hand with beige background",
    "one peach hand with mountain room",
    "a photo of light beige right hand with white background",
    "a cropped photo of brown right hand with purple room",
    "a picture of black hand with yellow room",
    "a photo of light beige right hand with sky blue background",
    "a image of pale yellow right hand with orange background",
    "a image of brown hand with white room",
    "a photo of right pale yellow hand with yellow background",
]


def test_table_4_has_35_sentences():
    assert len(TABLE_4) == 35 and len(set(TABLE_4)) == 35


def test_grammar_yields_3920_prompts_3724_distinct():
    every = prompts.all_prompts()
    assert len(every) == prompts.N_PROMPTS == 3920
    assert len(set(every)) == len(prompts.unique_prompts()) == 3724
    # Exactly the sentences with the twice-listed "yellow" occur twice.
    twice = [p for p, c in Counter(every).items() if c == 2]
    assert len(twice) == 3920 - 3724 and all(" with yellow " in p for p in twice)
    assert max(Counter(every).values()) == 2


def test_every_table_4_sentence_is_a_prompt():
    every = set(prompts.all_prompts())
    assert [s for s in TABLE_4 if s not in every] == []


def test_fixed_order_and_parts_align():
    every, parts = prompts.all_prompts(), prompts.all_parts()
    assert every[0] == "a cropped image of white hand with mountain background"
    assert every[1] == "a cropped image of white hand with mountain room"
    assert every[-1] == "a photo of right black right hand with flower room"
    assert [prompts.caption(*p) for p in parts] == every
    assert prompts.unique_prompts()[:2] == every[:2]


def test_vocabulary_sizes():
    assert (len(prompts.HEADS), len(prompts.HAND_COLOURS), len(prompts.HANDS), len(prompts.COLOUR_SLOTS), len(prompts.SCENES)) == (
        7,
        7,
        2,
        20,
        2,
    )
    assert len(prompts.BACKDROPS) == 17 and not set(prompts.BACKDROPS) & set(prompts.LIGHTING_WORDS)
    assert set(prompts.BACKDROPS) | set(prompts.LIGHTING_WORDS) == set(prompts.COLOUR_SLOTS)


def test_caption_rejects_words_outside_the_grammar():
    assert prompts.caption("one", "white", "hand", "orange", "room") == "one white hand with orange room"
    with pytest.raises(ValueError, match="'green' is not a hand colour"):
        prompts.caption("one", "green", "hand", "orange", "room")


@pytest.mark.parametrize("flag, count", [([], 3920), (["--unique"], 3724)])
def test_cli_prints_one_prompt_per_line(capsys, flag, count):
    assert main(["clip", "prompts", *flag]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == count
    assert lines == (prompts.unique_prompts() if flag else prompts.all_prompts())
