"""Reference renders that pin the synthetic world to GENERATOR_VERSION.

A renderer change that is meant to be a pure speed-up must leave every sample as it was; one that
changes samples must bump GENERATOR_VERSION (every cache and trained run depends on the pixels) and
then regenerate the file:  .venv/bin/python tests/render_reference.py
"""

from pathlib import Path

import torch

from repro.data.domains import DOMAINS, GENERATOR_VERSION
from repro.data.synthetic import render_range

PATH = Path(__file__).parent / "data" / "render_reference.pt"
COUNT, SIZE = 3, 48


def render_reference() -> dict:
    """COUNT samples of every domain's first split at SIZE px: images (uint8) and hand masks."""
    out = {}
    for name, domain in DOMAINS.items():
        rendered = render_range(domain, next(iter(domain.splits)), 0, COUNT, SIZE)
        out[name] = {"image": rendered["image"], "mask": rendered["mask"]}
    return {"generator_version": GENERATOR_VERSION, "renders": out}


if __name__ == "__main__":
    torch.set_num_threads(1)
    PATH.parent.mkdir(exist_ok=True)
    torch.save(render_reference(), PATH)
    print(f"wrote {PATH} for generator version {GENERATOR_VERSION}")
