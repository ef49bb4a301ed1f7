"""f_H2D and f_PP layer by layer against supplement Tables 1-2; small presets run for real."""

import dataclasses
import math

import pytest
import torch

from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel

PAPER = ModelConfig(input_size=256, width=1.0)

# Supplement Table 1, (C, H, W) per layer (Branch1 and the trunk).
TABLE1 = {
    1: (64, 256, 256), 2: (64, 256, 256), 3: (64, 128, 128), 4: (128, 128, 128),
    5: (128, 128, 128), 6: (128, 64, 64), 7: (256, 64, 64), 8: (256, 64, 64), 9: (256, 64, 64),
    10: (256, 64, 64), 11: (256, 32, 32), 12: (512, 16, 16), 13: (1024, 8, 8), 14: (1024, 1, 1),
    20: (512, 32, 32), 21: (512, 32, 32), 22: (256, 32, 32), 23: (256, 32, 32),
    24: (256, 32, 32), 25: (256, 32, 32), 26: (128, 32, 32), 27: (512, 32, 32), 28: (21, 32, 32),
    **{layer: (128, 32, 32) for layer in list(range(30, 37)) + list(range(39, 45))},
    37: (21, 32, 32), 45: (21, 32, 32),
}  # fmt: skip


def _layer_modules(model: HandPoseModel) -> dict:
    h = model.h2d
    mods = {i + 1: h.trunk[i] for i in range(11)}
    mods.update({20 + i: h.stage1[i] for i in range(9)})
    mods.update({30 + i: h.stage2[i] for i in range(8)})
    mods.update({39 + i: h.stage3[i] for i in range(7)})
    mods[45] = h.stage3[7]
    mods.update({12: h.branch2.conv12, 13: h.branch2.conv13, 14: h.branch2.pool14})
    return mods


def _record(modules: dict, inputs: bool = False):
    shapes, handles = {}, []
    for key, mod in modules.items():
        def hook(_m, args, out, key=key):
            shapes[key] = tuple((args[0] if inputs else out).shape)

        handles.append(mod.register_forward_hook(hook))
    return shapes, handles


@pytest.fixture(scope="module")
def paper_run():
    """The paper-size model on the meta device: shapes only, no arithmetic, no memory."""
    with torch.device("meta"):
        model = HandPoseModel(PAPER)
        h, pp = model.h2d, model.pose_prior
        outs, h1 = _record(_layer_modules(model))
        ins, h2 = _record(
            {29: h.stage2[0], 38: h.stage3[0], 17: h.branch2.fc_e2, "fa": pp.fc_a[0], "fb": pp.fc_b[0]},
            inputs=True,
        )
        extra = {
            16: h.branch2.fc_e1, 18: h.branch2.fc_e2, "proj_hidden": h.branch2.projection.net[0],
            **{f"a{i + 1}": pp.conv_a[i] for i in range(6)}, "a8": pp.fc_a[1], "a9": pp.fc_a[3],
            "a10": pp.fc_a[4], **{f"b{i + 1}": pp.conv_b[i] for i in range(6)}, "b7": pp.fc_b[1],
            "b8": pp.fc_b[3], "ux": pp.ux, "uy": pp.uy, "uz": pp.uz,
        }  # fmt: skip
        more, h3 = _record(extra)
        out = model(torch.empty(1, 3, 256, 256), torch.empty(1, 512))
    for handle in h1 + h2 + h3:
        handle.remove()
    return out, outs, ins, more


def test_table1_trunk_and_branch1(paper_run):
    _, outs, ins, _ = paper_run
    for layer, (c, hh, ww) in TABLE1.items():
        assert outs[layer] == (1, c, hh, ww), f"L{layer}: {outs[layer]}"
    assert ins[29] == (1, 149, 32, 32) and ins[38] == (1, 149, 32, 32)


def test_table1_branch2(paper_run):
    out, _, ins, more = paper_run
    assert ins[17] == (1, 1024 + 512)  # L17: concat(h, f_CLIP)
    assert more[16] == (1, 512) and more[18] == (1, 512)  # e1, e2
    assert more["proj_hidden"] == (1, 512)
    assert tuple(out.e1p.shape) == (1, 128) and tuple(out.e2p.shape) == (1, 128)


def test_table2_pose_prior(paper_run):
    out, _, ins, more = paper_run
    stream_a = [(21, 32), (32, 16), (64, 16), (64, 8), (128, 8), (128, 4)]
    stream_b = [(64, 32), (64, 16), (128, 16), (128, 8), (256, 8), (256, 4)]
    for i, (c, s) in enumerate(stream_a):
        assert more[f"a{i + 1}"] == (1, c, s, s)
    for i, (c, s) in enumerate(stream_b):
        assert more[f"b{i + 1}"] == (1, c, s, s)
    assert ins["fa"] == (1, 2048) and ins["fb"] == (1, 4096)
    assert more["a8"] == (1, 512) and more["a9"] == (1, 512) and more["a10"] == (1, 63)
    assert more["b7"] == (1, 256) and more["b8"] == (1, 128)
    assert more["ux"] == more["uy"] == more["uz"] == (1, 1)
    assert [tuple(h.shape) for h in out.heatmaps] == [(1, 21, 32, 32)] * 3
    assert tuple(out.coords.shape) == (1, 21, 3)
    assert tuple(out.rotation.shape) == (1, 3, 3)


def _small(**kw) -> ModelConfig:
    return ModelConfig(input_size=64, width=0.25, **kw)


def test_small_preset_forward_backward():
    torch.manual_seed(0)
    model = HandPoseModel(_small())
    images = torch.randn(2, 3, 64, 64)
    out = model(images, torch.randn(2, 512))
    assert [tuple(h.shape) for h in out.heatmaps] == [(2, 21, 8, 8)] * 3
    assert tuple(out.coords.shape) == (2, 21, 3) and tuple(out.e1p.shape) == (2, 128)
    loss = sum(h.square().mean() for h in out.heatmaps) + out.coords.square().mean()
    loss = loss + (out.e1p - out.e2p).abs().mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # c = canonical @ R with R a rotation
    r = out.rotation.detach()
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-5)
    assert torch.allclose(out.coords, out.canonical @ out.rotation)


def test_tiny_preset_and_channels_last():
    model = HandPoseModel(ModelConfig(input_size=32, width=0.0625))
    x = torch.randn(2, 3, 32, 32).to(memory_format=torch.channels_last)
    out = model(x, torch.randn(2, 512))
    assert tuple(out.heatmaps[-1].shape) == (2, 21, 4, 4) and tuple(out.coords.shape) == (2, 21, 3)
    model = model.to(memory_format=torch.channels_last)
    assert tuple(model(x).coords.shape) == (2, 21, 3)


@pytest.mark.parametrize("fusion", ["concat", "sum"])
@pytest.mark.parametrize("clip_dim", [128, 512])
def test_fusions(fusion, clip_dim):
    cfg = _small(fusion=fusion, clip_dim=clip_dim)
    model = HandPoseModel(cfg)
    b2 = model.h2d.branch2
    e_dim = cfg.ch(512)
    if fusion == "concat":
        assert b2.fc_e2.in_features == cfg.ch(1024) + clip_dim and b2.clip_map is None
    else:
        assert b2.fc_e2.in_features == cfg.ch(1024)
        assert (b2.clip_map is None) == (clip_dim == e_dim)
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, clip_dim))
    assert tuple(out.e1p.shape) == tuple(out.e2p.shape) == (2, 128)
    (out.e2p.sum() + out.e1p.sum()).backward()
    assert b2.fc_e2.weight.grad is not None


def test_sum_fusion_identity_when_widths_match():
    cfg = ModelConfig(input_size=32, width=0.25, fusion="sum", clip_dim=128)  # e-width 128
    model = HandPoseModel(cfg)
    assert model.h2d.branch2.clip_map is None


def test_branch2_off_has_no_parameters_and_no_embeddings():
    model = HandPoseModel(_small(branch2=False))
    assert model.h2d.branch2 is None
    assert not any("branch2" in name for name, _ in model.named_parameters())
    with_b2 = HandPoseModel(_small())
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(with_b2) - n(model) == n(with_b2.h2d.branch2)
    out = model(torch.randn(2, 3, 64, 64), torch.randn(2, 512))
    assert out.e1p is None and out.e2p is None
    # with Branch2 but without a CLIP feature (test time): no embeddings either
    out = with_b2(torch.randn(2, 3, 64, 64))
    assert out.e1p is None and out.e2p is None


def test_config_width_rounding_and_validation():
    cfg = ModelConfig(width=0.25)
    assert cfg.ch(64) == 16 and cfg.ch(21) == 5 and ModelConfig(width=0.0625).ch(21) == 4
    assert ModelConfig().heatmap_size == 32
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.width = 1.0
    for bad in ({"fusion": "mul"}, {"input_size": 60}, {"width": 0.0}):
        with pytest.raises(ValueError):
            ModelConfig(**bad)
    with pytest.raises(ValueError):
        HandPoseModel(ModelConfig(input_size=32, width=0.0625))(torch.randn(1, 3, 64, 64))


def test_he_init_keeps_the_signal_scale():
    """With init="he", every conv/linear layer of the LeakyReLU chains (trunk, Branch1, f_PP) starts at He-normal
    scale for the slope (std = gain / sqrt(fan_in)), biases zero; Branch2 keeps PyTorch's default init."""
    torch.manual_seed(0)
    model = HandPoseModel(ModelConfig(input_size=64, width=0.25, init="he", leaky_slope=0.2))
    branch2 = {id(m) for m in model.h2d.branch2.modules()}
    layers = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and id(m) not in branch2]
    assert len(layers) > 40
    gain = math.sqrt(2.0 / (1 + 0.2**2))
    for layer in layers:
        if layer.weight.numel() < 4000:
            continue  # too few weights for a tight estimate of the std
        fan_in = layer.weight[0].numel()
        assert layer.weight.std().item() == pytest.approx(gain / math.sqrt(fan_in), rel=0.05), layer
        assert torch.count_nonzero(layer.bias) == 0
    # PyTorch's default: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights (std 1/sqrt(3 fan_in)) and non-zero biases
    fc = model.h2d.branch2.fc_e1
    assert fc.weight.std().item() == pytest.approx(1 / math.sqrt(3 * fc.in_features), rel=0.05)
    assert torch.count_nonzero(fc.bias) == fc.out_features


def test_prior_width_scales_f_pp_only():
    narrow = HandPoseModel(ModelConfig(input_size=64, width=0.125))
    wide_prior = HandPoseModel(ModelConfig(input_size=64, width=0.125, prior_width=1.0))
    assert narrow.pose_prior.conv_a[0][0].out_channels == 4  # round(21 * 0.125) = 3, floored at 4
    assert wide_prior.pose_prior.conv_a[0][0].out_channels == 21 and wide_prior.pose_prior.conv_b[-1][0].out_channels == 256
    assert [p.shape for p in wide_prior.h2d.parameters()] == [p.shape for p in narrow.h2d.parameters()]
    coords = wide_prior(torch.randn(2, 3, 64, 64)).coords
    assert coords.shape == (2, 21, 3)


def test_he_init_starts_eq4_inside_its_floor():
    """Eq. 4 is bounded only while d_neg < 0.5; with init="he" the embeddings of different images start there."""
    torch.manual_seed(0)
    model = HandPoseModel(ModelConfig(input_size=64, width=0.125, prior_width=0.5, init="he", leaky_slope=0.2, clip_dim=32))
    images = torch.rand(16, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        out = model(images, torch.nn.functional.normalize(torch.randn(16, 32), dim=1))
    d = torch.cdist(out.e1p, out.e1p, p=1)
    assert 0 < d.max().item() < 0.5
