"""What training does when something goes wrong: a stop signal, a non-finite loss or gradient.

Signals: while the training loop runs, SIGTERM and SIGINT (Ctrl-C) only ask it to stop; the step in
progress finishes, a checkpoint of it is saved, and `train` raises `TrainingInterrupted` (a
KeyboardInterrupt), which `medim train` turns into exit status 128 + the signal number (130 for
SIGINT, 143 for SIGTERM) and a line saying how to resume. A second Ctrl-C stops at once, without a
checkpoint. With several processes the request is shared at every step, so all stop at the same step.

Non-finite steps (`train.nonfinite`): `skip` leaves the weights and optimizer untouched for that step
(the learning-rate schedule moves on), counts it in the log and the checkpoint, and gives up after
`NONFINITE_GIVE_UP` skipped steps in a row; `stop` raises `NonFiniteLossError` naming the step and the
samples. With fp16 a non-finite gradient under a finite loss is the loss scaler's business (it skips
the step and lowers the scale, counted as `overflow_skipped`), as in any fp16 training.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from medim.errors import MedimError

#: Consecutive skipped non-finite steps after which `train.nonfinite: skip` stops the run.
NONFINITE_GIVE_UP = 25


class NonFiniteLossError(MedimError):
    """A non-finite loss or gradient under `train.nonfinite: stop` (or too many in a row under `skip`)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on a signal after saving a checkpoint of the step it had reached."""

    def __init__(self, signum: int, step: int, run_dir: Path, checkpoint: Path | None) -> None:
        self.signum = signum
        self.step = step
        self.run_dir = run_dir
        self.checkpoint = checkpoint
        super().__init__(f"{signal_name(signum)} at step {step}")

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it (130 SIGINT, 143 SIGTERM)."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopRequests:
    """While entered, SIGTERM and SIGINT set `requested` instead of ending the process (main thread only)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.requested: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequests:
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested is not None and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without a checkpoint
        self.requested = self.requested or signum


def describe_rows(rows: Sequence[int], limit: int = 64) -> str:
    """`[3, 17, 42]` (at most `limit`, then how many more)."""
    rows = list(rows)
    shown = ", ".join(map(str, rows[:limit]))
    return f"[{shown}{f', ... {len(rows) - limit} more' if len(rows) > limit else ''}]"
