"""LoRA training with TRL + peft: SFT on good answers (with NEFTune's noisy embeddings), then DPO on
corrections paired with the answers they corrected, then KTO on thumbs, each preference stage only
when there is enough data for it.

On CPU: fp32 weights with bf16 autocast where the CPU has native bf16, no gradient checkpointing
(the model is small; recomputation would only cost time), torch threads capped and the process
niced, so a bot on the same machine keeps answering. On GPUs the same code runs under `accelerate
launch` (data parallel; rank 0 saves). Used by training/refresh.py, which owns the loop around it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.dataset import FeedbackDatasets, with_distractors

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from bot.core.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    base_model: str
    lora_rank: int = 8
    lora_alpha: int | None = None  # default 2 x rank
    lora_dropout: float = 0.05
    epochs: float = 3.0  # with learning_rate: the recipe bench/learning_loop.py measured
    learning_rate: float = 5e-4
    max_steps: int = -1  # > 0 caps the SFT steps (tests, smoke runs)
    # One sequence per forward pass, four per optimizer step: on CPU, padding a batch of RAG prompts of
    # mixed length cost twice the time (0.27 against 0.51 examples/s measured on 2 cores).
    batch_size: int = 1
    grad_accum: int = 4
    max_length: int = 1024
    kto_min_examples: int = 8  # and at least 2 of each label
    kto_epochs: float = 1.0
    kto_learning_rate: float = 5e-5
    kto_beta: float = 0.1
    kto_max_steps: int = -1
    dpo_min_pairs: int = 4
    dpo_epochs: float = 1.0
    dpo_learning_rate: float = 5e-5
    dpo_beta: float = 0.1
    dpo_max_steps: int = -1
    distractor_copies: int = 1  # RAFT-style variants per SFT example (shuffled sources + a distractor)
    # NEFTune: uniform noise on the input embeddings during SFT (alpha / sqrt(seq_len * dim)). With a
    # few dozen corrections the adapter otherwise memorises their wording; on the learning-loop bench
    # it raised held-out F1 in each of 3 seeds (+1.5 to +2.8, same data; docs/learning-loop.md).
    # None or 0 turns it off.
    neftune_alpha: float | None = 5.0
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
    dpo_steps: int = 0
    dpo_loss: float | None = None

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
    """SFT (then DPO and KTO when there is enough preference data) into a LoRA adapter at `out_dir`.
    With `parent_path`, training continues the parent adapter instead of starting a new one."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, ProgressCallback
    from trl import DPOConfig, DPOTrainer, KTOConfig, KTOTrainer, SFTConfig, SFTTrainer

    if not data.sft_train:
        raise ValueError("no SFT examples to train on")
    sft_examples = data.sft_train + with_distractors(data.sft_train, config.distractor_copies)
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
        neftune_noise_alpha=config.neftune_alpha or None,
        **common,
    )
    sft = SFTTrainer(
        model=model,
        args=sft_args,
        train_dataset=Dataset.from_list([e.sft_record() for e in sft_examples]),
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=list(callbacks),
    )
    _swap_progress(sft, progress, "SFT", per_step, ProgressCallback)
    sft_out = sft.train()
    result = TrainResult(0.0, sft.state.global_step * per_step, sft.state.global_step, sft_out.training_loss)
    model = sft.model

    if len(data.dpo_train) >= config.dpo_min_pairs:
        # The correction against the answer it corrected: SFT taught the answer users wanted, this also
        # pushes the model away from the one they rejected (wrong, or right but buried in words). The
        # reference model is the SFT result (TRL keeps a frozen copy of the adapter), so DPO sharpens
        # what SFT learned instead of pulling back towards the base model.
        dpo_args = DPOConfig(
            num_train_epochs=config.dpo_epochs,
            learning_rate=config.dpo_learning_rate,
            beta=config.dpo_beta,
            max_steps=config.dpo_max_steps,
            **common,
        )
        model, result.dpo_steps, result.dpo_loss = _preference_stage(
            DPOTrainer, "DPO", model, dpo_args, [p.dpo_record() for p in data.dpo_train], tokenizer,
            progress=progress, callbacks=callbacks, per_step=per_step,
        )
        result.examples_seen += result.dpo_steps * per_step

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
        kto_per_step = kto_args.per_device_train_batch_size * config.grad_accum
        model, result.kto_steps, result.kto_loss = _preference_stage(
            KTOTrainer, "KTO", model, kto_args, [e.kto_record() for e in data.kto_train], tokenizer,
            progress=progress, callbacks=callbacks, per_step=kto_per_step,
        )
        result.examples_seen += result.kto_steps * kto_per_step
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


def _preference_stage(
    trainer_class: Any,
    stage: str,
    model: Any,
    args: Any,
    records: list[dict[str, Any]],
    tokenizer: Any,
    *,
    progress: bool,
    callbacks: Sequence[TrainerCallback],
    per_step: int,
) -> tuple[Any, int, float]:
    """Run one TRL preference trainer (DPO, KTO) on the adapter; returns (model, steps, loss)."""
    from datasets import Dataset
    from transformers import ProgressCallback

    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    _swap_progress(trainer, progress, stage, per_step, ProgressCallback)
    out = trainer.train()
    return _without_ref(trainer.model), trainer.state.global_step, out.training_loss


def _without_ref(model: Any) -> Any:
    """Drop the frozen "ref" copy a preference trainer added, so the next stage can add its own."""
    if "ref" in getattr(model, "peft_config", {}):
        model.set_adapter("default")
        model.delete_adapter("ref")
    return model


def _save(model: Any, out_dir: Path) -> None:
    """Save only the trained adapter ("default"; KTO adds a frozen "ref" copy that is not wanted)."""
    import shutil

    if _is_main_process():
        model.save_pretrained(str(out_dir), selected_adapters=["default"])
    shutil.rmtree(out_dir / "_trainer", ignore_errors=True)


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0
