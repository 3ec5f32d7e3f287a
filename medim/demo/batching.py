"""The demo's queue: one worker generates, and requests that wait meanwhile are answered together.

The web page hands each request to `RequestBatcher.submit` and reads its `Job`'s
updates (progress and the newest denoising state) until the answer arrives. The
worker takes every waiting request, up to `max_batch`, as one call of
`DemoService.answer`, which generates requests with equal settings as one batch;
as each sample draws from its own seed, batching changes nobody's result, only
how long the others wait. The model runs one batch at a time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from medim.demo.frames import SampleStates
from medim.demo.requests import DemoRequest, DemoResult
from medim.demo.service import DemoService

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Progress:
    """An update while a request is generated: the share of its positions revealed and its newest states."""

    fraction: float
    image: np.ndarray | None
    report: str | None
    states: int


class Job:
    """One submitted request: its updates, then its result."""

    def __init__(self, request: DemoRequest) -> None:
        self.request = request
        self.result: DemoResult | None = None
        self._updates: queue.Queue[Progress | DemoResult] = queue.Queue()

    def updates(self) -> Iterator[Progress]:
        """The progress updates as they come, until the result is set (then `self.result` holds it)."""
        while True:
            update = self._updates.get()
            if isinstance(update, DemoResult):
                self.result = update
                return
            yield update

    def wait(self) -> DemoResult:
        """Block until the result is there (skipping the updates)."""
        for _ in self.updates():
            pass
        assert self.result is not None
        return self.result

    def push_progress(self, states: SampleStates) -> None:
        """Add an update from the newest of `states` (the worker calls this)."""
        self._updates.put(
            Progress(
                states.progress[-1],
                states.images[-1] if states.images else None,
                states.reports[-1] if states.reports else None,
                len(states.progress),
            )
        )

    def finish(self, result: DemoResult) -> None:
        """Hand over the result (the worker calls this)."""
        self._updates.put(result)


class RequestBatcher:
    """Runs `service` on a worker thread over the waiting requests (module docstring).

    `gather_seconds`: how long an idle worker waits after a first request for others sent at the same moment.
    """

    def __init__(self, service: DemoService, max_batch: int = 8, gather_seconds: float = 0.05) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.service, self.max_batch, self.gather_seconds = service, max_batch, gather_seconds
        self._waiting: list[Job] = []
        self._ready = threading.Condition()
        self.batch_sizes: list[int] = []  # how many requests each worker call answered (for the log and tests)
        self._worker = threading.Thread(target=self._work, name="medim-demo-worker", daemon=True)
        self._worker.start()

    def submit(self, request: DemoRequest) -> Job:
        """Queue `request`; read the returned job's updates for its progress and result."""
        job = Job(request)
        with self._ready:
            self._waiting.append(job)
            self._ready.notify()
        return job

    def _work(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: bool(self._waiting))
            time.sleep(self.gather_seconds)
            with self._ready:
                jobs, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
            self._answer(jobs)

    def _answer(self, jobs: list[Job]) -> None:
        """Answer the jobs taken together, each with its own result (an error message if all else fails)."""
        self.batch_sizes.append(len(jobs))
        logger.info("demo: answering %d waiting request(s) together", len(jobs))
        try:
            results = self.service.answer(
                [job.request for job in jobs], on_state=lambda index, states: jobs[index].push_progress(states)
            )
        except Exception as exc:  # noqa: BLE001 - answer() catches its own; this guards the worker itself
            logger.exception("demo worker failed")
            results = [DemoResult(error=f"the demo's worker failed ({type(exc).__name__}: {exc})")] * len(jobs)
        for job, result in zip(jobs, results):
            job.finish(result)
