"""A fake captioned dataset and a fake CLIP encoder whose answers are known, for the CLIP layer's tests.

Images are flat: the whole frame carries the backdrop's code in the red channel, a centre square the
hand colour's code, the green channel the lighting's code. The fake encoder decodes those codes, so
its zero-shot answers are exactly right (or wrong by design) and the tests can assert exact values.
"""

import hashlib

import torch

from repro.clip.prompts import BACKDROPS, COLOUR_SLOTS, HAND_COLOURS, HANDS, HEADS, SCENES, all_parts, all_prompts, caption
from repro.data.sample import HandSample

LIGHTINGS = ("normal", "bright", "dark")
SLOT_WORDS = tuple(dict.fromkeys(COLOUR_SLOTS))  # the 19 distinct slot words
SIZE = 32


def _code(index: int, step: int, offset: int) -> int:
    return offset + step * index


class FakeCaptionedDataset:
    """n renders; sample i has hand colour i mod 7, backdrop 3i mod 17 (all (hand, backdrop) pairs
    distinct for n < 119), lighting i mod 3, scene (i // 3) mod 2; one fixed head, so captions are distinct."""

    def __init__(self, n: int, digest: str | None = None):
        self.n = n
        self.digest = digest or hashlib.sha256(f"fake-{n}".encode()).hexdigest()

    def __len__(self) -> int:
        return self.n

    def style(self, i: int) -> dict:
        return {
            "hand_colour": HAND_COLOURS[i % 7],
            "backdrop": BACKDROPS[(3 * i) % len(BACKDROPS)],
            "lighting": LIGHTINGS[i % 3],
            "scene": SCENES[(i // 3) % 2],
        }

    def __getitem__(self, i: int) -> HandSample:
        if not 0 <= i < self.n:
            raise IndexError(i)
        style = self.style(i)
        image = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
        image[0] = _code(BACKDROPS.index(style["backdrop"]), 14, 10)
        image[0, 8:24, 8:24] = _code(HAND_COLOURS.index(style["hand_colour"]), 30, 20)
        image[1] = _code(LIGHTINGS.index(style["lighting"]), 100, 20)
        text = caption(HEADS[0], style["hand_colour"], HANDS[0], style["backdrop"], style["scene"])
        zeros = torch.zeros(21, 3)
        return HandSample(image, zeros, zeros[:, :2], torch.zeros(21, dtype=torch.bool), torch.eye(3), text, {"style": style})


class FakeEncoder:
    """Features: one-hot hand colour (7) + one-hot slot word (19), unit length; counts its calls.

    An image's slot word is its backdrop, or its lighting word when `say_lighting` and the render is
    bright or dark. `colour_shift` names the wrong hand colour on purpose (shifted by that many)."""

    dim = len(HAND_COLOURS) + len(SLOT_WORDS)
    image_size = SIZE
    preprocessing = "fake"

    def __init__(self, weights_digest: str = "0" * 64, say_lighting: bool = False, colour_shift: int = 0):
        self.identity = "fake"
        self.weights_digest = weights_digest
        self.say_lighting = say_lighting
        self.colour_shift = colour_shift
        self.image_calls = 0
        self.text_calls = 0
        self._parts = dict(zip(all_prompts(), all_parts()))

    def _feature(self, colour: int, slot: int) -> torch.Tensor:
        feature = torch.zeros(self.dim)
        feature[colour] = feature[len(HAND_COLOURS) + slot] = 2**-0.5
        return feature

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        self.image_calls += 1
        rows = []
        for image in images:
            colour = (int(image[0, 16, 16]) - 20) // 30
            backdrop = BACKDROPS[(int(image[0, 0, 0]) - 10) // 14]
            lighting = LIGHTINGS[(int(image[1, 0, 0]) - 20) // 100]
            word = lighting if self.say_lighting and lighting != "normal" else backdrop
            rows.append(self._feature((colour + self.colour_shift) % len(HAND_COLOURS), SLOT_WORDS.index(word)))
        return torch.stack(rows)

    def encode_texts(self, texts) -> torch.Tensor:
        self.text_calls += 1
        parts = [self._parts[t] for t in texts]
        return torch.stack([self._feature(HAND_COLOURS.index(p.hand_colour), SLOT_WORDS.index(p.slot)) for p in parts])


def save_random_open_clip(model_name: str, path, seed: int = 0) -> torch.nn.Module:
    """An open_clip model with seeded random weights, its state dict saved to `path`; returns the model."""
    import open_clip

    from repro.clip import synthclip

    synthclip.register()
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None).eval()
    torch.save(model.state_dict(), path)
    return model
