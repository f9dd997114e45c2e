"""`kbot train`, `kbot adapters list|promote|rollback` and `kbot feedback review`.

Registered on the main typer app by bot/cli/main.py: `register(app, get_runtime)`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from bot.core.errors import StoreError
from bot.wiring import Runtime
from knowledge.store import FeedbackRow

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer, get_runtime: Callable[[], Runtime]) -> None:
    """Add the learning-loop commands to `app`."""
    adapters = typer.Typer(help="Adapter versions made by the learning loop.", no_args_is_help=True)
    feedback = typer.Typer(help="Feedback and corrections from users.", no_args_is_help=True)
    app.add_typer(adapters, name="adapters")
    app.add_typer(feedback, name="feedback")

    @app.command()
    def train(
        dry_run: Annotated[
            bool, typer.Option("--dry-run", help="Show dataset counts and samples; train nothing.")
        ] = False,
        if_needed: Annotated[
            bool, typer.Option("--if-needed", help="Only if enough new feedback arrived (cron).")
        ] = False,
        eval_file: Annotated[
            Path | None, typer.Option(help="Held-out questions (JSONL) for the gate.")
        ] = None,
        no_promote: Annotated[
            bool, typer.Option("--no-promote", help="Register but do not promote.")
        ] = False,
        max_steps: Annotated[int | None, typer.Option(help="Cap the SFT steps (smoke runs).")] = None,
        threads: Annotated[
            int | None, typer.Option(help="Torch threads (default: all cores but one).")
        ] = None,
    ) -> None:
        """Build datasets from feedback, train a LoRA adapter, gate it against the active one, promote."""
        from bot.engine.scoring import load_eval_file
        from bot.serve import loop_parts
        from knowledge.models import lm_dir
        from training.refresh import TrainConfig, run_refresh

        rt = get_runtime()
        items = None
        if eval_file is not None:
            try:
                items = load_eval_file(eval_file)
            except (OSError, ValueError) as exc:
                err.print(f"[red]Cannot read the eval file:[/red] {exc}")
                raise typer.Exit(2) from None
        config = None
        if max_steps is not None or threads is not None:
            config = TrainConfig.from_settings(
                rt.settings,
                lm_dir(rt.settings.lm_path, rt.settings.data_dir),
                max_steps=max_steps,
                threads=threads,
            )
        report = run_refresh(
            loop_parts(rt),
            dry_run=dry_run,
            if_needed=if_needed,
            promote=not no_promote,
            eval_items=items,
            config=config,
            progress=True,
        )
        console.print(report.message)
        if report.counts:
            console.print_json(json.dumps(report.counts, default=str))
        for sample in report.samples:
            prompt = sample["prompt"][-1]["content"]
            console.print(f"[dim]--- {sample['origin']} ({sample['answer_id']})[/dim]")
            console.print(f"[dim]{_tail(prompt, 300)}[/dim]", markup=False, highlight=False)
            console.print(f"=> {sample['completion']}", markup=False, highlight=False)
        if report.train:
            t = report.train
            console.print(
                f"trained in {t['seconds']}s, {t['examples_per_s']} examples/s: SFT {t['sft_steps']} steps "
                f"(loss {t['sft_loss']}), DPO {t['dpo_steps']}, KTO {t['kto_steps']}"
            )
        if report.candidate and report.baseline:
            console.print(_metrics_table(report.baseline, report.candidate))
        for reason in report.reasons:
            console.print(f"  {reason}")

    @adapters.command("list")
    def list_adapters() -> None:
        """Adapter versions with status, parent, data size and gate metrics."""
        rows = get_runtime().store.list_adapters()
        table = Table(title=f"{len(rows)} adapter versions")
        for col in ("version", "status", "created", "parent", "examples", "f1", "grounded", "path"):
            table.add_column(col)
        for a in rows:
            cand = (a.metrics or {}).get("candidate") or {}
            counts = (a.manifest or {}).get("data", {}).get("counts", {})
            table.add_row(
                a.version,
                a.status,
                f"{a.created_at:%Y-%m-%d %H:%M}",
                a.parent or "-",
                str(counts.get("sft_train", "-")),
                _fmt(cand.get("f1")),
                _fmt(cand.get("grounded")),
                a.path,
                style="bold" if a.status == "active" else None,
            )
        console.print(table)

    @adapters.command()
    def promote(version: Annotated[str, typer.Argument(help="Version to serve, e.g. v3.")]) -> None:
        """Serve VERSION from now on (running servers switch within seconds)."""
        from training.registry import AdapterRegistry

        rt = get_runtime()
        try:
            AdapterRegistry(rt.store, rt.settings.adapters_root).promote(version)
        except StoreError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        console.print(f"{version} is now active.")

    @adapters.command()
    def rollback() -> None:
        """Go back to the adapter that was active before the current one (or the base model)."""
        from training.registry import AdapterRegistry

        rt = get_runtime()
        try:
            target = AdapterRegistry(rt.store, rt.settings.adapters_root).rollback()
        except StoreError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
        console.print(f"Now serving {target or 'the base model'}.")

    @feedback.command()
    def review(
        approve: Annotated[
            list[int] | None, typer.Option("--approve", help="Approve this feedback id.")
        ] = None,
        reject: Annotated[list[int] | None, typer.Option("--reject", help="Reject this feedback id.")] = None,
    ) -> None:
        """Review pending corrections: interactively, or with --approve ID / --reject ID."""
        rt = get_runtime()
        if approve or reject:
            ok = all(
                [_decide(rt, fid, True) for fid in approve or []]
                + [_decide(rt, fid, False) for fid in reject or []]
            )
            raise typer.Exit(0 if ok else 2)
        pending = rt.store.list_feedback(correction_status="pending")
        if not pending:
            console.print("No pending corrections.")
            return
        for row in pending:
            _show(rt, row)
            choice = typer.prompt("[a]pprove / [r]eject / [s]kip / [q]uit", default="s").strip().lower()[:1]
            if choice == "q":
                break
            if choice in ("a", "r"):
                _decide(rt, row.id, choice == "a")


def _decide(rt: Runtime, feedback_id: int, approve: bool) -> bool:
    from training.corrections import approve_correction, reject_correction

    try:
        if approve:
            _, report = approve_correction(rt.store, rt.ingestor, rt.settings, feedback_id)
            console.print(f"#{feedback_id} approved; added to the knowledge base ({report.summary()})")
            return bool(report.ok)
        reject_correction(rt.store, rt.ingestor, rt.settings, feedback_id)
        console.print(f"#{feedback_id} rejected")
        return True
    except (StoreError, ValueError) as exc:
        err.print(f"[red]#{feedback_id}: {exc}[/red]")
        return False


def _show(rt: Runtime, row: FeedbackRow) -> None:
    answer = rt.store.get_answer(row.answer_id)
    from rich.markup import escape

    # user text is escaped: a "[red]" typed in Slack must not turn into terminal markup
    console.rule(escape(f"#{row.id} by {row.user_id} on {row.platform}, {row.updated_at:%Y-%m-%d %H:%M}"))
    if answer is not None:
        console.print(f"[bold]Q:[/bold] {escape(answer.question)}", highlight=False)
        console.print(f"[bold]A:[/bold] {escape(answer.answer)}", highlight=False)
    console.print(f"[bold]Correction:[/bold] {escape(row.correction or '')}", highlight=False)


def _tail(text: str, n: int) -> str:
    return text if len(text) <= n else "..." + text[-n:]


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def _metrics_table(baseline: dict[str, Any], candidate: dict[str, Any]) -> Table:
    table = Table(title="gate: held-out questions")
    for col in ("metric", baseline.get("adapter", "active"), candidate.get("adapter", "candidate")):
        table.add_column(str(col))
    for name in ("f1", "fact_rate", "grounded", "abstention", "heldout_loss", "questions", "seconds"):
        table.add_row(name, _fmt(baseline.get(name)), _fmt(candidate.get(name)))
    return table
