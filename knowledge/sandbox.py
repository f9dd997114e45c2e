"""Parse an untrusted binary document (PDF, DOCX) in a child process with a memory cap, so that a
file built to blow up a parser costs that child, not `kbot serve`. The child is spawned fresh for
each file (a process that hit its limit is not reused) and killed after a time limit."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool

from bot.core.errors import ReaderError
from knowledge.readers import ArchiveLimits, ReadResult, read_bytes

ISOLATED_SUFFIXES = (".pdf", ".docx")  # formats whose parsers decompress (text formats parse in-process)


def _limit_memory(megabytes: int) -> None:
    import resource

    cap = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


NEEDS_MEMORY = "the file needs more memory to parse than kbot allows (KBOT_PARSE_MEMORY_MB)"


def _parse(data: bytes, name: str, max_bytes: int | None, archive: ArchiveLimits) -> ReadResult:
    try:
        return read_bytes(data, name, max_bytes=max_bytes, archive=archive)
    except MemoryError:
        raise ReaderError(NEEDS_MEMORY) from None
    except ReaderError as exc:  # a C parser (lxml) reports the cap as its own "Out of memory" error
        if "out of memory" in str(exc).lower():
            raise ReaderError(NEEDS_MEMORY) from None
        raise


def read_isolated(data: bytes, name: str, *, max_bytes: int | None, archive: ArchiveLimits, memory_mb: int,
                  timeout_s: float = 300.0) -> ReadResult:
    """read_bytes in a spawned child limited to `memory_mb` of address space; ReaderError when the
    child runs out of memory, crashes or takes longer than `timeout_s`."""
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_limit_memory, initargs=(memory_mb,))
    try:
        return pool.submit(_parse, data, name, max_bytes, archive).result(timeout=timeout_s)
    except FutureTimeout:
        raise ReaderError(f"parsing the file took longer than {timeout_s:.0f} s") from None
    except BrokenProcessPool:
        raise ReaderError("parsing the file failed: the parser ran out of memory or crashed") from None
    finally:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
