"""The supervisor: runs one grading process per task (a submission, or one notebook of it)
and hands back its result.

:func:`grade_submission` is what the coordinator (:mod:`course_grading.grade`) runs in a
local thread or on a Dask worker. For one :class:`~course_grading.messages.GradingTask` it
makes a private scratch folder, starts a grading process
(:mod:`course_grading.grading_process`) on it with a time limit, and returns the
:class:`~course_grading.messages.GradingResult` that process wrote, checked on arrival; if
the process wrote none (it was killed, or it crashed), a failed result that says why.

Starting Python and importing nbgrader takes about as long as grading a short notebook.
So the grading processes are forked from a warm server process that imported all that
once (:mod:`multiprocessing`'s forkserver); each is still a fresh process that grades one
submission and exits. Inside a daemonic process (a Dask worker), which may not have
children of its own, each one is started with ``python -m course_grading.grading_process``.
"""
from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import pickle
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import sandbox
from .messages import GradingResult

#: Imported once by the warm server process that grading processes are forked from.
WARM_MODULES = ("course_grading.grading_process", "course_grading.gradebook_sync",
                "course_grading.verdicts", "course_grading.hidden_tests",
                "nbgrader.apps.autogradeapp", "nbgrader.api", "nbclient", "course_utils",
                "course_utils.checks", "course_utils.notebook_code")


@functools.cache
def _forkserver():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(WARM_MODULES))
    return context


def _warm_context():
    """The forkserver context (started on first use), or None inside a daemonic process."""
    if multiprocessing.current_process().daemon:
        return None
    return _forkserver()


def start_warm_server():
    """Start the warm server now, so that its imports overlap with the coordinator's setup."""
    if _warm_context() is not None:
        import multiprocessing.forkserver

        multiprocessing.forkserver.ensure_running()


def _forked_main(task_file, result_file, log_file, private_tmp):
    """Entry point of a grading process forked from the warm server: set up as
    ``subprocess`` would have (own session, output to the log, private TMPDIR), then grade."""
    from .grading_process import main

    os.setsid()
    sandbox.die_with_parent()
    log = os.open(log_file, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ["TMPDIR"] = private_tmp
    tempfile.tempdir = None  # the server may have looked it up already
    main(task_file, result_file, log_file)


def _run_grading_process(task_file, result_file, log_file, private_tmp, timeout):
    """Run one grading process to its end; returns (finished, exit code).

    ``finished`` is False when the process ran out of ``timeout`` seconds and was
    killed with everything it started in its session.
    """
    context = _warm_context()
    if context is not None:
        process = context.Process(target=_forked_main, args=(task_file, result_file, log_file, private_tmp))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.join()
            return False, process.exitcode
        return True, process.exitcode
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "course_grading.grading_process", task_file, result_file, log_file],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": private_tmp},
            start_new_session=True, preexec_fn=functools.partial(sandbox.die_with_parent, os.getpid()))
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return False, process.returncode
    return True, process.returncode


def grade_submission(task):
    """Autograde one submission (or its ``task.notebook``) in a grading process; never raises
    for the learner's faults.

    Parameters
    ----------
    task : messages.GradingTask

    Returns
    -------
    messages.GradingResult
    """
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="course-grade-", dir=task.scratch_root) as scratch:
        os.chmod(scratch, 0o711)
        task_file = os.path.join(scratch, "task.pickle")
        result_file = os.path.join(scratch, "result.pickle")
        log_file = os.path.join(scratch, "autograde.log")
        # The scratch folder is passable (0711) so that the sandbox user reaches its runtime
        # folder; what it holds (the learner's files, the assignment's definitions) is the
        # instructor's alone.
        write_private(task_file, pickle.dumps(task))
        private_tmp = os.path.join(scratch, "tmp")
        os.mkdir(private_tmp, 0o700)
        Path(log_file).touch(mode=0o600)
        finished, exit_code = _run_grading_process(task_file, result_file, log_file, private_tmp, task.timeout)
        log_tail = Path(log_file).read_text(errors="replace")[-5000:]
        if not finished:
            result = GradingResult.failed(task, f"did not finish within {task.timeout:g} s (an endless loop "
                                                "or a hang that ignored the cell time limit)", log_tail=log_tail)
        elif not os.path.exists(result_file):
            error = last_exception(log_tail)
            result = GradingResult.failed(task, f"the grading process stopped (exit code {exit_code})"
                                                + (f": {error}" if error else ""), log_tail=log_tail)
        else:
            result = _read_result(result_file, task, log_tail)
    return result.timed(time.monotonic() - started)


def _read_result(result_file, task, log_tail):
    """The grading process's result, checked: the grading process read learner files."""
    try:
        with open(result_file, "rb") as stream:
            result = GradingResult.from_plain(pickle.load(stream), task)
    except Exception as error:  # MessageError, or a file that is not a pickle: a failure, never a grade
        return GradingResult.failed(task, f"the grading process's result is unusable: {error}", log_tail=log_tail)
    if result.status == "failed" and not result.log_tail:
        result = GradingResult.failed(task, result.reason, log_tail=log_tail, notes=result.notes)
    return result


def write_private(path, content):
    """Write a new file that only the instructor may read."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as stream:
        stream.write(content)


def last_exception(log_text):
    """The last 'SomeError: message' line of a log, or None."""
    exceptions = re.findall(r"^\s*([A-Za-z_.]*(?:Error|Exception)\b[^\n]*)$", log_text, re.MULTILINE)
    return exceptions[-1].strip()[:300] if exceptions else None
