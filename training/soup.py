"""A uniform "model soup" of LoRA adapters: the average of several adapters trained on the same data
with different seeds (Wortsman et al. 2022, "Model soups"). On a few dozen examples one training run
is noisy (which examples share a batch, dropout, the LoRA init); the average of a few runs is a
steadier, usually better adapter than a single run of the same recipe.

The average is exact: peft's `add_weighted_adapter(..., combination_type="cat")` stacks the members'
low-rank factors, so the soup's weight update is the mean of the members' updates and its rank is
the sum of theirs. When that sum would exceed `max_rank` (members that continued a parent soup), the
mean is truncated to `max_rank` by SVD instead, so the rank stays bounded from one refresh to the next.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def average_adapters(base_model: str, members: Sequence[Path], out_dir: Path, max_rank: int) -> int:
    """Write the average of the peft LoRA adapters `members` as one adapter in `out_dir`; returns its rank."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not members:
        raise ValueError("no adapters to average")
    model: Any = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    names = [f"member{i}" for i in range(len(members))]
    model = PeftModel.from_pretrained(model, str(members[0]), adapter_name=names[0])
    for name, path in zip(names[1:], members[1:], strict=True):
        model.load_adapter(str(path), adapter_name=name)
    total = sum(model.peft_config[n].r for n in names)
    exact = total <= max_rank
    model.add_weighted_adapter(
        names,
        [1.0 / len(names)] * len(names),
        "default",
        combination_type="cat" if exact else "svd",
        svd_rank=None if exact else max_rank,
    )
    model.save_pretrained(str(out_dir), selected_adapters=["default"])
    return model.peft_config["default"].r
