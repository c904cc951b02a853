"""Interrupted tools: Ctrl-C and SIGTERM end a tool with one line, after the clean-up of its ``finally`` clauses.

Why this exists: Python ends a process at SIGTERM (``kill``, a scheduler's time limit, ``timeout``) without
running any ``finally``, so the atomic writer's temporary file (:mod:`.fileio`) stayed next to a converted
checkpoint or a restored image; and Ctrl-C printed a ``KeyboardInterrupt`` traceback from deep inside torch or a
thread pool. Here SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so both
signals take the same path: the clean-up runs, then one line says what is kept and how to go on.
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
from typing import Any, Iterator, Optional

#: Exit statuses of a tool stopped by Ctrl-C (SIGINT) or SIGTERM, as a shell reports a process they killed.
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


#: What an interrupted tool that skips finished outputs on a rerun (the dataset converters) says.
RERUN_DOES_THE_REST = 'finished files are kept (none half-written); run the same command again to do the rest'


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt`` so that the same clean-up runs."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextlib.contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: unchanged, as Python
    only lets the main thread set handlers); the previous handler is put back afterwards."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _distributed_peer() -> bool:
    """A rank of a multi-process run: torchrun stops the others with SIGTERM when one fails, and that one says why."""
    try:
        return int(os.environ.get('WORLD_SIZE', '1')) > 1
    except ValueError:
        return False


@contextlib.contextmanager
def one_line_interrupts(kept: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block: ``interrupted (Ctrl-C): <kept>`` on stderr and exit status 130 (143 for
    SIGTERM) instead of a traceback; ``PANET_MM_DEBUG=1`` shows the traceback.

    Args:
        kept (str): What the interrupted tool leaves and how to go on, e.g. ``'nothing was written; run it
            again'``.
    """
    with terminate_as_interrupt():
        try:
            yield
        except (KeyboardInterrupt, RuntimeError) as err:
            signal_name = interrupting_signal(err)
            if signal_name is None or os.environ.get('PANET_MM_DEBUG'):
                raise
            with contextlib.suppress(ValueError):  # the clean-up is done: a second SIGTERM waits for this line
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if not (signal_name == 'SIGTERM' and _distributed_peer()):
                print(f'interrupted ({signal_name}): {kept}', file=sys.stderr, flush=True)
            raise SystemExit(EXIT_TERMINATED if signal_name == 'SIGTERM' else EXIT_INTERRUPTED) from None


#: torch's DataLoader, when a signal to the whole process group (Ctrl-C, ``timeout``, a scheduler) reached its
#: workers first: "DataLoader worker (pid 13121) is killed by signal: Terminated."
_WORKER_KILLED = re.compile(r'DataLoader worker \(pid [^)]*\) is killed by signal: (Terminated|Interrupt)')


def interrupting_signal(err: BaseException) -> Optional[str]:
    """'Ctrl-C' or 'SIGTERM' when ``err`` is how that signal stopped the work, else None."""
    if isinstance(err, Terminated):
        return 'SIGTERM'
    if isinstance(err, KeyboardInterrupt):
        return 'Ctrl-C'
    found = _WORKER_KILLED.search(str(err))
    return None if found is None else ('SIGTERM' if found.group(1) == 'Terminated' else 'Ctrl-C')


__all__ = ['EXIT_INTERRUPTED', 'EXIT_TERMINATED', 'RERUN_DOES_THE_REST', 'Terminated', 'interrupting_signal',
           'one_line_interrupts', 'terminate_as_interrupt']
