"""Adapter versions on disk and in the store: stage, commit, promote, roll back, and hot swap.

A version is a folder `<adapters_root>/<version>/` (peft adapter files + manifest.json) and a row in
the store's `adapters` table. Training writes into a hidden staging folder that is renamed into
place only when complete, so an interrupted run leaves nothing behind. Promotion is one store
transaction (exactly one row is `active`); the `current` symlink follows it for tools that read the
disk (e.g. a vLLM server). Running servers notice through `AdapterWatcher` and swap without restart.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.core import telemetry
from bot.core.errors import RegistryError
from bot.core.ports import BASE, Generator
from knowledge.store import AdapterRow, Store

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
_VERSION = re.compile(r"^v(\d+)$")
_STAGING_PREFIX = ".staging-"


class AdapterRegistry:
    def __init__(self, store: Store, root: Path):
        self.store = store
        self.root = Path(root)

    # --- versions ------------------------------------------------------------------------------
    def list(self) -> list[AdapterRow]:
        return self.store.list_adapters()

    def next_version(self) -> str:
        """v1, v2, ...: one more than the highest number in the store or on disk."""
        names = [a.version for a in self.store.list_adapters()]
        if self.root.exists():
            names += [p.name for p in self.root.iterdir()]
        numbers = [int(m.group(1)) for n in names if (m := _VERSION.match(n))]
        return f"v{max(numbers, default=0) + 1}"

    def path(self, version: str) -> Path:
        return self.root / version

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A private folder to train into; removed on any exception (including KeyboardInterrupt)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f"{_STAGING_PREFIX}{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        try:
            yield tmp
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # after commit it has been renamed away

    def commit(
        self, staged: Path, version: str, manifest: dict[str, Any], status: str = "candidate"
    ) -> AdapterRow:
        """Write the manifest, rename the staged folder to its version (atomic on one filesystem), and
        register it in the store."""
        if not (staged / "adapter_config.json").exists():
            raise RegistryError(f"{staged} holds no peft adapter")
        target = self.path(version)
        if target.exists() or self.store.get_adapter(version) is not None:
            raise RegistryError(f"adapter version {version} already exists")
        manifest = {**manifest, "version": version}
        (staged / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        os.replace(staged, target)
        try:
            self.store.add_adapter(
                version=version,
                path=str(target.resolve()),
                base_model=manifest.get("base_model", ""),
                parent=manifest.get("parent"),
                status=status,
                metrics=manifest.get("metrics", {}),
                manifest=manifest,
            )
        except Exception:
            shutil.rmtree(target, ignore_errors=True)  # a folder without a row would be an orphan
            raise
        log.info("adapter %s registered (%s)", version, status)
        return self.store.get_adapter(version)  # type: ignore[return-value]

    def clean_staging(self) -> int:
        """Remove staging folders left by a process that was killed (SIGKILL skips `finally`)."""
        if not self.root.exists():
            return 0
        stale = [p for p in self.root.iterdir() if p.name.startswith(_STAGING_PREFIX)]
        for p in stale:
            shutil.rmtree(p, ignore_errors=True)
        return len(stale)

    # --- promotion -----------------------------------------------------------------------------
    def promote(self, version: str) -> AdapterRow:
        row = self.store.get_adapter(version)
        if row is None:
            raise RegistryError(f"unknown adapter version {version!r} (see `kbot adapters list`)")
        if not (Path(row.path) / "adapter_config.json").exists():
            raise RegistryError(f"adapter {version} has no files at {row.path}")
        self.store.set_active_adapter(version)
        self._point_current(version)
        log.info("adapter %s promoted", version)
        return self.store.get_adapter(version)  # type: ignore[return-value]

    def rollback(self) -> str | None:
        """Serve the adapter that was active before the current one (None: the base model). The
        rolled-back version is marked `rejected`, so a second rollback goes one further back."""
        current = self.store.active_adapter()
        if current is None:
            raise RegistryError("no adapter is active; nothing to roll back")
        earlier = [
            a
            for a in self.store.list_adapters()
            if a.version != current.version and a.status == "retired" and a.promoted_at is not None
        ]
        earlier.sort(key=lambda a: a.promoted_at)  # type: ignore[arg-type, return-value]
        target = earlier[-1].version if earlier else None
        self.store.set_active_adapter(target)
        self.store.update_adapter(current.version, status="rejected")
        self._point_current(target)
        log.info("rolled back from %s to %s", current.version, target or "the base model")
        return target

    def _point_current(self, version: str | None) -> None:
        link = self.root / "current"
        if version is None:
            link.unlink(missing_ok=True)
            return
        tmp = self.root / f".current-{uuid.uuid4().hex[:8]}"
        tmp.symlink_to(version)
        os.replace(tmp, link)  # atomic swap of the symlink


class AdapterWatcher:
    """Keeps a running generator on the store's active adapter, with no restart.

    The previous adapter stays loaded, so a rollback is a pointer switch; older ones are unloaded
    to bound memory. A generator that does not host adapters (`hosts_adapters` False) is only told
    the adapter's name."""

    def __init__(self, store: Store, generator: Generator, interval_s: float = 5.0, keep_loaded: int = 2):
        self.store = store
        self.generator = generator
        self.interval_s = interval_s
        self.keep_loaded = keep_loaded
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        current = generator.active_adapter
        self._recent: list[str] = [current] if current else []
        self._last_error = ""

    def check(self) -> str | None:
        """Switch to the active adapter if it changed. Returns the new version (`base` for the base
        model) or None when nothing changed."""
        active = self.store.active_adapter()
        want = active.version if active else None
        if want == self.generator.active_adapter:
            return None
        if active is not None and self.generator.hosts_adapters:
            self.generator.load_adapter(active.version, active.path)
        self.generator.set_adapter(want)
        if want is not None:
            self._remember(want)
        telemetry.serving_adapter(want)
        log.info("now serving %s", want or "the base model")
        return want or BASE

    def _remember(self, version: str) -> None:
        self._recent = [v for v in self._recent if v != version] + [version]
        while len(self._recent) > self.keep_loaded:
            old = self._recent.pop(0)
            if self.generator.hosts_adapters:
                self.generator.unload_adapter(old)

    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._run, name="kbot-adapter-watcher", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
                self._last_error = ""
            except Exception as exc:  # keep serving the current adapter; say so once per distinct error
                if str(exc) != self._last_error:
                    log.warning("adapter watcher: %s", exc)
                    self._last_error = str(exc)
            self._stop.wait(self.interval_s)
