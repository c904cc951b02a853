"""Interrupted tools: Ctrl-C and SIGTERM end a tool with one line, after the clean-up of its ``finally`` clauses.

Why this exists: Python ends a process at SIGTERM (``kill``, a scheduler's time limit, ``timeout``) without
running any ``finally``, so the atomic writer's temporary file (:mod:`.fileio`) stayed next to a converted
checkpoint or a restored image; and Ctrl-C printed a ``KeyboardInterrupt`` traceback from deep inside torch or a
thread pool. Here SIGTERM raises :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so both
signals take the same path: the clean-up runs, then one line says what is kept and how to go on.
"""
from __future__ import annotations

import atexit
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


def _rank_of_many() -> Optional[int]:
    """This process's rank (``RANK``) in a run of more than one process (``WORLD_SIZE`` > 1), else None."""
    try:
        return int(os.environ['RANK']) if int(os.environ.get('WORLD_SIZE', '1')) > 1 else None
    except (KeyError, ValueError):
        return None


#: What rank 0 of a multi-process run says at SIGTERM: the launcher (torchrun, srun --kill-on-bad-exit) also stops
#: the other processes with it when one of them fails, after that one's own line.
LAUNCHER_SIGTERM = 'stopped (SIGTERM, by you or by the launcher after another process failed; see its line above)'


def interrupt_line(signal_name: str, kept: str) -> Optional[str]:
    """The one line of a tool stopped by ``signal_name`` ('Ctrl-C' or 'SIGTERM'), or None for a process that stays
    quiet: in a run of several processes (torchrun, srun) the signal reaches every one, and only rank 0 speaks."""
    rank = _rank_of_many()
    if rank is None:
        return f'interrupted ({signal_name}): {kept}'
    if rank != 0:
        return None
    return f'{LAUNCHER_SIGTERM if signal_name == "SIGTERM" else "interrupted (Ctrl-C)"}: {kept}'


def _quiet_exit() -> None:
    """At the exit of an interrupted tool (atexit): a second Ctrl-C or SIGTERM (torchrun forwards the one it got)
    waits, and torch's DataLoader SIGCHLD handler no longer raises 'DataLoader worker (pid N) is killed by signal'
    when multiprocessing joins the workers that the same signal stopped (a traceback after the line)."""
    for signum, handler in ((signal.SIGTERM, signal.SIG_IGN), (signal.SIGINT, signal.SIG_IGN),
                            (getattr(signal, 'SIGCHLD', None), signal.SIG_DFL)):
        if signum is not None:
            with contextlib.suppress(ValueError):  # not the main thread
                signal.signal(signum, handler)


@contextlib.contextmanager
def one_line_interrupts(kept: str) -> Iterator[None]:
    """Ctrl-C or SIGTERM inside the block: ``interrupted (Ctrl-C): <kept>`` on stderr and exit status 130 (143 for
    SIGTERM) instead of a traceback; ``PANET_MM_DEBUG=1`` shows the traceback. In a run of several processes only
    rank 0 says it (:func:`interrupt_line`).

    Args:
        kept (str): What the interrupted tool leaves and how to go on, e.g. ``'nothing was written; run it
            again'``.
    """
    with terminate_as_interrupt():
        try:
            yield
        except (KeyboardInterrupt, Exception) as err:
            signal_name = interrupting_signal(err)
            if signal_name is None or os.environ.get('PANET_MM_DEBUG'):
                raise
            atexit.unregister(_quiet_exit)  # once, and after multiprocessing's, so that it runs before it
            atexit.register(_quiet_exit)
            # the clean-up is done: a second signal (torchrun forwards the one it got) waits for the line
            previous = {}
            for signum in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(ValueError):  # not the main thread
                    previous[signum] = signal.signal(signum, signal.SIG_IGN)
            line = interrupt_line(signal_name, kept)
            if line is not None:
                print(line, file=sys.stderr, flush=True)
            try:
                raise SystemExit(EXIT_TERMINATED if signal_name == 'SIGTERM' else EXIT_INTERRUPTED) from None
            finally:  # (a caller that goes on after SystemExit, e.g. a test, gets its handlers back)
                for signum, handler in previous.items():
                    if handler is not None:  # (None: not set from Python)
                        signal.signal(signum, handler)


#: torch's DataLoader, when a signal to the whole process group (Ctrl-C, ``timeout``, a scheduler) reached its
#: workers first: "DataLoader worker (pid 13121) is killed by signal: Terminated."
_WORKER_KILLED = re.compile(r'DataLoader worker \(pid [^)]*\) is killed by signal: (Terminated|Interrupt)')


def interrupting_signal(err: Optional[BaseException]) -> Optional[str]:
    """'Ctrl-C' or 'SIGTERM' when ``err`` is how that signal stopped the work, else None.

    The exceptions ``err`` was raised while handling count too: a library that catches everything turns the
    interrupt into its own error (mmengine's ``Config.pretty_text``, which formats the config into every
    checkpoint, answers a ``KeyboardInterrupt`` inside yapf with "SyntaxError: Failed to format the config file"
    and the whole config).
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, Terminated):
            return 'SIGTERM'
        if isinstance(err, KeyboardInterrupt):
            return 'Ctrl-C'
        found = _WORKER_KILLED.search(str(err))
        if found is not None:
            return 'SIGTERM' if found.group(1) == 'Terminated' else 'Ctrl-C'
        err = err.__cause__ or err.__context__
    return None


__all__ = ['EXIT_INTERRUPTED', 'EXIT_TERMINATED', 'LAUNCHER_SIGTERM', 'RERUN_DOES_THE_REST', 'Terminated',
           'interrupt_line', 'interrupting_signal', 'one_line_interrupts', 'terminate_as_interrupt']
