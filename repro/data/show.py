"""A PNG grid of samples with their 2D joints drawn on top, to look at a dataset."""

import math
from pathlib import Path

from PIL import Image, ImageDraw

from repro.data.joints import BONES

FINGER_COLOURS = ((255, 0, 0), (255, 160, 0), (0, 200, 0), (0, 160, 255), (200, 0, 255))
TILE = 256


def draw_sample(sample) -> Image.Image:
    """The sample's image at TILE px with bones, joints (hollow where not visible) and its caption."""
    image = Image.fromarray(sample.image.permute(1, 2, 0).numpy()).resize((TILE, TILE), Image.NEAREST)
    draw = ImageDraw.Draw(image)
    uv = ((sample.uv + 0.5) * TILE / sample.image.shape[-1]).tolist()
    for k, (parent, child) in enumerate(BONES):
        draw.line([tuple(uv[parent]), tuple(uv[child])], fill=FINGER_COLOURS[k // 4], width=2)
    for j, (u, v) in enumerate(uv):
        colour = FINGER_COLOURS[max(j - 1, 0) // 4]
        box = (u - 3, v - 3, u + 3, v + 3)
        draw.ellipse(box, fill=colour if bool(sample.visible[j]) else None, outline=colour)
    if sample.caption:
        draw.rectangle((0, TILE - 14, TILE, TILE), fill=(0, 0, 0))
        draw.text((3, TILE - 13), sample.caption[:48], fill=(255, 255, 255))
    return image


def write_grid(dataset, out: Path, count: int = 16) -> Path:
    count = min(count, len(dataset))
    cols = min(count, 4)
    rows = math.ceil(count / cols)
    grid = Image.new("RGB", (cols * TILE, rows * TILE))
    for i in range(count):
        grid.paste(draw_sample(dataset[i]), ((i % cols) * TILE, (i // cols) * TILE))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(out)
    return out
