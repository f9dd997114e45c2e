"""Train a LoRA adapter from feedback (TRL + peft), gate it, register it: `kbot train`.

SFT first on approved corrections and well-rated answers, then KTO on thumbs when there are enough
of both kinds. On CPU: fp32 weights with bf16 autocast where the CPU has native bf16, no gradient
checkpointing (the model is small; recomputation would only cost time), torch threads capped and
the process niced, so a bot on the same machine keeps answering. The same code runs on GPUs under
`accelerate launch -m training.refresh` (see docs/learning-loop.md and deploy/accelerate.yaml).

Everything is written into a staging folder that becomes `<adapters_root>/<version>` only when the
run finished (training, evaluation and manifest): Ctrl-C or a crash leaves the registry unchanged.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.metrics import EvalItem, load_eval_file
from training.dataset import DatasetPolicy, FeedbackDatasets, build_datasets, example_dict
from training.evaluate import evaluate_adapter, filter_heldout, gate
from training.registry import AdapterRegistry

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from bot.settings import Settings
    from bot.wiring import Runtime

log = logging.getLogger(__name__)
DEFAULT_EVAL_FILE = Path(__file__).resolve().parents[1] / "examples" / "questions.jsonl"


@dataclass
class TrainConfig:
    base_model: str
    lora_rank: int = 8
    lora_alpha: int | None = None  # default 2 x rank
    lora_dropout: float = 0.05
    epochs: float = 2.0
    learning_rate: float = 2e-4
    max_steps: int = -1  # > 0 caps the SFT steps (tests, smoke runs)
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    kto_min_examples: int = 8  # and at least 2 of each label
    kto_epochs: float = 1.0
    kto_learning_rate: float = 5e-5
    kto_beta: float = 0.1
    kto_max_steps: int = -1
    threads: int | None = None  # default: all cores but one
    niceness: int = 10
    precision: str = "auto"  # auto | bf16 | fp32
    seed: int = 0

    @classmethod
    def from_settings(cls, settings: Settings, base_model: str | Path, **overrides: Any) -> TrainConfig:
        values: dict[str, Any] = dict(
            base_model=str(base_model),
            lora_rank=settings.lora_rank,
            epochs=settings.train_epochs,
            learning_rate=settings.learning_rate,
        )
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class TrainResult:
    seconds: float
    examples_seen: int
    sft_steps: int
    sft_loss: float | None
    kto_steps: int = 0
    kto_loss: float | None = None

    @property
    def examples_per_s(self) -> float:
        return round(self.examples_seen / self.seconds, 3) if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds": round(self.seconds, 1), "examples_per_s": self.examples_per_s}


# --- resources ---------------------------------------------------------------------------------------
def limit_resources(config: TrainConfig) -> int:
    """Nice this process and cap torch's threads; returns the thread count used."""
    import torch

    try:
        if config.niceness > 0:
            os.nice(config.niceness)
    except OSError:  # not permitted (some containers): carry on at normal priority
        log.warning("could not lower the process priority")
    threads = config.threads or max(1, (os.cpu_count() or 2) - 1)
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)
    return threads


def _precision(config: TrainConfig) -> dict[str, Any]:
    import torch

    from knowledge.generator import cpu_has_bf16

    gpu = torch.cuda.is_available()
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and (torch.cuda.is_bf16_supported() if gpu else cpu_has_bf16())
    )
    return {"use_cpu": not gpu, "bf16": bf16, "fp16": False}


def _progress(stage: str, examples_per_step: int) -> TrainerCallback:
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class ProgressBar(TrainerCallback):
        """One bar per stage with examples/s and the latest loss."""

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.bar = tqdm(total=state.max_steps, desc=stage, unit="step", dynamic_ncols=True)
            self.started = time.perf_counter()
            self.loss: float | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001, ANN003
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.bar.update(1)
            rate = state.global_step * examples_per_step / max(1e-9, time.perf_counter() - self.started)
            post = {"ex/s": f"{rate:.2f}"}
            if self.loss is not None:
                post["loss"] = f"{self.loss:.3f}"
            self.bar.set_postfix(post)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003
            self.bar.close()

    return ProgressBar()


# --- training ----------------------------------------------------------------------------------------
def train_adapter(
    data: FeedbackDatasets,
    config: TrainConfig,
    out_dir: Path,
    *,
    parent_path: str | None = None,
    progress: bool = True,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """SFT (then KTO when there are enough thumbs) into a LoRA adapter saved at `out_dir`.
    With `parent_path`, training continues the parent adapter instead of starting a new one."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, ProgressCallback
    from trl import KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    if not data.sft_train:
        raise ValueError("no SFT examples to train on")
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(config.base_model)
    model: Any = AutoModelForCausalLM.from_pretrained(config.base_model, dtype=torch.float32)
    peft_config = None
    if parent_path:
        model = PeftModel.from_pretrained(model, parent_path, is_trainable=True)
    else:
        peft_config = LoraConfig(
            r=config.lora_rank,
            lora_alpha=config.lora_alpha or 2 * config.lora_rank,
            lora_dropout=config.lora_dropout,
            target_modules="all-linear",
            task_type="CAUSAL_LM",
        )
    common = dict(
        output_dir=str(out_dir / "_trainer"),
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        gradient_checkpointing=False,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=config.seed,
        max_length=config.max_length,
        dataloader_num_workers=0,
        disable_tqdm=not progress,
        **_precision(config),
    )
    per_step = config.batch_size * config.grad_accum

    sft_args = SFTConfig(
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.1,
        **common,
    )
    sft = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list([e.sft_record() for e in data.sft_train]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )
    _swap_progress(sft, progress, "SFT", per_step, ProgressCallback)
    sft_out = sft.train()
    result = TrainResult(0.0, sft.state.global_step * per_step, sft.state.global_step, sft_out.training_loss)
    model = sft.model

    labels = [e.label for e in data.kto_train]
    if len(labels) >= config.kto_min_examples and min(labels.count(True), labels.count(False)) >= 2:
        # TRL's advice: desirable_weight * n_desirable / n_undesirable within [1, 4/3]
        desirable_weight = min(4.0, max(0.25, 1.15 * labels.count(False) / labels.count(True)))
        kto_args = KTOConfig(
            num_train_epochs=config.kto_epochs,
            learning_rate=config.kto_learning_rate,
            beta=config.kto_beta,
            desirable_weight=desirable_weight,
            max_steps=config.kto_max_steps,
            **{**common, "per_device_train_batch_size": max(2, config.batch_size)},
        )
        kto = KTOTrainer(
            model=model,
            args=kto_args,
            train_dataset=Dataset.from_list([e.kto_record() for e in data.kto_train]),
            processing_class=tokenizer,
            callbacks=list(callbacks),
        )
        _swap_progress(
            kto, progress, "KTO", kto_args.per_device_train_batch_size * config.grad_accum, ProgressCallback
        )
        kto_out = kto.train()
        result.kto_steps, result.kto_loss = kto.state.global_step, kto_out.training_loss
        result.examples_seen += (
            kto.state.global_step * kto_args.per_device_train_batch_size * config.grad_accum
        )
        model = kto.model
    _save(model, out_dir)
    result.seconds = time.perf_counter() - started
    return result


def _swap_progress(trainer: Any, progress: bool, stage: str, per_step: int, default: type) -> None:
    """Our bar (examples/s and loss) instead of the Trainer's; with progress off, no per-step printing."""
    from transformers import PrinterCallback

    trainer.remove_callback(default)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.add_callback(_progress(stage, per_step))


def _save(model: Any, out_dir: Path) -> None:
    """Save only the trained adapter ("default"; KTO adds a frozen "ref" copy that is not wanted)."""
    import shutil

    if _is_main_process():
        model.save_pretrained(str(out_dir), selected_adapters=["default"])
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)


# --- the loop ----------------------------------------------------------------------------------------
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


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


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
    path = getattr(settings, "eval_file", None) or DEFAULT_EVAL_FILE
    return load_eval_file(Path(path)) if Path(path).exists() else []


def run_refresh(
    runtime: Runtime,
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
    s = runtime.settings
    store = runtime.store
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
            if hasattr(runtime.generator, "load_adapter"):
                runtime.generator.load_adapter(version, stage)
                baseline = evaluate_adapter(
                    runtime,
                    active.version if active else None,
                    items,
                    heldout=data.sft_validation,
                    details=details,
                )
                candidate = evaluate_adapter(
                    runtime, version, items, heldout=data.sft_validation, details=details
                )
                passed, reasons = gate(candidate, baseline, s.gate_tolerance)
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


def main() -> None:
    """`python -m training.refresh [--if-needed]` (also under `accelerate launch`)."""
    import argparse

    from bot.settings import Settings
    from bot.wiring import Runtime

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--if-needed", action="store_true")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    report = run_refresh(Runtime(Settings()), dry_run=args.dry_run, if_needed=args.if_needed)
    print(report.message)
    for reason in report.reasons:
        print(f"  {reason}")


if __name__ == "__main__":
    main()
