"""f_H2D and f_PP layer by layer against supplement Tables 1-2; small presets run for real."""

import dataclasses
import math

import pytest
import torch

from repro.model.config import ModelConfig
from repro.model.hand_pose import HandPoseModel
from repro.model.pose_prior import PosePrior

PAPER = ModelConfig(input_size=256, width=1.0)

# Supplement Table 1 at 256 px, width 1: layer -> output shape without the batch, (C, H, W) or (C,).
# L17 is the input of fc_e2 (concat(h, f_CLIP)); L19 is the pair (e1, e2), each 512, fed to the ProjectionHead.
TABLE1 = {
    1: (64, 256, 256),
    2: (64, 256, 256),
    3: (64, 128, 128),
    4: (128, 128, 128),
    5: (128, 128, 128),
    6: (128, 64, 64),
    7: (256, 64, 64),
    8: (256, 64, 64),
    9: (256, 64, 64),
    10: (256, 64, 64),
    11: (256, 32, 32),
    12: (512, 16, 16),
    13: (1024, 8, 8),
    14: (1024, 1, 1),
    15: (1024,),
    16: (512,),
    17: (1024 + 512,),
    18: (512,),
    19: (512,),
    20: (512, 32, 32),
    21: (512, 32, 32),
    22: (256, 32, 32),
    23: (256, 32, 32),
    24: (256, 32, 32),
    25: (256, 32, 32),
    26: (128, 32, 32),
    27: (512, 32, 32),
    28: (21, 32, 32),
    29: (149, 32, 32),
    **{layer: (128, 32, 32) for layer in range(30, 37)},
    37: (21, 32, 32),
    38: (149, 32, 32),
    **{layer: (128, 32, 32) for layer in range(39, 45)},
    45: (21, 32, 32),
}
# Table 2, stream A (L1-L11) and stream B (L1-L15), each numbered from 1.
TABLE2_A = {
    1: (21, 32, 32),
    2: (32, 16, 16),
    3: (64, 16, 16),
    4: (64, 8, 8),
    5: (128, 8, 8),
    6: (128, 4, 4),
    7: (2048,),
    8: (512,),
    9: (512,),
    10: (63,),
    11: (21, 3),
}
TABLE2_B = {
    1: (64, 32, 32),
    2: (64, 16, 16),
    3: (128, 16, 16),
    4: (128, 8, 8),
    5: (256, 8, 8),
    6: (256, 4, 4),
    7: (256,),
    8: (128,),
    9: (128,),
    10: (1,),
    11: (128,),
    12: (1,),
    13: (128,),
    14: (1,),
    15: (3,),
}

# Which Table 1 layers each Sequential of f_H2D holds, one module per layer: a stage with a layer too
# many or too few fails here (stage 3 once had 7 conv128 where the table lists 6).
H2D_STAGES = {"trunk": range(1, 12), "stage1": range(20, 29), "stage2": range(30, 38), "stage3": range(39, 46)}
POOLS = (3, 6, 11)  # MaxPooling 2x2; every other trunk / Branch1 layer is "Conv. + LeakyReLU" 3x3
BRANCH2_PIECES = ["conv12", "conv13", "pool14", "fc_e1", "fc_e2", "projection"]  # L12, L13, L14, L16, L18, head
# f_PP's Sequentials: (stream, Table 2 layers); a Linear + LeakyReLU layer is two modules.
PP_STAGES = {"conv_a": ("A", range(1, 7)), "fc_a": ("A", (8, 9, 10)), "conv_b": ("B", range(1, 7)), "fc_b": ("B", (7, 8))}


def _modules(model: HandPoseModel) -> dict:
    """(table, layer) -> the module whose output is that layer, for every layer with a module of its own."""
    h, b2, pp = model.h2d, model.h2d.branch2, model.pose_prior
    mods = {}
    for name, layers in H2D_STAGES.items():
        mods.update({("T1", layer): mod for layer, mod in zip(layers, getattr(h, name))})
    mods.update({("T1", 12): b2.conv12, ("T1", 13): b2.conv13, ("T1", 14): b2.pool14, ("T1", 16): b2.fc_e1, ("T1", 18): b2.fc_e2})
    mods.update({("A", i + 1): pp.conv_a[i] for i in range(6)})
    mods.update({("A", 8): pp.fc_a[1], ("A", 9): pp.fc_a[3], ("A", 10): pp.fc_a[4]})
    mods.update({("B", i + 1): pp.conv_b[i] for i in range(6)})
    mods.update({("B", 7): pp.fc_b[1], ("B", 8): pp.fc_b[3], ("B", 10): pp.ux, ("B", 12): pp.uy, ("B", 14): pp.uz})
    return mods


def _inputs(model: HandPoseModel) -> dict:
    """(table, layer) -> the module that consumes that layer, for the concat / flatten / fan-out rows."""
    h, b2, pp = model.h2d, model.h2d.branch2, model.pose_prior
    return {
        ("T1", 15): b2.fc_e1,
        ("T1", 17): b2.fc_e2,
        ("T1", 19): b2.projection,
        ("T1", 29): h.stage2[0],
        ("T1", 38): h.stage3[0],
        ("A", 7): pp.fc_a[0],
        ("B", 9): pp.ux,
        ("B", 11): pp.uy,
        ("B", 13): pp.uz,
    }


def _record(modules: dict, inputs: bool = False):
    """Forward hooks: key -> the shapes (batch dropped) of every call's output (or first input)."""
    shapes, handles = {}, []
    for key, mod in modules.items():

        def hook(_m, args, out, key=key):
            shapes.setdefault(key, []).append(tuple((args[0] if inputs else out).shape[1:]))

        handles.append(mod.register_forward_hook(hook))
    return shapes, handles


@pytest.fixture(scope="module")
def paper_run():
    """The paper-size model on the meta device: shapes only, no arithmetic, no memory."""
    with torch.device("meta"):
        model = HandPoseModel(PAPER)
        outs, h1 = _record(_modules(model))
        ins, h2 = _record(_inputs(model), inputs=True)
        out = model(torch.empty(1, 3, 256, 256), torch.empty(1, 512))
    for handle in h1 + h2:
        handle.remove()
    shapes = {key: calls for d in (outs, ins) for key, calls in d.items()}
    shapes[("A", 11)] = [tuple(out.canonical.shape[1:])]  # the reshape to 21 x 3
    return model, out, shapes


def test_every_stage_has_the_tables_layer_count(paper_run):
    model = paper_run[0]
    h, b2, pp = model.h2d, model.h2d.branch2, model.pose_prior
    for name, layers in H2D_STAGES.items():
        assert len(getattr(h, name)) == len(layers), f"{name}: {len(getattr(h, name))} modules, Table 1 lists L{layers[0]}-L{layers[-1]}"
    assert [name for name, _ in b2.named_children()] == BRANCH2_PIECES
    assert len(b2.conv12) == len(b2.conv13) == 1  # L12, L13: "Conv." without an activation
    assert [type(m) for m in b2.projection.net] == [torch.nn.Linear, torch.nn.ReLU, torch.nn.Linear]
    assert len(pp.conv_a) == len(pp.conv_b) == 6
    assert [type(m) for m in pp.fc_a] == [torch.nn.Linear, torch.nn.LeakyReLU] * 2 + [torch.nn.Linear]
    assert [type(m) for m in pp.fc_b] == [torch.nn.Linear, torch.nn.LeakyReLU] * 2
    # Conv. rows of Table 1: L1-L2, L4-L5, L7-L10, L12-L13, L20-L28, L30-L37, L39-L45; Table 2: 6 + 6
    count = lambda m, kind: sum(isinstance(x, kind) for x in m.modules())  # noqa: E731
    assert count(h, torch.nn.Conv2d) == 8 + 2 + 9 + 8 + 7
    assert count(pp, torch.nn.Conv2d) == 12 and count(pp, torch.nn.Linear) == 3 + 2 + 3
    assert count(b2, torch.nn.Linear) == 2 + 2  # fc_e1, fc_e2 and the ProjectionHead's two


def test_every_layer_is_the_tables_operation(paper_run):
    model = paper_run[0]
    h = model.h2d
    for name, layers in H2D_STAGES.items():
        for layer, mod in zip(layers, getattr(h, name)):
            if layer in POOLS:
                assert isinstance(mod, torch.nn.MaxPool2d) and (mod.kernel_size, mod.stride) == (2, 2), f"L{layer}"
            else:
                conv, act = mod
                assert conv.kernel_size == (3, 3) and conv.stride == (1, 1) and isinstance(act, torch.nn.LeakyReLU), f"L{layer}"
    for conv in (h.branch2.conv12[0], h.branch2.conv13[0]):
        assert conv.kernel_size == (3, 3) and conv.stride == (2, 2)
    for stream in (model.pose_prior.conv_a, model.pose_prior.conv_b):
        assert [block[0].stride for block in stream] == [(1, 1), (2, 2)] * 3
        assert all(block[0].kernel_size == (3, 3) and isinstance(block[1], torch.nn.LeakyReLU) for block in stream)


def test_table1_shapes(paper_run):
    _, out, shapes = paper_run
    got = {layer: calls for (table, layer), calls in shapes.items() if table == "T1"}
    assert sorted(got) == sorted(TABLE1)
    for layer, shape in TABLE1.items():
        expected = [shape] * (2 if layer == 19 else 1)  # L19: e1 and e2 pass the shared ProjectionHead
        assert got[layer] == expected, f"L{layer}: {got[layer]}"
    assert tuple(out.e1p.shape) == tuple(out.e2p.shape) == (1, 128)  # the ProjectionHead's output


def test_table2_shapes(paper_run):
    _, out, shapes = paper_run
    for stream, table in (("A", TABLE2_A), ("B", TABLE2_B)):
        for layer, shape in table.items():
            if (stream, layer) == ("B", 15):
                continue  # the axis-angle concat happens inside forward; checked through the rotation below
            assert shapes[(stream, layer)] == [shape], f"{stream} L{layer}: {shapes[(stream, layer)]}"
    assert [tuple(h.shape) for h in out.heatmaps] == [(1, 21, 32, 32)] * 3  # f_PP's input
    assert tuple(out.rotation.shape) == (1, 3, 3) and tuple(out.coords.shape) == (1, 21, 3)


def test_layer_map_covers_every_parameter(paper_run):
    """The modules mapped to Table 1-2 rows (plus the ProjectionHead) hold every parameter: none left unnumbered."""
    model = paper_run[0]
    mapped = list(_modules(model).values()) + [
        model.h2d.branch2.projection,
        model.pose_prior.fc_a[0],
        model.pose_prior.fc_a[2],
        model.pose_prior.fc_b[0],
        model.pose_prior.fc_b[2],
    ]
    n = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
    assert n(mapped) == n([model])


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


def test_viewpoint_bounds_the_rotation_angle_and_old_records_keep_theirs():
    """A runaway viewpoint head gives R of angle pi with model.viewpoint="bounded" (the default), and the
    heads' own angle, taken mod 2 pi, with "axis-angle"; records written before the field read as
    "axis-angle", the map they were trained with."""
    torch.manual_seed(0)
    heatmaps = torch.rand(2, 21, 8, 8)
    angles = {}
    for viewpoint in ("bounded", "axis-angle"):
        torch.manual_seed(0)
        prior = PosePrior(ModelConfig(input_size=64, width=0.125, viewpoint=viewpoint))
        with torch.no_grad():
            for head in (prior.ux, prior.uy, prior.uz):
                head.weight.zero_()
                head.bias.zero_()
            prior.uz.bias.fill_(100.0)  # an angle of 100 rad about z
        _, _, rotation = prior(heatmaps)
        angles[viewpoint] = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0])
    assert torch.allclose(angles["bounded"].abs(), torch.full((2,), math.pi), atol=1e-3)
    assert torch.allclose(angles["axis-angle"], torch.full((2,), math.remainder(100.0, 2 * math.pi)), atol=1e-4)
    assert ModelConfig().viewpoint == "bounded"
    assert ModelConfig.from_record({"width": 0.5}).viewpoint == "axis-angle"
    assert ModelConfig.from_record({"viewpoint": "bounded"}).viewpoint == "bounded"
    with pytest.raises(ValueError, match="model.viewpoint.*expected one of"):
        ModelConfig(viewpoint="quaternion")


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


@pytest.mark.parametrize("init", ["he", "torch"])
def test_a_seed_draws_the_shared_parts_alike_with_or_without_branch2(init):
    """Paired rows: the Baseline of a seed starts from the weights its CLIP rows start from."""
    models = []
    for branch2 in (False, True):
        torch.manual_seed(3)
        models.append(HandPoseModel(_small(branch2=branch2, init=init)))
    without, with_b2 = (dict(m.named_parameters()) for m in models)
    assert without.keys() < with_b2.keys()
    for name, p in without.items():
        assert torch.equal(p, with_b2[name]), name
    torch.manual_seed(4)  # and another seed draws other weights
    other = dict(HandPoseModel(_small(branch2=False, init=init)).named_parameters())
    assert not torch.equal(other["h2d.trunk.0.0.weight"], without["h2d.trunk.0.0.weight"])
