"""The `kbot` command line: ingest documents, ask, chat, serve the web chat and bots, and more."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bot.cli.training import register as register_training
from bot.cli.users import register as register_users
from bot.core.errors import ConfigError, KbotError
from bot.core.logs import configure_logging
from bot.core.settings import Settings, load_settings, unknown_variables
from bot.core.types import DEFAULT_SCOPE, Answer, Feedback, Question, Turn
from bot.wiring import Runtime

app = typer.Typer(
    help="kbot: a self-hosted knowledge assistant that answers from your documents with citations.\n\n"
    "Settings come from KBOT_* environment variables or a .env file (see `kbot config`).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)
log = logging.getLogger("bot.cli")
_runtime: Runtime | None = None
_settings: Settings | None = None


def settings() -> Settings:
    """The settings of this command (loaded once; a bad value is a ConfigError naming the variable)."""
    global _settings
    if _runtime is not None:
        return _runtime.settings
    if _settings is None:
        _settings = load_settings()
    return _settings


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(settings())
    return _runtime


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Logs go to stderr: Rich at a terminal, JSON lines otherwise (KBOT_LOG_FORMAT overrides).
    configure_logging(verbose=verbose, fmt=settings().log_format)
    for warning in unknown_variables():
        log.warning(warning)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # e.g. the tokenizer's length warning when the splitter counts tokens
    hf_logging.disable_progress_bar()


# --- knowledge ---------------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (walked recursively).")],
    scope: Annotated[str, typer.Option(help="Knowledge scope of these documents.")] = DEFAULT_SCOPE,
    prune: Annotated[bool, typer.Option(help="Forget documents under these folders whose file is gone.")] = False,
) -> None:
    """Ingest documents (Markdown, text, HTML, PDF, DOCX, CSV). Unchanged files are not re-embedded."""
    report = runtime().ingestor.ingest_paths(paths, scope=scope, prune=prune, progress=sys.stderr.isatty())
    table = Table(title="Ingestion summary")
    for col in ("result", "count", "details"):
        table.add_column(col)
    table.add_row("added", str(len(report.added)), "")
    table.add_row("updated", str(len(report.updated)), "")
    table.add_row("unchanged", str(len(report.unchanged)), "")
    table.add_row("removed", str(len(report.removed)), "")
    table.add_row("skipped", str(len(report.skipped)), "\n".join(f"{Path(s).name}: {r}" for s, r in report.skipped))
    table.add_row("failed", str(len(report.failed)), "\n".join(f"{Path(s).name}: {r}" for s, r in report.failed),
                  style="red" if report.failed else None)
    console.print(table)
    console.print(report.summary())
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def docs() -> None:
    """List ingested documents with their chunk counts, scope and status."""
    rows = runtime().store.list_documents()
    table = Table(title=f"{len(rows)} documents")
    for col in ("title", "source", "scope", "chunks", "status", "ingested"):
        table.add_column(col)
    for d in rows:
        status = d.status if not d.error else f"{d.status}: {d.error}"
        table.add_row(d.title, d.source, d.scope, str(d.chunk_count), status, f"{d.ingested_at:%Y-%m-%d %H:%M}")
    console.print(table)


@app.command()
def forget(
    source: Annotated[str, typer.Argument(help="The document's source (path or URL) as `kbot docs` shows.")],
) -> None:
    """Remove a document and its chunks from the knowledge base."""
    removed = runtime().ingestor.forget(source)
    if removed < 0:
        err.print(f"[red]No document with source {source!r}[/red] (see `kbot docs`).")
        raise typer.Exit(2)
    console.print(f"Forgot {source} ({removed} chunks).")


# --- asking ------------------------------------------------------------------------------------------
def _scopes(scope: list[str] | None) -> tuple[str, ...]:
    return tuple(scope) if scope else (DEFAULT_SCOPE,)


def print_sources(answer: Answer) -> None:
    for i, c in enumerate(answer.citations, 1):
        where = f", {c.location}" if c.location else ""
        console.print(f"  [dim][{i}] {c.title}{where} ({c.source})[/dim]")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    scope: Annotated[list[str] | None, typer.Option(help="Scopes to answer from (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Ask one question and print the answer with its sources."""
    answer = runtime().engine.answer(Question(question, platform="cli", scopes=_scopes(scope)))
    if as_json:
        print(json.dumps(answer.to_dict(), ensure_ascii=False))
        return
    console.print(answer.text)
    print_sources(answer)


@app.command()
def chat(scope: Annotated[list[str] | None, typer.Option(help="Scopes to answer from.")] = None) -> None:
    """Chat in the terminal: answers stream in; rate each one (+ / - / c for a correction)."""
    rt = runtime()
    history: list[Turn] = []
    console.print("Ask a question (empty line or Ctrl-D to quit).")
    while True:
        try:
            text = console.input("[bold]you>[/bold] ").strip()
        except (EOFError, KeyboardInterrupt):
            break
        if not text:
            break
        question = Question(text, platform="cli", channel_id="terminal", thread_id=str(os.getpid()),
                            scopes=_scopes(scope), history=tuple(history))
        answer = None
        console.print("[bold]kbot>[/bold] ", end="")
        for item in rt.engine.stream(question):
            if isinstance(item, Answer):
                answer = item
            else:
                console.print(item, end="", markup=False, highlight=False)
        assert answer is not None
        console.print()
        if answer.mode != "generated":
            console.print(f"[bold]kbot ({answer.mode})>[/bold] {answer.text}", markup=True, highlight=False)
        print_sources(answer)
        history += [Turn("user", text), Turn("assistant", answer.text)]
        rating = console.input("[dim]rate: + / - / c(orrect) / enter to skip[/dim] ").strip().lower()
        if rating in ("+", "-"):
            rt.engine.record_feedback(Feedback(answer.answer_id, "local", 1 if rating == "+" else -1, verified=True))
        elif rating.startswith("c"):
            fix = console.input("correction> ").strip()
            if fix:
                rt.engine.record_feedback(Feedback(answer.answer_id, "local", -1, correction=fix, verified=True))


# --- serving -----------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default KBOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KBOT_PORT).")] = None,
) -> None:
    """Serve the web chat; also start the Slack and Discord bots when their tokens are set."""
    from bot.serve import serve as run_server

    run_server(runtime(), host=host, port=port)


@app.command("eval")
def eval_command(
    file: Annotated[Path, typer.Argument(help="JSONL: question, answer, sources?, answerable?, fact?, history?")],
    k: Annotated[int, typer.Option("--k", help="Chunks retrieved per question (hit@k).")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    scope: Annotated[list[str] | None, typer.Option(help="Scopes to answer from.")] = None,
    adapter: Annotated[str | None, typer.Option(help="Evaluate this adapter version instead of the active one.")]
    = None,
    min_hit_at_k: Annotated[float | None, typer.Option(help="Exit 1 when hit@k is below this.")] = None,
    min_f1: Annotated[float | None, typer.Option(help="Exit 1 when answer F1 is below this.")] = None,
) -> None:
    """Measure retrieval (hit@1/3/k, MRR) and answers (F1, key fact, modes, abstention, latency)."""
    from bot.engine.evaluation import evaluate
    from bot.engine.scoring import load_eval_file

    try:
        items = load_eval_file(file)
    except (OSError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    rt = runtime()
    if adapter:
        from training.evaluate import load_version

        version = None if adapter == "base" else adapter
        load_version(rt.store, rt.generator, version)
        rt.generator.set_adapter(version)
    from rich.progress import Progress

    with Progress(console=err, disable=as_json or not sys.stderr.isatty()) as bar:
        task = bar.add_task("evaluating", total=len(items))
        report = evaluate(rt.engine, items, k=k, scopes=_scopes(scope), on_item=lambda _: bar.advance(task))
    summary = report["summary"]
    if as_json:
        print(json.dumps(report, ensure_ascii=False))
    else:
        _print_eval(report)
    failed = []
    if min_hit_at_k is not None and (summary["hit@k"] or 0.0) < min_hit_at_k:
        failed.append(f"hit@{k} {summary['hit@k'] or 0:.3f} < {min_hit_at_k}")
    if min_f1 is not None and summary["f1"] < min_f1:
        failed.append(f"F1 {summary['f1']:.3f} < {min_f1}")
    if failed:
        err.print("[red]Below threshold:[/red] " + "; ".join(failed))
        raise typer.Exit(1)


def _print_eval(report: dict) -> None:
    items = Table(title="Per question")
    for col in ("question", "mode", "rank", "F1", "fact", "ms"):
        items.add_column(col)
    for r in report["items"]:
        f1 = "" if r["f1"] is None else f"{r['f1']:.2f}"
        fact = "" if r["fact"] is None else ("yes" if r["fact"] else "no")
        unanswerable = "" if r["answerable"] else " (unanswerable)"
        items.add_row(r["question"][:70] + unanswerable, r["mode"], str(r["rank"] or "-"), f1, fact,
                      str(r["latency_ms"]))
    console.print(items)
    s = report["summary"]
    total = Table(title=f"Summary ({s['questions']} questions: {s['answerable']} answerable, "
                        f"{s['unanswerable']} unanswerable)")
    total.add_column("metric")
    total.add_column("value")

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    for key in ("hit@1", "hit@3", "hit@k", "mrr", "f1", "fact_rate", "abstention_precision",
                "abstention_recall"):
        total.add_row(key.replace("@k", f"@{s['k']}"), fmt(s[key]))
    for mode, m in s["modes"].items():
        if m["count"]:
            total.add_row(f"mode {mode}", f"{m['share']:.0%} (fact in {fmt(m['fact_rate'])})")
    total.add_row("latency p50 / p95", f"{s['latency_p50_ms']:.0f} / {s['latency_p95_ms']:.0f} ms")
    console.print(total)


@app.command()
def slack() -> None:
    """Run only the Slack bot (Socket Mode with SLACK_APP_TOKEN, else HTTP at /slack/events)."""
    from bot.channels.slack.app import run_slack

    run_slack(runtime())


@app.command()
def discord() -> None:
    """Run only the Discord bot (needs DISCORD_TOKEN)."""
    from bot.channels.discord.bot import run_discord

    run_discord(runtime())


@app.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    table = Table(title="kbot settings (KBOT_* env vars / .env)")
    table.add_column("setting")
    table.add_column("value")
    from knowledge.urls import mask_url

    for key, value in settings().masked(mask_url).items():
        table.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    console.print(table)


register_training(app, runtime)
register_users(app, runtime)


def main() -> None:
    """The `kbot` entry point: a KbotError that escapes a command is one line on stderr, not a
    traceback; exit code 2 for a configuration problem (a missing token, a bad setting), else 1."""
    try:
        app()
    except KbotError as exc:
        err.print(f"kbot: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)


if __name__ == "__main__":
    main()
