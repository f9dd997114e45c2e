"""One turn of the learning loop, `kbot train`: feedback -> datasets -> LoRA adapter (training/lora.py)
-> gate against the active adapter (training/evaluate.py) -> registry -> promotion.

It receives its parts (`LoopParts`: settings, store, a generator loader and an engine factory) from
its callers, `kbot train` and `kbot serve`'s scheduler. On GPUs the same command runs as
`accelerate launch -m bot.cli.main train` (docs/learning-loop.md, deploy/accelerate.yaml): every rank
trains, rank 0 evaluates, registers and promotes.

Everything is written into a staging folder that becomes `<adapters_root>/<version>` only when the
run finished (training, evaluation and manifest): Ctrl-C or a crash leaves the registry unchanged.
"""

from __future__ import annotations

import fcntl
import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.core import telemetry
from bot.core.ports import Generator
from bot.core.settings import Settings
from bot.engine.scoring import EvalItem, load_eval_file
from knowledge.store import Store
from training.dataset import DatasetPolicy, build_datasets, example_dict
from training.evaluate import EngineFactory, evaluate_adapter, filter_heldout, gate
from training.lora import TrainConfig, _is_main_process, limit_resources, train_adapter
from training.registry import AdapterRegistry

__all__ = ["LoopParts", "RefreshReport", "TrainConfig", "run_refresh"]

if TYPE_CHECKING:
    from transformers import TrainerCallback

log = logging.getLogger(__name__)
DEFAULT_EVAL_FILE = Path(__file__).resolve().parents[1] / "examples" / "questions.jsonl"


# --- the loop ----------------------------------------------------------------------------------------
@dataclass
class LoopParts:
    """What one turn of the loop needs. `generator` is called only when a run trains (a dry run or a
    skipped run loads no model); it returns the serving generator, which must host adapters."""

    settings: Settings
    store: Store
    generator: Callable[[], Generator]
    make_engine: EngineFactory


@dataclass
class RefreshReport:
    status: str  # skipped | dry-run | promoted | candidate | rejected
    message: str
    version: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    train: dict[str, Any] | None = None
    candidate: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    reasons: list[str] = field(default_factory=list)


@contextmanager
def _exclusive(root: Path, enabled: bool = True) -> Iterator[bool]:
    """One training run at a time per adapters folder (the scheduler and a manual `kbot train`)."""
    root.mkdir(parents=True, exist_ok=True)
    if not enabled:  # a worker rank of a distributed run: rank 0 holds the lock
        yield True
        return
    with open(root / ".train.lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def default_eval_items(settings: Settings) -> list[EvalItem]:
    path = settings.eval_file or DEFAULT_EVAL_FILE
    return load_eval_file(Path(path)) if Path(path).exists() else []


def _counted(turn: Callable[..., RefreshReport]) -> Callable[..., RefreshReport]:
    """Count each turn in kbot_training_runs_total by its status (failed: it raised)."""

    @functools.wraps(turn)
    def counted(*args: Any, **kwargs: Any) -> RefreshReport:
        try:
            report = turn(*args, **kwargs)
        except BaseException:
            telemetry.TRAINING_RUNS.labels("failed").inc()
            raise
        telemetry.TRAINING_RUNS.labels(report.status).inc()
        return report

    return counted


@_counted
def run_refresh(
    parts: LoopParts,
    *,
    dry_run: bool = False,
    if_needed: bool = False,
    promote: bool = True,
    eval_items: Sequence[EvalItem] | None = None,
    config: TrainConfig | None = None,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
    samples: int = 3,
    details: bool = False,
) -> RefreshReport:
    """One turn of the loop: datasets -> adapter -> gate -> registry (-> promotion)."""
    s = parts.settings
    store = parts.store
    registry = AdapterRegistry(store, s.adapters_root)
    registry.clean_staging()
    adapters = registry.list()
    active = store.active_adapter()
    if if_needed:
        last = max((a.created_at for a in adapters), default=None)
        new = store.count_feedback(since=last)
        if new < max(1, s.train_after_feedback):
            return RefreshReport("skipped", f"{new} new feedback items since the last run; not training")

    from knowledge.models import lm_dir

    # A dry run needs no model: it shows what the next run would train on, continuing the active adapter.
    base_model = None if dry_run else str(lm_dir(s.lm_path, s.data_dir))
    parent = active if active and (dry_run or active.base_model == base_model) else None
    since = _parse_time(parent.manifest.get("data", {}).get("data_until")) if parent else None
    data = build_datasets(store, DatasetPolicy.from_settings(s), since=since)
    counts = data.counts()
    shown = [example_dict(e) for e in data.sft_train[:samples]]
    if dry_run or base_model is None:
        return RefreshReport("dry-run", _describe(counts), counts=counts, samples=shown)
    config = config or TrainConfig.from_settings(s, base_model)
    new_examples = counts["sft_train"] - counts["replayed"]
    if new_examples <= 0:
        return RefreshReport("skipped", "no new training examples", counts=counts)

    with _exclusive(registry.root, enabled=_is_main_process()) as mine:
        if not mine:
            return RefreshReport("skipped", "another training run is in progress", counts=counts)
        threads = limit_resources(config)
        version = registry.next_version()
        with registry.staging() as stage:
            log.info("training %s on %s (%d threads)", version, _describe(counts), threads)
            result = train_adapter(
                data,
                config,
                stage,
                parent_path=parent.path if parent else None,
                progress=progress,
                callbacks=callbacks,
            )
            if not _is_main_process():  # other ranks of `accelerate launch` only help train
                return RefreshReport("skipped", "training rank done", counts=counts)
            data.write(stage / "data")
            items = (
                filter_heldout(
                    list(default_eval_items(s) if eval_items is None else eval_items),
                    data.trained_questions(),
                )
                + data.heldout_items()
            )
            baseline = candidate = None
            generator = parts.generator()
            if generator.hosts_adapters:
                scopes = (s.default_scope,)
                if active is not None:
                    generator.load_adapter(active.version, active.path)
                generator.load_adapter(version, str(stage))
                baseline = evaluate_adapter(
                    generator, parts.make_engine, active.version if active else None, items,
                    heldout=data.sft_validation, scopes=scopes, details=details,
                )
                candidate = evaluate_adapter(
                    generator, parts.make_engine, version, items,
                    heldout=data.sft_validation, scopes=scopes, details=details,
                )
                passed, reasons = gate(candidate, baseline, s.gate_tolerance)
                telemetry.GATE_OUTCOMES.labels("passed" if passed else "failed").inc()
            else:
                passed, reasons = False, ["the generator is a remote server: evaluate and promote by hand"]
            manifest = {
                "created_at": datetime.now(UTC).isoformat(),
                "base_model": config.base_model,
                "parent": parent.version if parent else None,
                "data": {
                    "hash": data.data_hash,
                    "counts": counts,
                    "data_until": data.data_until.isoformat() if data.data_until else None,
                },
                "config": asdict(config) | {"threads": threads},
                "train": result.as_dict(),
                "metrics": {
                    "candidate": _summary(candidate),
                    "baseline": _summary(baseline),
                    "gate": {"passed": passed, "reasons": reasons, "tolerance": s.gate_tolerance},
                },
                "eval_items": len(items),
            }
            registry.commit(stage, version, manifest, status="candidate" if passed else "rejected")
    status = "rejected"
    if passed and promote:
        registry.promote(version)
        status = "promoted"
    elif passed:
        status = "candidate"
    return RefreshReport(
        status, f"{version}: {status}", version, counts, shown, result.as_dict(), candidate, baseline, reasons
    )


def _summary(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """Metrics without the per-item answers (those stay out of the manifest and the store)."""
    return {k: v for k, v in metrics.items() if k != "items"} if metrics else None


def _describe(counts: dict[str, Any]) -> str:
    return (
        f"{counts['sft_train']} SFT examples ({counts['replayed']} replayed), "
        f"{counts['sft_validation']} held out, "
        f"{counts['kto_desirable']}+{counts['kto_undesirable']} KTO, {counts['dpo_pairs']} DPO pairs"
    )


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None

