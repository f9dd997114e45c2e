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

from bot.settings import Settings
from bot.types import DEFAULT_SCOPE, Answer, Feedback, Question, Turn
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
_runtime: Runtime | None = None


def runtime() -> Runtime:
    global _runtime
    if _runtime is None:
        _runtime = Runtime(Settings())
    return _runtime


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)])
    for noisy in ("httpx", "chromadb", "sentence_transformers", "urllib3", "alembic", "LiteLLM"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
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
def forget(source: Annotated[str, typer.Argument(help="The document's source (path or URL) as `kbot docs` shows.")]) -> None:
    """Remove a document and its chunks from the knowledge base."""
    removed = runtime().ingestor.forget(source)
    if removed < 0:
        err.print(f"[red]No document with source {source!r}[/red] (see `kbot docs`).")
        raise typer.Exit(2)
    console.print(f"Forgot {source} ({removed} chunks).")


# --- asking ------------------------------------------------------------------------------------------
def _scopes(scope: list[str] | None) -> tuple[str, ...]:
    return tuple(scope) if scope else (DEFAULT_SCOPE,)


def answer_json(answer: Answer) -> dict:
    return {
        "answer": answer.text,
        "answered": answer.answered,
        "mode": answer.mode,
        "answer_id": answer.answer_id,
        "latency_ms": answer.latency_ms,
        "standalone_query": answer.standalone_query,
        "adapter_version": answer.adapter_version,
        "citations": [{"source": c.source, "title": c.title, "page": c.page, "heading": c.heading,
                       "url": c.url, "text": c.text, "score": c.score} for c in answer.citations],
    }


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
        print(json.dumps(answer_json(answer), ensure_ascii=False))
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
            rt.engine.record_feedback(Feedback(answer.answer_id, "local", 1 if rating == "+" else -1))
        elif rating.startswith("c"):
            fix = console.input("correction> ").strip()
            if fix:
                rt.engine.record_feedback(Feedback(answer.answer_id, "local", -1, correction=fix))


# --- serving -----------------------------------------------------------------------------------------
@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default KBOT_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default KBOT_PORT).")] = None,
) -> None:
    """Serve the web chat; also start the Slack and Discord bots when their tokens are set."""
    from bot.serve import serve as run_server

    run_server(runtime(), host=host, port=port)


@app.command()
def config() -> None:
    """Print the effective settings (secrets masked)."""
    table = Table(title="kbot settings (KBOT_* env vars / .env)")
    table.add_column("setting")
    table.add_column("value")
    for key, value in runtime().settings.masked().items():
        table.add_row(key, json.dumps(value, default=str) if not isinstance(value, str) else value)
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
