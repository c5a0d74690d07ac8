"""The learner's ``d_loss_by_d_model`` as the grading process calls it: in a sandbox.

:class:`LearnerFunction` starts :mod:`course_grading.learner_process` in the grading
sandbox with the learner's code cells, and is then called like the learner's function.
Each call sends the arrays over a pipe and returns a new dict of float64 arrays checked
on arrival (:mod:`course_grading.learner_protocol`), or raises for the learner's errors.
The grading process never runs learner code itself.

Failures are told apart by who is at fault:

- :class:`GradingMachineryError`: the learner process did not start (no ``Ready``); no
  learner code had run, so it is never counted against the learner;
- :class:`LearnerProcessFailure` (an ``AssertionError`` with a message for the learner):
  after learner code ran, the process crashed, ran out of time, or sent something that
  is not an answer; every later call fails the same way;
- :class:`course_utils.checks.LearnerCodeError`: the learner's function raised.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time

import psutil

from course_utils.diagnosis import CheckFailed, Mistake
from course_utils.learner_errors import LearnerCodeError

from . import learner_protocol as protocol
from .kernel_answers import unreadable_value
from .sandbox import GRADER_FILES_DIR, launcher_command

_HERE = os.path.dirname(os.path.abspath(__file__))
#: The learner process's two files, shown read-only in its sandbox at ``GRADER_FILES_DIR``.
_FILES = ("learner_process.py", "learner_protocol.py")


def process_tree_cpu_seconds(pid):
    """CPU seconds of process ``pid`` and every process it started, as the kernel counts them.

    Each live process counts its own time and that of its children that have finished (a
    finished process's time moves to its parent when the parent reaps it, so nothing is
    counted twice; in the sandbox's process namespace every orphan is reaped inside the
    tree). Returns 0.0 for a process that is gone.
    """
    try:
        root = psutil.Process(pid)
        processes = [root] + root.children(recursive=True)
    except psutil.Error:
        return 0.0
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
    return total


class GradingMachineryError(RuntimeError):
    """The grading itself failed (not the learner's code); the submission must be graded again."""


class LearnerProcessFailure(CheckFailed):
    """The process running the learner's function crashed, ran out of time or misbehaved;
    ``mistakes`` says which (NEVER_RETURNED, NOT_DEFINED or PROCESS_FAILED)."""


class LearnerFunction:
    """``d_loss_by_d_model`` of one learner, running in its own sandboxed process.

    Parameters
    ----------
    cells : list of str
        The learner's code cells (see ``course_utils.notebook_code.learner_cells``).
    function_cell : int
        Index of the cell that defines the function.
    settings : sandbox.SandboxSettings
    call_timeout : float
        Seconds a call may take (a safety limit against endless loops, far above what
        any correct gradient needs; it decides nothing else).

    Use as a context manager. ``last_cpu_seconds`` is the CPU time the learner's processes
    spent on the last call, as the operating system counts it (never as they report it).
    """

    name = "d_loss_by_d_model"

    def __init__(self, cells, function_cell, settings, *, call_timeout=60.0, start_timeout=120.0):
        self.cells, self.function_cell = list(cells), function_cell
        self.settings = settings
        self.call_timeout, self.start_timeout = call_timeout, start_timeout
        self.process = None
        self.failure = None  # (reason, mistake) once the process failed
        self.undefined = None
        self.last_cpu_seconds = None
        self.calls = 0

    # --- starting and stopping -----------------------------------------------------------

    def _command(self):
        if self.settings.enabled:
            entry = GRADER_FILES_DIR
            options = {"workdir": "/tmp/work",
                       "read_only_files": {os.path.join(_HERE, f): os.path.join(GRADER_FILES_DIR, f) for f in _FILES}}
        else:
            entry, options = _HERE, {}
        code = f"import sys; sys.path.insert(0, {entry!r}); import learner_process; learner_process.main()"
        return launcher_command(self.settings, [sys.executable, "-I", "-c", code], options)

    def __enter__(self):
        self._errors = tempfile.TemporaryFile()
        try:
            self.process = subprocess.Popen(self._command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=self._errors, start_new_session=True)
        except OSError as error:
            raise GradingMachineryError(f"the learner process could not be started: {error}") from None
        try:
            self._receive(protocol.Ready, deadline=time.monotonic() + self.start_timeout)
        except protocol.ProtocolError as error:
            message = self._error_text()
            self.__exit__()
            raise GradingMachineryError(f"the learner process did not start ({error}): {message}") from None
        # From here on learner code runs: whatever goes wrong is the learner's.
        try:
            protocol.send(self.process.stdin, protocol.LearnerCode(self.cells, self.function_cell, self.name))
            defined = self._receive(protocol.Defined, deadline=time.monotonic() + self.start_timeout)
            if not defined.defined:
                self.undefined = defined.error or f"the code does not define {self.name}"
        except (protocol.ProtocolError, OSError) as error:
            self._fail(f"the code in your cells stopped the process that runs {self.name} ({error})",
                       Mistake.PROCESS_FAILED)
        return self

    def _error_text(self):
        self._errors.seek(0, os.SEEK_END)
        size = self._errors.tell()
        self._errors.seek(max(0, size - 2000))
        return self._errors.read().decode("utf-8", "replace").strip() or "no message"

    def __exit__(self, *exc_info):
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, 9)
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
        self._errors.close()

    # --- calls ---------------------------------------------------------------------------

    def _receive(self, expected, deadline):
        message = protocol.receive(self.process.stdout.fileno(), deadline)
        if not isinstance(message, expected if isinstance(expected, tuple) else (expected,)):
            raise protocol.ProtocolError(f"a {type(message).__name__} message where a "
                                         f"{getattr(expected, '__name__', 'reply')} was due")
        return message

    def _cpu_seconds(self):
        return process_tree_cpu_seconds(self.process.pid)

    def _fail(self, reason, mistake):
        self.failure = (reason, mistake)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)
        raise LearnerProcessFailure(reason, [mistake])

    def __call__(self, model, data, wd_coefficient):
        self.calls += 1
        self.last_cpu_seconds = None
        if self.failure:
            raise LearnerProcessFailure(self.failure[0], [self.failure[1]])
        if self.undefined:
            raise LearnerProcessFailure(f"{self.undefined}.", [Mistake.NOT_DEFINED])
        try:
            call = protocol.GradientCall(model={k: model[k] for k in ("input_to_hid", "hid_to_class")},
                                         data={k: data[k] for k in ("inputs", "target")},
                                         wd_coefficient=float(wd_coefficient))
            cpu_before = self._cpu_seconds()
            protocol.send(self.process.stdin, call)
            reply = self._receive((protocol.GradientReply, protocol.ErrorReply),
                                  deadline=time.monotonic() + self.call_timeout)
        except protocol.OutOfTime:
            self._fail(f"{self.name} did not return within {self.call_timeout:g} s (an endless loop?), "
                       "so it is not called again", Mistake.NEVER_RETURNED)
        except protocol.ChannelClosed:
            self._fail(f"the process running {self.name} stopped while computing a gradient (it crashed, "
                       "ran out of memory or was killed)", Mistake.PROCESS_FAILED)
        except (protocol.ProtocolError, OSError) as error:
            self._fail(f"the process running {self.name} sent something that is not an answer ({error})",
                       Mistake.PROCESS_FAILED)
        self.last_cpu_seconds = self._cpu_seconds() - cpu_before
        if isinstance(reply, protocol.ErrorReply):
            raise LearnerCodeError(reply.type_name, reply.message, reply.line)
        if reply.returned != "dict":
            return None if reply.returned == "NoneType" else unreadable_value(reply.returned)
        return {**reply.arrays, **{key: unreadable_value(type_name) for key, type_name in reply.opaque.items()}}
