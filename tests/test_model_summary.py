"""`repro model summary`: every row in the supplement's numbering with Tables 1-2's shapes, and parameter
totals that add up to the modules' own."""

import dataclasses
import json

import pytest
import torch
from test_model_shapes import TABLE1, TABLE2_A, TABLE2_B

from repro.cli import main
from repro.model.hand_pose import HandPoseModel
from repro.model.summary import LAYERS, TABLES, build_model, parameter_totals, summary_rows
from repro.presets import preset_config


def _hwc(shape: tuple[int, ...]) -> tuple[int, ...]:
    """(C, H, W) as test_model_shapes writes Table 1-2 -> (H, W, C) as the supplement does; vectors stay."""
    return (*shape[1:], shape[0]) if len(shape) == 3 else shape


@pytest.fixture(scope="module")
def paper():
    model = build_model(preset_config("paper").model)
    return model, summary_rows(model)


def _numbered(rows, table: str) -> dict:
    return {r.number: r for r in rows if r.table == table and r.number is not None}


def test_paper_rows_are_table1(paper):
    _, rows = paper
    assert [r.number for r in rows if r.table == "f_H2D" and r.number is not None] == list(range(1, 46))
    got = _numbered(rows, "f_H2D")
    for layer, shape in TABLE1.items():
        expected = (1024,) if layer == 19 else _hwc(shape)  # L19: e1 and e2, 512 + 512
        assert got[layer].shape == expected, f"L{layer}: {got[layer].shape}"
    dims = {
        11: "32x32x256",
        13: "8x8x1024",
        14: "1x1x1024",
        17: "1024 + 512",
        19: "512 + 512",
        29: "32x32x149",
        38: "32x32x149",
        44: "32x32x128",
        45: "32x32x21",
    }
    assert {layer: got[layer].dims for layer in dims} == dims
    assert [r.dims for r in rows if r.table == "f_H2D" and r.number is None] == ["256x256x3", "512", "128"]  # input, ProjectionHead


def test_paper_rows_are_table2(paper):
    _, rows = paper
    for table, expected in (("f_PP A", TABLE2_A), ("f_PP B", TABLE2_B)):
        got = _numbered(rows, table)
        assert list(got) == list(range(1, len(expected) + 1))
        assert {layer: r.shape for layer, r in got.items()} == {layer: _hwc(s) for layer, s in expected.items()}, table
    assert _numbered(rows, "f_PP A")[11].dims == "21x3" and _numbered(rows, "f_PP B")[15].dims == "3"


def test_kernels_and_strides(paper):
    _, rows = paper
    h2d, a, b = (_numbered(rows, t) for t in TABLES)
    for layer, r in h2d.items():
        if r.operation.endswith("Conv. + LeakyReLU"):
            assert (r.kernel, r.stride) == ("3x3", 1), f"L{layer}"
    assert [(h2d[n].kernel, h2d[n].stride) for n in (3, 6, 11, 12, 13, 14)] == [("2x2", 2)] * 3 + [("3x3", 2)] * 2 + [("8x8", None)]
    for stream in (a, b):
        assert [(stream[n].kernel, stream[n].stride) for n in range(1, 7)] == [("3x3", 1), ("3x3", 2)] * 3
    assert all(
        r.kernel is None and r.stride is None
        for r in rows
        if "Linear" in r.operation or ("Input: (L" in r.operation and "Conv" not in r.operation)
    )


def test_totals_are_the_modules_parameters(paper):
    model, rows = paper
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    totals = parameter_totals(model)
    assert totals == {
        "f_H2D": n(model.h2d),
        "Branch2": n(model.h2d.branch2),
        "f_PP": n(model.pose_prior),
        "all": n(model),
        "test": n(model) - n(model.h2d.branch2),
    }
    # every parameter sits on exactly one row
    assert sum(r.params for r in rows if r.table == "f_H2D") == totals["f_H2D"]
    assert sum(r.params for r in rows if r.table != "f_H2D") == totals["f_PP"]
    branch2 = [r for r in rows if r.table == "f_H2D" and (r.number is None or 12 <= r.number <= 19)]
    assert sum(r.params for r in branch2) == totals["Branch2"]
    h2d = _numbered(rows, "f_H2D")
    assert h2d[1].params == 3 * 64 * 9 + 64 and h2d[45].params == 128 * 21 * 9 + 21 and h2d[17].params == 0
    assert totals["all"] == totals["f_H2D"] + totals["f_PP"] == 23_221_975


def test_rows_follow_layers_and_a_real_forward():
    """One row per LAYERS entry; the meta-device trace gives the rows a real CPU forward gives."""
    cfg = dataclasses.replace(preset_config("tiny").model, branch2=True)
    rows = summary_rows(build_model(cfg))
    assert [(r.table, r.number, r.operation) for r in rows] == [(t, n, op) for t, n, _, op in LAYERS]
    torch.manual_seed(0)
    assert summary_rows(HandPoseModel(cfg)) == rows


def test_sum_fusion_is_refused():
    with pytest.raises(ValueError, match="concat"):
        build_model(dataclasses.replace(preset_config("tiny").model, fusion="sum"))


def test_cli_prints_every_layer_and_the_totals(capsys):
    assert main(["model", "summary", "--preset", "tiny"]) == 0
    out = capsys.readouterr().out
    model = build_model(preset_config("tiny").model)
    rows, totals = summary_rows(model), parameter_totals(model)
    sections = out.split("\n\n")
    assert [s.splitlines()[0] for s in sections[1:4]] == [f"{t} ({title})" for t, title in TABLES.items()]
    h2d_labels = [line.split()[0] for line in sections[1].splitlines()[2:]]
    assert [label for label in h2d_labels if label != "-"] == [f"L{i}" for i in range(1, 46)]
    l45 = next(line for line in sections[1].splitlines() if line.startswith("L45 "))
    assert l45.split()[-5:] == ["LeakyReLU", "3x3", "1", _numbered(rows, "f_H2D")[45].dims, f"{_numbered(rows, 'f_H2D')[45].params:,}"]
    assert len(sections[2].splitlines()) == 2 + 12 and len(sections[3].splitlines()) == 2 + 15
    for key in ("f_H2D", "f_PP", "all"):
        assert f"{totals[key]:,}" in sections[4]


def test_cli_json_has_one_record_per_layer(capsys):
    assert main(["model", "summary", "--preset", "tiny", "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    model = build_model(preset_config("tiny").model)
    assert records[-1] == {"preset": "tiny", "totals": parameter_totals(model)}
    rows = records[:-1]
    assert [(r["table"], r["layer"]) for r in rows] == [(t, n) for t, n, _, _ in LAYERS]
    assert sum(r["params"] for r in rows) == records[-1]["totals"]["all"]
    l1 = rows[1]
    assert l1 == {
        "table": "f_H2D",
        "layer": 1,
        "operation": "Conv. + LeakyReLU",
        "kernel": "3x3",
        "stride": 1,
        "shape": [32, 32, 4],
        "dims": "32x32x4",
        "params": 3 * 4 * 9 + 4,
    }


def test_cli_default_preset_and_unknown_preset(capsys):
    assert main(["model", "summary"]) == 0
    assert capsys.readouterr().out.startswith("preset small: 64 px input")
    assert main(["model", "summary", "--preset", "bogus"]) == 2
    assert capsys.readouterr().err.startswith("repro: error: unknown preset 'bogus'")
