"""Run the `medim` command line in this process, stopping it on cue (for kill-and-resume tests).

    python train_driver.py --at 4 --signal KILL -- train quickstart ...      # the signal at the start of step index 4
    python train_driver.py --kill-in-checkpoint 6 -- train quickstart ...    # SIGKILL once step 6's files are written,
                                                                             # before its commit marker
    python train_driver.py --clock-jump-at 4 -- train quickstart ...         # the trainer's clock jumps a day ahead
                                                                             # at the start of step index 4
                                                                             # (train.max_minutes runs out there)

Under `accelerate launch` every process runs the driver; `--rank R` applies the cue in process R only
(the RANK the launcher sets), which is how the tests check that one process's stop is every process's.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from types import SimpleNamespace

#: How far `--clock-jump-at` moves the trainer's clock: past any train.max_minutes a test sets.
CLOCK_JUMP_SECONDS = 24 * 3600.0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--at", type=int, help="0-based step index at whose start the signal is sent")
    parser.add_argument("--signal", default="KILL", choices=["KILL", "TERM", "INT"])
    parser.add_argument("--kill-in-checkpoint", type=int, help="SIGKILL while writing this step's checkpoint")
    parser.add_argument("--clock-jump-at", type=int, help="0-based step index at whose start the clock jumps a day")
    parser.add_argument("--rank", type=int, help="apply the cues in this process of a launch only (default: all)")
    args, rest = parser.parse_known_args()
    rest = rest[1:] if rest[:1] == ["--"] else rest

    from medim.training import trainer

    if args.rank is None or int(os.environ.get("RANK", "0")) == args.rank:
        _install_cues(trainer, args)

    from medim.cli import main as medim

    return medim(rest)


def _install_cues(trainer, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    """Patch the trainer of this process to signal, jump its clock or die on the cues asked for."""
    clock = SimpleNamespace(offset=0.0)
    if args.clock_jump_at is not None:
        trainer.time = SimpleNamespace(monotonic=lambda: time.monotonic() + clock.offset)
    if args.at is not None or args.clock_jump_at is not None:
        original_step = trainer._Session.step

        def step(self, index):  # type: ignore[no-untyped-def]
            if index == args.at:
                os.kill(os.getpid(), getattr(signal, f"SIG{args.signal}"))
            if index == args.clock_jump_at:
                clock.offset = CLOCK_JUMP_SECONDS
            return original_step(self, index)

        trainer._Session.step = step
    if args.kill_in_checkpoint is not None:
        original_write = trainer.write_checkpoint_files

        def write(tmp, *positional, **keywords):  # type: ignore[no-untyped-def]
            original_write(tmp, *positional, **keywords)
            if tmp.name.endswith(f"step_{args.kill_in_checkpoint:07d}"):
                os.kill(os.getpid(), signal.SIGKILL)

        trainer.write_checkpoint_files = write


if __name__ == "__main__":
    sys.exit(main())
