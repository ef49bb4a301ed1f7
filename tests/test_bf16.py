"""bf16 on the CPU: chosen by a measurement kept per machine, overridable, and never disturbing a run's random stream."""

import json

import pytest
import torch

from repro import bf16
from repro.errors import ConfigError


@pytest.fixture
def avx512_bf16_cpu(monkeypatch, repro_cache):
    """A CPU with AVX512-BF16 and no AMX, whose measurement is scripted; returns the list of measurements made."""
    monkeypatch.delenv(bf16.OVERRIDE)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    return []


def _script(monkeypatch, made, fp32_rate, bf16_rate):
    def fake():
        made.append((fp32_rate, bf16_rate))
        return {"fp32_img_s": fp32_rate, "bf16_img_s": bf16_rate}

    monkeypatch.setattr(bf16, "measure", fake)


@pytest.mark.parametrize(("bf16_rate", "expected"), [(120.0, True), (105.0, False), (74.0, False)])
def test_bf16_is_chosen_only_when_measured_at_least_the_margin_faster(avx512_bf16_cpu, monkeypatch, bf16_rate, expected):
    _script(monkeypatch, avx512_bf16_cpu, 100.0, bf16_rate)
    assert bf16.pays() is expected
    record = json.loads(bf16.record_path().read_text())
    assert (record["bf16"], record["fp32_img_s"], record["bf16_img_s"], record["margin"]) == (expected, 100.0, bf16_rate, 1.1)


def test_the_measurement_is_made_once_per_machine_and_kept(avx512_bf16_cpu, monkeypatch):
    _script(monkeypatch, avx512_bf16_cpu, 100.0, 130.0)
    assert bf16.pays() is True
    _script(monkeypatch, avx512_bf16_cpu, 100.0, 50.0)  # a later, different timing does not flip the answer
    assert bf16.pays() is True
    assert avx512_bf16_cpu == [(100.0, 130.0)]


def test_the_record_is_per_torch_version_not_per_thread_count(avx512_bf16_cpu, monkeypatch):
    """A study's main process and its single-threaded workers must agree on every run's precision."""
    one = bf16.record_path()
    monkeypatch.setattr(torch, "get_num_threads", lambda: 7)
    assert bf16.record_path() == one
    monkeypatch.setattr(torch, "__version__", "9.9.9")
    assert bf16.record_path() != one


@pytest.mark.parametrize(("amx", "avx512_bf16", "expected"), [(True, True, True), (False, False, False)])
def test_amx_pays_and_no_bf16_instructions_do_not_without_measuring(avx512_bf16_cpu, monkeypatch, amx, avx512_bf16, expected):
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    _script(monkeypatch, avx512_bf16_cpu, 100.0, 200.0)
    assert bf16.pays() is expected
    assert avx512_bf16_cpu == [] and not bf16.record_path().exists()


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False)])
def test_the_environment_overrides_the_measurement(avx512_bf16_cpu, monkeypatch, value, expected):
    monkeypatch.setenv(bf16.OVERRIDE, value)
    _script(monkeypatch, avx512_bf16_cpu, 100.0, 200.0 if not expected else 50.0)
    assert bf16.pays() is expected and avx512_bf16_cpu == []


def test_a_bad_override_names_the_variable_and_the_values(avx512_bf16_cpu, monkeypatch):
    monkeypatch.setenv(bf16.OVERRIDE, "yes")
    with pytest.raises(ConfigError, match=r"\$REPRO_CPU_BF16 is 'yes'; expected 1 .* or 0"):
        bf16.pays()


def test_measuring_times_both_precisions_and_leaves_the_random_stream_and_threads_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    rates = bf16.measure(steps=1, rounds=1)
    assert torch.equal(torch.rand(3), expected) and torch.get_num_threads() == threads
    assert set(rates) == {"fp32_img_s", "bf16_img_s"} and all(r > 0 for r in rates.values())
