"""A run's identity: everything that changes what it computes.

That is the config (its canonical JSON, the trainer version included), the digest of every dataset
split the run reads (for the synthetic world the digest covers its generator version), the CLIP
it mixes in, named with its weights digest, and the precision it computes in on this machine's
training device (a bf16 config computes in fp32 where the device has no bf16 units; on a GPU also
what cuDNN's fp32 is). Its hash, the run hash, is the key of a training run everywhere: the MLflow
tag `run_hash` that dedupe and resume look up, the checkpoint folder, and the study names
(repro.studies.runner.study_name). A finished run is reused only when all of it matches; anything
else trains a new run and leaves the old one as it was.

Opening a run's inputs renders a missing synthetic cache and pre-trains a missing synthclip (both
once, under locks): a command that needs them builds them first. Splits are opened, not loaded:
a digest needs only the cache manifest or the annotation files.
"""

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache

from repro.config import TRAINER_VERSION, RunConfig
from repro.data import domains
from repro.paths import cache_dir
from repro.train.data import CV_DEALING, OpenSplit, evaluated_splits, open_split, restyled_twin
from repro.train.evaluate import CUDA_CONV_FP32, device_for_training, effective_precision


@dataclass(frozen=True)
class RunInputs:
    # "train", "restyled" (its twin, for the restyle objectives), "val" (not under cross-validation),
    # and each evaluated dataset by its name
    splits: dict[str, OpenSplit]
    encoder: object | None  # the frozen CLIP encoder (None when the run uses no CLIP)

    def record(self) -> dict:
        data = {role: {"dataset": s.name, "split": s.split, "digest": s.digest} for role, s in self.splits.items()}
        clip = None if self.encoder is None else {"identity": self.encoder.identity, "weights_digest": self.encoder.weights_digest}
        return {"data": data, "clip": clip}


def _inputs_key(cfg: RunConfig) -> tuple:
    """What decides a run's inputs: runs that differ only elsewhere share one RunInputs. The cache folder
    and the world's version are read now, so a process that changes either opens its inputs anew."""
    clip = (cfg.clip, cfg.clip_checkpoint) if cfg.uses_clip else None
    world = (str(cache_dir()), domains.GENERATOR_VERSION)
    return (
        cfg.source,
        cfg.targets,
        cfg.data_root,
        cfg.image_size,
        cfg.n_train,
        cfg.n_val,
        cfg.n_test,
        bool(cfg.cv_folds),
        clip,
        cfg.restyled,
        world,
    )


@lru_cache(maxsize=32)
def _open_split(name: str, role: str, n: int | None, size: int, data_root: str | None, world: tuple) -> OpenSplit:
    """One OpenSplit per split (and world) in a process, so that runs whose inputs differ elsewhere (their
    CLIP, the restyled twin) share its tensors: each RunInputs opening its own held one more copy of every
    split (a `small` study worker grew by 1.4-1.9 GB per distinct set of inputs, to 6.5 GB; RESULTS.md)."""
    return open_split(name, role, n, size, data_root)


@lru_cache(maxsize=16)
def _open(key: tuple) -> RunInputs:
    source, targets, data_root, size, n_train, n_val, n_test, cv, clip, restyled, world = key

    def opened(name: str, role: str, n: int | None) -> OpenSplit:
        return _open_split(name, role, n, size, data_root, world)

    splits = {"train": opened(source, "train", n_train)}
    if restyled:  # the same poses in other styles, sample for sample
        splits["restyled"] = opened(restyled_twin(source), "train", n_train)
    if not cv:  # cross-validation validates on a fold of the training split and reads no target
        splits["val"] = opened(source, "val", n_val)
        splits.update({t: opened(t, "test", n_test) for t in evaluated_splits(targets)})
    encoder = None
    if clip is not None:
        from repro.clip.encoders import build_encoder

        encoder = build_encoder(*clip)
    return RunInputs(splits, encoder)


def open_inputs(cfg: RunConfig) -> RunInputs:
    """The run's splits and CLIP encoder, opened once per process for each distinct set of inputs."""
    return _open(_inputs_key(cfg))


def identity(cfg: RunConfig, inputs: RunInputs) -> dict:
    device = device_for_training()
    record = {
        "trainer_version": TRAINER_VERSION,
        "config": cfg.to_dict(),
        "precision_effective": effective_precision(cfg.precision, device),
        **inputs.record(),
    }
    if device.type == "cuda":  # cuDNN's fp32 (TF32 before it was set): GPU runs only, CPU identities stay as they were
        record["cuda_conv_fp32"] = CUDA_CONV_FP32
    if cfg.cv_folds:  # the folds are part of what a cross-validation run trains and validates on
        record["cv_dealing"] = CV_DEALING
    return record


def identity_hash(record: dict) -> str:
    return hashlib.sha256(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def run_hash(cfg: RunConfig) -> str:
    """The run hash of `cfg` on today's data and CLIP weights."""
    return identity_hash(identity(cfg, open_inputs(cfg)))
