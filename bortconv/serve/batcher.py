"""A small async batcher: requests that arrive together run as one call, sorted by length.

Each request puts its texts on a queue and awaits a future. One loop takes the first waiting request, then
keeps collecting for up to `max_wait_ms` or until `max_batch` texts are waiting, and hands the whole lot to
`run` in a single worker thread (one call at a time: an OpenVINO infer request or an ORT session serves
one call at a time, and two calls on 2 cores would only slow each other). `run` is BortRuntime's: it sorts the
merged texts by token count and pads each sub-batch of `batch_size` to its own longest text, so a short
request is not padded to a long neighbour's length. Results go back to each request's future in order.

With one request in flight it waits at most `max_wait_ms` extra; under load the wait is filled by the
previous call's run time anyway (requests queue while the worker runs).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bortconv.errors import InputError

log = logging.getLogger(__name__)

#: one text (second text None) or one pair, then what else its request asks of each text (fill-mask: top_k)
Item = tuple[Any, ...]


@dataclass
class _Pending:
    items: Sequence[Item]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


#: the longest a request may wait for others to share its call: a minute is already no service (inf hung them all)
MAX_WAIT_MS = 60_000.0


def check_batching(max_batch: int, max_wait_ms: float) -> None:
    """InputError naming the flags for a batch bound under 1 or a wait outside 0..MAX_WAIT_MS (NaN too)."""
    if max_batch < 1 or not 0 <= max_wait_ms <= MAX_WAIT_MS:
        raise InputError(f"--max-batch-size must be >= 1 and --max-wait-ms from 0 to {MAX_WAIT_MS:g}")


class LengthBatcher:
    """Merge concurrent requests into calls of ``run(items) -> one result per item`` (module docstring)."""

    def __init__(self, run: Callable[[list[Item]], list[Any]], *, max_batch: int = 64,
                 max_wait_ms: float = 5.0) -> None:
        check_batching(max_batch, max_wait_ms)
        self.run = run
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1e3
        self._queue: asyncio.Queue[_Pending] | None = None
        self._task: asyncio.Task | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="bortconv-infer")
        #: calls made and items run, for logs and tests
        self.calls = 0
        self.items_run = 0

    async def in_worker(self, fn: Callable[..., Any], *args: Any) -> Any:
        """fn(*args) in the worker thread, between calls (the runtime's tokenizer and session are used from that
        thread only)."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def submit(self, items: Sequence[Item]) -> list[Any]:
        """Run `items` (with whatever else arrives meanwhile); their results, in order."""
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._loop())
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(items, fut))
        return await fut

    async def _collect(self) -> list[_Pending]:
        queue: asyncio.Queue[_Pending] = self._queue  # type: ignore[assignment]  # set by the first submit
        batch = [await queue.get()]
        count, deadline = len(batch[0].items), time.perf_counter() + self.max_wait
        while count < self.max_batch:
            left = deadline - time.perf_counter()
            try:
                nxt = queue.get_nowait() if left <= 0 else await asyncio.wait_for(queue.get(), left)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            batch.append(nxt)
            count += len(nxt.items)
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            items = [it for p in batch for it in p.items]
            t0 = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._pool, self.run, items)
            except Exception as exc:  # the loop keeps serving
                if len(batch) == 1:
                    if not batch[0].future.done():
                        batch[0].future.set_exception(exc)
                else:  # one request's bad text must not fail the requests merged with it: each runs alone
                    await self._run_alone(batch)
                continue
            self.calls += 1
            self.items_run += len(items)
            log.debug("batched %d requests, %d items, ran in %.1f ms (oldest waited %.1f ms)", len(batch),
                      len(items), (time.perf_counter() - t0) * 1e3, (t0 - batch[0].queued) * 1e3)
            start = 0
            for p in batch:
                if not p.future.done():  # a client that went away cancelled its future
                    p.future.set_result(results[start:start + len(p.items)])
                start += len(p.items)

    async def _run_alone(self, batch: list[_Pending]) -> None:
        """Run each request of a failed call on its own: each gets its own result or its own error."""
        loop = asyncio.get_running_loop()
        for p in batch:
            if p.future.done():  # its client went away
                continue
            try:
                results = await loop.run_in_executor(self._pool, self.run, list(p.items))
            except Exception as exc:
                if not p.future.done():
                    p.future.set_exception(exc)
            else:
                self.calls += 1
                self.items_run += len(p.items)
                if not p.future.done():
                    p.future.set_result(results)

    def shutdown(self) -> None:
        """Stop the worker thread (after the server's event loop has ended: the loop task ends with it)."""
        self._pool.shutdown(wait=True)
