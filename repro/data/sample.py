"""The one sample type every dataset (synthetic or real) yields."""

from dataclasses import dataclass, field

import torch


@dataclass
class HandSample:
    """A right hand cropped to the model's input size.

    image: uint8 (3, S, S), RGB. xyz: float32 (21, 3), camera frame, millimetres, canonical order.
    uv: float32 (21, 2), pixel coordinates in the crop (x right, y down, pixel centres at integers).
    visible: bool (21,). K: float32 (3, 3), intrinsics of the crop (uv = project(K, xyz)).
    caption: the style caption in the paper's prompt grammar ("" where the data has none).
    meta: provenance (source file, original index, whether it was mirrored, style attributes).
    """

    image: torch.Tensor
    xyz: torch.Tensor
    uv: torch.Tensor
    visible: torch.Tensor
    K: torch.Tensor
    caption: str = ""
    meta: dict = field(default_factory=dict)
