"""One objective per method: the loop holds no method's branch, and each objective's numbers are pinned.

The Baseline and IE+TE epochs were computed by the loop before the objectives were split out of it,
so the refactor kept every method's numbers; the restyle objectives are pinned as first written, the
normal-augmentation ones as the batched augmentation (trainer v4) draws them. All on the reference
numerics (fp32, contiguous), which v4's device-side loss sums and targets left unchanged. Trainer v6
re-pinned them all: paired rows draw other initial weights and batch orders (the Baseline and IE+TE
now share their heatmap loss to 1e-6 in this first epoch); v7's bounded viewpoint angle moves none of them by
2e-5 here (the angles stay near 0, where the bound is nearly the identity)."""

import pytest
import torch

from repro import bf16
from repro.presets import preset_config
from repro.train.loop import ClipFeatures, batch_inputs, new_state, train_epoch
from repro.train.objectives import OBJECTIVES

N, SIZE, DIM = 32, 32, 16
PINNED = {  # method overrides -> the epoch's mean losses (loss, heat, pose, con)
    (("mode", "baseline"),): (2.705092, 0.113443, 0.436224, 0.0),
    (("mode", "iete"),): (2.660117, 0.113442, 0.436208, -0.449315),
    (("mode", "baseline"), ("augment", "normal-supervised")): (2.692388, 0.112811, 0.436174, 0.0),
    (("mode", "baseline"), ("augment", "normal-contrastive")): (2.656898, 0.113449, 0.436223, -0.483019),
    (("mode", "baseline"), ("augment", "restyle-supervised")): (2.715774, 0.113975, 0.436272, 0.0),
    (("mode", "baseline"), ("augment", "restyle-contrastive")): (2.655885, 0.113442, 0.436223, -0.491743),
}


class Split:
    def __init__(self, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.digest = f"test-objectives-{seed}"  # names its images for loop.batch_inputs
        self.images = torch.randint(0, 255, (N, 3, SIZE, SIZE), generator=g, dtype=torch.uint8)
        self.uv = torch.rand(N, 21, 2, generator=g) * SIZE
        self.visible = torch.rand(N, 21, generator=g) > 0.2
        self.xyz = torch.randn(N, 21, 3, generator=g) * 40 + torch.tensor([0, 0, 500.0])

    def __len__(self) -> int:
        return N


def _unit(seed: int, n: int) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.randn(n, DIM, generator=torch.Generator().manual_seed(seed)), dim=-1)


REFERENCE = {"precision": "fp32", "memory_format": "contiguous", "adam_impl": "torch"}  # the same numbers on every machine


def _epoch(overrides: dict, numerics: dict = REFERENCE) -> dict:
    torch.set_num_threads(1)
    # lambda_heat, lr and warm-up as the tiny preset had them when these numbers were pinned: they pin the objectives, not the preset
    pinned_preset = {"batch_size": 8, "lambda_heat": 20.0, "lr": 1e-3, "lr_warmup": 0.05}
    cfg = preset_config("tiny", {**overrides, **pinned_preset, **numerics})
    clip = ClipFeatures(_unit(1, N), _unit(2, 50)) if cfg.uses_clip else None
    cpu = torch.device("cpu")
    restyled = batch_inputs(cfg, Split(seed=3), cpu) if cfg.restyled else None  # the twin's pixels: other ones
    state = new_state(cfg, DIM, cpu)
    return train_epoch(cfg, state, Split(seed=0), clip, cpu, restyled=restyled)


@pytest.mark.parametrize("overrides", list(PINNED), ids=lambda o: "+".join(v for _, v in o))
def test_each_objective_is_pinned(overrides):
    losses = _epoch(dict(overrides))
    got = tuple(losses[k] for k in ("loss", "heat", "pose", "con"))
    assert got == pytest.approx(PINNED[overrides], abs=2e-5)


@pytest.mark.parametrize("native", [True, False], ids=["bf16", "no-bf16"])
@pytest.mark.parametrize("overrides", list(PINNED)[:2], ids=lambda o: "+".join(v for _, v in o))
def test_the_default_numerics_stay_near_the_reference(overrides, native, monkeypatch):
    """Channels-last and the fused Adam, in bf16 autocast where the device has bf16 units (forced here either way), else fp32."""
    monkeypatch.setattr(bf16, "native", lambda device: native)
    losses = _epoch(dict(overrides), numerics={})
    got = tuple(losses[k] for k in ("loss", "heat", "pose", "con"))
    if not native:
        assert got == pytest.approx(PINNED[overrides], rel=1e-5, abs=2e-5)
        return
    assert got[:3] == pytest.approx(PINNED[overrides][:3], rel=0.01, abs=1e-3)
    # L_Con is a difference of two L1 distances of similar size: bf16's rounding of each (2^-8 relative)
    # is a larger share of their difference (measured: -0.4615 against -0.4493 in fp32)
    assert got[3] == pytest.approx(PINNED[overrides][3], abs=0.03)


def test_every_method_of_the_config_has_an_objective():
    methods = {preset_config("tiny", dict(o)).objective for o in PINNED}
    assert methods == set(OBJECTIVES)
