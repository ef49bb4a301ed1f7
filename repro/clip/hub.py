"""Fetching open_clip's pretrained weights ("ViT-B-32:openai") without hanging when offline.

open_clip's own download retries for most of a minute when no host answers. We decide first
whether the weights' host can be reached (HF_HUB_OFFLINE set, or no TCP connection within a few
seconds): if not, only a copy already in the local caches will do, and its absence is an error
at once that names the offline alternatives.
"""

import os
import threading
from pathlib import Path
from urllib.parse import urlparse

from repro.clip.errors import ClipError

PROBE_TIMEOUT_S = 3.0
OFFLINE_HINT = (
    "offline alternatives: --clip synthclip (the suite's own CLIP; `repro clip pretrain` trains it) "
    "or --clip MODEL --clip-checkpoint PATH (an open_clip state dict saved on disk, e.g. ViT-B-32)"
)


def _offline_env() -> bool:
    return any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _reachable(host: str) -> bool:
    """Whether a TCP connection to host:443 opens within PROBE_TIMEOUT_S (DNS lookup included)."""
    import socket

    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=PROBE_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            pass

    # A daemon thread, because a DNS lookup ignores the socket timeout and may hang far longer.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S)
    return bool(result)


def _hf_parts(cfg: dict) -> tuple[str, list[str]]:
    """Repo id and the file names open_clip would try, safetensors first (as open_clip does)."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo_id, filename = os.path.split(cfg["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    safe = HF_SAFE_WEIGHTS_NAME if filename == HF_WEIGHTS_NAME else str(Path(filename).with_suffix(".safetensors"))
    return repo_id, [safe, filename]


def _source_host(cfg: dict) -> str:
    if cfg.get("hf_hub"):
        from huggingface_hub import constants

        return urlparse(constants.ENDPOINT).hostname
    return urlparse(cfg["url"]).hostname


def _cached_copy(cfg: dict) -> str | None:
    """The weights' path in the Hugging Face cache or open_clip's URL cache, if already there."""
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache

        repo_id, names = _hf_parts(cfg)
        for name in names:
            found = try_to_load_from_cache(repo_id, name)
            if isinstance(found, str):
                return found
    if cfg.get("url"):
        path = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        if path.is_file():
            return str(path)
    return None


def fetch_pretrained(model: str, tag: str) -> tuple[str, dict]:
    """Local path of open_clip's pretrained weights `model:tag`, and the tag's config."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(model, tag)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model)
        raise ClipError(f"open_clip has no pretrained weights {model}:{tag}; its tags for {model}: {', '.join(tags) or 'none'}")
    if "file" in cfg:
        return cfg["file"], cfg
    cached = _cached_copy(cfg)
    if cached:
        return cached, cfg
    host = _source_host(cfg)
    if _offline_env() or not _reachable(host):
        raise ClipError(
            f"cannot download CLIP weights {model}:{tag}: {host} is not reachable (or HF_HUB_OFFLINE is set) and no local copy is cached; {OFFLINE_HINT}"
        )
    try:
        return open_clip.download_pretrained(cfg), cfg
    except Exception as err:  # open_clip raises bare RuntimeError/FileNotFoundError/URLError here
        raise ClipError(f"downloading CLIP weights {model}:{tag} failed ({err}); {OFFLINE_HINT}") from err
