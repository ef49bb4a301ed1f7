"""The network layer by layer in the supplement's numbering (Tables 1-2), for `repro model summary`.

LAYERS is the one place that maps HandPoseModel's modules to the supplement's layer numbers. One
torchinfo trace of a forward pass gives every module's input and output size and parameter count;
a row with a module of its own reads them there. The rows that have none (inputs, flatten, concat,
fan-out and reshape rows) read the input of the module that consumes them, or join the rows they
name. The model is built on the meta device: shapes and counts need no arithmetic and no memory,
so the paper-size network summarises as fast as the tiny one.
"""

import dataclasses
from dataclasses import dataclass

import torch
import torchinfo
from torch import nn

from repro.data.joints import N_JOINTS
from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel

TABLES = {"f_H2D": "supplement Table 1", "f_PP A": "supplement Table 2, stream A", "f_PP B": "supplement Table 2, stream B"}
_CONV = "Conv. + LeakyReLU"

# (table, number, source, operation); number None: a row the tables do not number.
# source:  "PATH"          the output of that submodule of HandPoseModel; its parameters are the row's
#          "in:PATH"       the input of that submodule (a row with no module of its own)
#          "join:L15,clip" vectors concatenated, written "a + b" as Table 1 writes L17 and L19
#          "cat:L10,..."   vectors concatenated, written as the total as Table 2 writes B L15
#          "reshape:L10"   that row's vector as 21 x n
# Operations follow the tables' wording, except where this network does something more specific.
LAYERS = (
    ("f_H2D", None, "in:h2d.trunk.0", "Input: RGB image"),
    *(("f_H2D", i + 1, f"h2d.trunk.{i}", "MaxPooling" if i + 1 in (3, 6, 11) else _CONV) for i in range(11)),
    ("f_H2D", 12, "h2d.branch2.conv12", "Input: (L11), Conv."),
    ("f_H2D", 13, "h2d.branch2.conv13", "Conv."),
    ("f_H2D", 14, "h2d.branch2.pool14", "MaxPooling (global)"),
    ("f_H2D", 15, "in:h2d.branch2.fc_e1", "Flatten (h)"),
    ("f_H2D", 16, "h2d.branch2.fc_e1", "Linear (e1)"),
    ("f_H2D", 17, "join:L15,clip", "Input: (L15, f_CLIP), Concatenate"),  # the supplement writes (L15, L16)
    ("f_H2D", 18, "h2d.branch2.fc_e2", "Linear (e2)"),
    ("f_H2D", 19, "join:L16,L18", "Input: (L16, L18), the pair (e1, e2)"),
    ("f_H2D", None, "h2d.branch2.projection.net.0", "ProjectionHead: Linear + ReLU, on e1 and e2"),
    ("f_H2D", None, "h2d.branch2.projection.net.2", "ProjectionHead: Linear -> (e1', e2')"),
    ("f_H2D", 20, "h2d.stage1.0", f"Input: (L11), {_CONV}"),
    *(("f_H2D", 21 + i, f"h2d.stage1.{i + 1}", _CONV) for i in range(8)),
    ("f_H2D", 29, "in:h2d.stage2.0", "Input: (L26, L28), Concatenate"),
    *(("f_H2D", 30 + i, f"h2d.stage2.{i}", _CONV) for i in range(8)),
    ("f_H2D", 38, "in:h2d.stage3.0", "Input: (L26, L37), Concatenate"),
    *(("f_H2D", 39 + i, f"h2d.stage3.{i}", _CONV) for i in range(7)),
    ("f_PP A", None, "in:pose_prior.conv_a.0", "Input: 2D heatmap (L45)"),
    *(("f_PP A", 1 + i, f"pose_prior.conv_a.{i}", _CONV) for i in range(6)),
    ("f_PP A", 7, "in:pose_prior.fc_a.0", "Flatten"),
    ("f_PP A", 8, "pose_prior.fc_a.0", "Linear + LeakyReLU"),
    ("f_PP A", 9, "pose_prior.fc_a.2", "Linear + LeakyReLU"),
    ("f_PP A", 10, "pose_prior.fc_a.4", "Linear"),
    ("f_PP A", 11, "reshape:L10", "Reshape (canonical pose)"),
    *(("f_PP B", 1 + i, f"pose_prior.conv_b.{i}", _CONV) for i in range(6)),
    ("f_PP B", 7, "pose_prior.fc_b.0", "Flatten, Linear + LeakyReLU"),
    ("f_PP B", 8, "pose_prior.fc_b.2", "Linear + LeakyReLU"),
    ("f_PP B", 9, "in:pose_prior.ux", "Input: (L8)"),
    ("f_PP B", 10, "pose_prior.ux", "Linear"),
    ("f_PP B", 11, "in:pose_prior.uy", "Input: (L8)"),
    ("f_PP B", 12, "pose_prior.uy", "Linear"),
    ("f_PP B", 13, "in:pose_prior.uz", "Input: (L8)"),
    ("f_PP B", 14, "pose_prior.uz", "Linear"),
    ("f_PP B", 15, "cat:L10,L12,L14", "Input: (L10, L12, L14), Concatenate (axis-angle)"),
)


@dataclass(frozen=True)
class SummaryRow:
    table: str  # a key of TABLES
    number: int | None  # the supplement's layer number within its table; None if the table has no number for it
    operation: str
    kernel: str | None  # "3x3"; None where the row has no kernel
    stride: int | None
    shape: tuple[int, ...]  # the output in the supplement's order: (H, W, C) or (C,), batch dropped
    dims: str  # the shape as the supplement writes it: "32x32x149", "1024 + 512"
    params: int  # parameters of the row's own module; 0 for rows without one

    @property
    def label(self) -> str:
        return "-" if self.number is None else f"L{self.number}"


class _Traced(nn.Module):
    """f_PP(f_H2D(x)) as HandPoseModel wires it, minus its HandPoseOutput: torchinfo sizes every module's
    output and takes only tensors and sequences of them. Same submodule paths (h2d.*, pose_prior.*)."""

    def __init__(self, model: HandPoseModel):
        super().__init__()
        self.h2d, self.pose_prior = model.h2d, model.pose_prior

    def forward(self, images: torch.Tensor, clip_feature: torch.Tensor) -> torch.Tensor:
        heatmaps, _, _ = self.h2d(images, clip_feature)
        return self.pose_prior(heatmaps[-1])[0]


def build_model(cfg: ModelConfig) -> HandPoseModel:
    """The network of `cfg` with Branch2 (the summary lists L12-L19 whatever the run's mode), on the meta device."""
    if cfg.fusion != "concat":
        raise ValueError(f"the summary follows the supplement's concat fusion (L17); fusion {cfg.fusion!r} has no rows here")
    with torch.device("meta"):
        return HandPoseModel(dataclasses.replace(cfg, branch2=True))


def summary_rows(model: HandPoseModel) -> list[SummaryRow]:
    """LAYERS for `model` (built with Branch2 and concat fusion, on any device): one torchinfo trace of a batch of one."""
    cfg, device = model.cfg, next(model.parameters()).device
    images = torch.zeros(1, 3, cfg.input_size, cfg.input_size, device=device)
    stats = torchinfo.summary(_Traced(model), input_data=[images, torch.zeros(1, cfg.clip_dim, device=device)], verbose=0)
    traced = {id(info.module): info for info in stats.summary_list}  # the ProjectionHead's second call wins: same sizes
    rows: list[SummaryRow] = []
    for table, number, source, operation in LAYERS:
        named = {r.label: r.shape for r in rows if r.table == table} | {"clip": (cfg.clip_dim,)}
        kind, _, arg = source.rpartition(":")
        kernel = stride = None
        params = 0
        if kind in ("join", "cat"):
            parts = [named[name] for name in arg.split(",")]
            shape = (sum(p[-1] for p in parts),)
            dims = " + ".join(_dims(p) for p in parts) if kind == "join" else _dims(shape)
        elif kind == "reshape":
            shape = (N_JOINTS, named[arg][-1] // N_JOINTS)
            dims = _dims(shape)
        else:
            info = traced[id(model.get_submodule(arg))]
            shape = _supplement_order(info.input_size if kind == "in" else info.output_size)
            dims = _dims(shape)
            if not kind:
                params = info.num_params
                kernel, stride = _kernel_stride(info)
        rows.append(SummaryRow(table, number, operation, kernel, stride, shape, dims, params))
    return rows


def parameter_totals(model: HandPoseModel) -> dict[str, int]:
    """Parameters of f_H2D (Branch2 included, as Table 1 has it), of Branch2 alone, of f_PP, of all, and at test time."""
    n = lambda m: 0 if m is None else sum(p.numel() for p in m.parameters())  # noqa: E731
    totals = {"f_H2D": n(model.h2d), "Branch2": n(model.h2d.branch2), "f_PP": n(model.pose_prior), "all": n(model)}
    totals["test"] = totals["all"] - totals["Branch2"]  # Branch1 + f_PP: what runs at test time
    return totals


def _supplement_order(size: list[int]) -> tuple[int, ...]:
    """torchinfo's [B, C, H, W] or [B, C] -> (H, W, C) or (C,)."""
    return (*size[2:], size[1]) if len(size) == 4 else tuple(size[1:])


def _dims(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


def _kernel_stride(info) -> tuple[str | None, int | None]:
    """The kernel and stride of the row's conv or pool (a conv block's first module); a global pool's kernel is its input."""
    module = next((m for m in info.module.modules() if hasattr(m, "kernel_size") or isinstance(m, nn.AdaptiveMaxPool2d)), None)
    if module is None:
        return None, None
    if isinstance(module, nn.AdaptiveMaxPool2d):
        return _dims(tuple(info.input_size[2:])), None
    k = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
    stride = module.stride[0] if isinstance(module.stride, tuple) else module.stride
    return _dims(k), stride
