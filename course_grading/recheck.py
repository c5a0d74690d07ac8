"""Re-check the learner's gradient where the learner's code cannot interfere.

nbgrader runs the instructor's test cells in the learner's own kernel, after the
learner's code. That code can redefine the checker functions, ``np.allclose``,
``AssertionError`` or ``test_gradient``, hide tracebacks, or return a gradient
precomputed for the tested inputs, and the test cells then pass.

Here the instructor's test cells run again in the grading process, which has
never run learner code. Each call of ``d_loss_by_d_model`` is sent to a fresh,
sandboxed child process that holds the learner's cell; only arrays come back
(read with ``allow_pickle=False``). Nothing the learner's code does in the child
can reach the checker. A probe with a random model and a random batch, which
the learner cannot know in advance, catches precomputed answers.

The points of a re-checked test cell are the smaller of the notebook's and the
re-check's, so the re-check can only take away points that were not earned.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import select
import struct
import subprocess
import sys
import time

import numpy as np

from . import sandbox

#: The solution cell that defines the learner's gradient.
GRADIENT_CELL = "d_loss_by_d_model"
GRADIENT_NAME = "d_loss_by_d_model"
#: Largest message accepted from the learner's process (bytes).
MESSAGE_LIMIT = 64 * 2**20
_HEADER = struct.Struct("<cQ")


class LearnerFunctionError(RuntimeError):
    """The learner's function raised, returned something unusable, crashed or ran out of time."""


class RecheckUnavailable(RuntimeError):
    """The re-check could not run for a reason that is not the learner's."""


# --- messages: one type byte, a length, the payload ---------------------------------------

def _write_message(stream, kind, payload):
    stream.write(_HEADER.pack(kind, len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(fd, size, deadline):
    chunks = []
    while size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise LearnerFunctionError("d_loss_by_d_model ran out of time")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise LearnerFunctionError("the process running d_loss_by_d_model stopped (crashed or was killed)")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read_message(fd, deadline):
    kind, size = _HEADER.unpack(_read_exactly(fd, _HEADER.size, deadline))
    if size > MESSAGE_LIMIT:
        raise LearnerFunctionError("d_loss_by_d_model returned too much data")
    return kind, _read_exactly(fd, size, deadline)


def _arrays_to_bytes(arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _bytes_to_arrays(payload):
    with np.load(io.BytesIO(payload), allow_pickle=False) as content:
        return {name: content[name] for name in content.files}


# --- the learner's side (runs in the sandbox) ------------------------------------------------

def _child_main():
    """Define the learner's function from its cell, then answer calls until stdin closes."""
    # The protocol uses a private copy of stdout; whatever the learner prints goes to stderr.
    protocol_out = os.fdopen(os.dup(1), "wb")
    protocol_in = sys.stdin.buffer
    os.dup2(2, 1)
    from course_utils.notebook_code import learner_namespace
    import course_utils

    sources = []
    for _ in range(2):  # the instructor's setup code, then the learner's cell
        kind, size = _HEADER.unpack(protocol_in.read(_HEADER.size))
        sources.append(protocol_in.read(size).decode("utf-8"))
    setup, source = sources
    namespace = learner_namespace()
    namespace["course_utils"] = course_utils
    try:
        exec(compile(setup, "setup cells", "exec"), namespace)
    except BaseException as error:
        _write_message(protocol_out, b"S", f"{type(error).__name__}: {error}"[:2000].encode())
        return
    failure = None
    try:
        exec(compile(source, "d_loss_by_d_model cell", "exec"), namespace)
    except BaseException as error:  # the learner's cell: anything can happen
        failure = f"the cell failed: {type(error).__name__}: {error}"
    # As in the notebook, a function defined before a later line of its cell
    # failed is still defined and tested.
    function = namespace.get(GRADIENT_NAME)
    if not callable(function):
        _write_message(protocol_out, b"E", (failure or f"the cell does not define {GRADIENT_NAME}").encode()[:2000])
        return
    _write_message(protocol_out, b"R", b"")
    while True:
        header = protocol_in.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        kind, size = _HEADER.unpack(header)
        call = _bytes_to_arrays(protocol_in.read(size))
        model = {"input_to_hid": call["input_to_hid"], "hid_to_class": call["hid_to_class"]}
        data = {"inputs": call["inputs"], "target": call["target"]}
        try:
            gradient = function(model, data, float(call["wd_coefficient"]))
            if not isinstance(gradient, dict):
                _write_message(protocol_out, b"T", type(gradient).__name__.encode()[:100])
                continue
            arrays = {str(key)[:100]: np.asarray(value, dtype=np.float64) for key, value in gradient.items()}
            _write_message(protocol_out, b"G", _arrays_to_bytes(arrays))
        except BaseException as error:
            _write_message(protocol_out, b"E", f"{type(error).__name__}: {error}"[:2000].encode())


# --- the grader's side ------------------------------------------------------------------------

class LearnerFunction:
    """``d_loss_by_d_model`` of one learner, running in its own sandboxed process.

    Calling it sends the arrays to that process and returns what came back as a
    new dict of float64 arrays. Use as a context manager.
    """

    def __init__(self, cell_source, settings, setup_source="", call_timeout=60.0):
        self.cell_source = cell_source
        self.setup_source = setup_source
        self.settings = settings
        self.call_timeout = call_timeout
        self.process = None
        self.calls = 0
        self.stopped = None

    def __enter__(self):
        argv = [sys.executable, "-I", "-c", "from course_grading.recheck import _child_main; _child_main()"]
        if self.settings.enabled:
            launcher = [sys.executable, "-m", "course_grading.sandbox", "exec",
                        "--settings", self.settings.to_json(),
                        "--options", json.dumps({"workdir": "/tmp/work"}), "--", *argv]
        else:
            launcher = [sys.executable, "-m", "course_grading.sandbox", "exec",
                        "--settings", self.settings.to_json(), "--", *argv]
        self.process = subprocess.Popen(launcher, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            _write_message(self.process.stdin, b"S", self.setup_source.encode("utf-8"))
            _write_message(self.process.stdin, b"L", self.cell_source.encode("utf-8"))
            # Importing and loading the data take a while on a busy machine.
            kind, payload = _read_message(self.process.stdout.fileno(), time.monotonic() + 4 * self.call_timeout)
            if kind == b"S":
                raise RecheckUnavailable(f"the instructor's setup code failed: {payload.decode('utf-8', 'replace')}")
            if kind != b"R":
                raise LearnerFunctionError(payload.decode("utf-8", "replace"))
        except BaseException:
            self.__exit__()
            raise
        return self

    def _kill(self):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, 9)

    def __exit__(self, *exc_info):
        self._kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()

    def __call__(self, model, data, wd_coefficient):
        self.calls += 1
        arrays = {"input_to_hid": model["input_to_hid"], "hid_to_class": model["hid_to_class"],
                  "inputs": data["inputs"], "target": data["target"],
                  "wd_coefficient": np.float64(wd_coefficient)}
        if self.stopped:
            raise LearnerFunctionError(self.stopped)
        try:
            _write_message(self.process.stdin, b"C", _arrays_to_bytes(arrays))
            kind, payload = _read_message(self.process.stdout.fileno(), time.monotonic() + self.call_timeout)
        except (BrokenPipeError, OSError):
            self.stopped = "the process running d_loss_by_d_model stopped"
            raise LearnerFunctionError(self.stopped) from None
        except LearnerFunctionError as error:
            # Out of time or gone: the process cannot answer the next call in step.
            self.stopped = str(error)
            self._kill()
            raise
        if kind == b"G":
            try:
                return _bytes_to_arrays(payload)
            except Exception:
                raise LearnerFunctionError("d_loss_by_d_model returned unreadable data") from None
        if kind == b"T":
            return None if payload == b"NoneType" else _Opaque(payload.decode("ascii", "replace"))
        raise LearnerFunctionError(f"d_loss_by_d_model raised {payload.decode('utf-8', 'replace')}")


class _Opaque:
    """Stands for a non-dict value the learner's function returned."""

    def __init__(self, type_name):
        self.type_name = type_name

    def __repr__(self):
        return f"<{self.type_name}>"


def random_probe(gradient_fn, datas, rng):
    """Look for a gradient that is right only for the tested inputs.

    The gradient tester runs on the initial model and the whole training set
    (no weight decay, 10 hidden units); then on a random model and the training
    cases in a random order, which no learner can know in advance. A real
    gradient passes both or fails both; a precomputed answer, or code that
    recognises the tested inputs, passes only the first.

    Returns None when nothing is suspicious, else the reason.
    """
    from course_utils import check_gradient, initial_model

    train = datas["train"]
    try:
        check_gradient(initial_model(10), train, 0.0, gradient_fn)
    except Exception:
        return None  # wrong on the tested inputs too: the test cells decide
    model = {part: weights * rng.uniform(0.5, 2.0, weights.shape)
             for part, weights in initial_model(10).items()}
    order = rng.permutation(train["inputs"].shape[1])
    shuffled = {name: values[:, order] for name, values in train.items()}
    try:
        check_gradient(model, shuffled, 0.0, gradient_fn)
    except Exception as error:
        return ("right on the tested inputs but not on a random model "
                f"({type(error).__name__}: {str(error)[:300]})")
    return None


def recheck_cells(cell_source, test_cells, settings, *, setup_source="", datas=None, timeout=300.0, rng=None):
    """Run the instructor's ``test_cells`` against the learner's gradient cell, isolated.

    Parameters
    ----------
    cell_source : str
        The learner's ``d_loss_by_d_model`` cell.
    test_cells : dict
        grade_id -> source of each instructor test cell to re-run (hidden tests included).
    settings : SandboxSettings
        Limits for the learner's process.
    setup_source : str
        The instructor's setup code that runs before the learner's cell in the
        notebook (imports, ``datas``, ``test_gradient``), run first in the child.
    datas : dict, optional
        The data splits (loaded with ``course_utils.load_data`` if not given).

    Returns
    -------
    dict
        ``{'cells': {grade_id: {'passed': bool or None, 'message': str}}, 'probe': str or None}``;
        ``passed`` is None when the cell could not be re-run for a reason that is
        not the learner's (its verdict then stays the notebook's). ``probe`` says
        why the gradient looks gamed (see ``random_probe``), or is None.
    """
    import course_utils
    from course_utils import load_data
    from course_utils.notebook_code import learner_namespace

    deadline = time.monotonic() + timeout
    datas = load_data() if datas is None else datas
    rng = np.random.default_rng() if rng is None else rng
    outcome = {"cells": {}, "probe": None}
    try:
        checks = __import__("course_utils.checks", fromlist=["checks"])
    except ImportError:
        checks = None
    try:
        with LearnerFunction(cell_source, settings, setup_source=setup_source) as function:
            for grade_id, source in test_cells.items():
                if time.monotonic() > deadline:
                    outcome["cells"][grade_id] = {"passed": False,
                                                  "message": "the learner's function used up the re-check's time"}
                    continue
                namespace = learner_namespace()
                namespace.update(course_utils=course_utils, checks=checks, datas=datas,
                                 d_loss_by_d_model=function)
                outcome["cells"][grade_id] = _run_test_cell(source, namespace)
            if time.monotonic() < deadline:
                outcome["probe"] = random_probe(function, datas, rng)
    except LearnerFunctionError as error:
        for grade_id in test_cells:
            outcome["cells"].setdefault(grade_id, {"passed": False, "message": str(error)})
    except (RecheckUnavailable, OSError) as error:
        for grade_id in test_cells:
            outcome["cells"].setdefault(grade_id, {"passed": None, "message": f"not re-checked: {error}"})
    return outcome


def _run_test_cell(source, namespace):
    """Execute one instructor test cell; its output is discarded like in the notebook's score."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            exec(compile(source, "test cell", "exec"), namespace)
    except NameError as error:
        # A name the instructor's cell needs that the re-check does not provide:
        # not the learner's fault, keep the notebook's verdict.
        return {"passed": None, "message": f"not re-checked ({error})"}
    except Exception as error:
        return {"passed": False, "message": f"{type(error).__name__}: {str(error)[:500]}"}
    return {"passed": True, "message": ""}


def decide_scores(notebook_scores, recheck, max_scores):
    """Scores of the re-checked cells: never more than the re-check allows.

    Parameters
    ----------
    notebook_scores : dict grade_id -> float or None (nbgrader's auto_score)
    recheck : dict, as returned by ``recheck_cells``
    max_scores : dict grade_id -> float

    Returns
    -------
    scores : dict grade_id -> float or None, for the re-checked cells
    reasons : list of str, one per cell whose score the re-check lowered
    """
    cells = recheck["cells"]
    gaming = recheck["probe"] is not None
    scores, reasons = {}, []
    for grade_id, verdict in cells.items():
        score = notebook_scores.get(grade_id)
        allowed = max_scores[grade_id]
        if gaming:
            allowed = 0.0
        elif verdict["passed"] is False:
            allowed = 0.0
        elif verdict["passed"] is None:
            allowed = score
        new = score if score is None or allowed is None else min(score, allowed)
        if score is not None and new is not None and new < score:
            why = f"random probe failed: {recheck['probe']}" if gaming else verdict["message"]
            reasons.append(f"{grade_id}: {score:g} -> {new:g} points ({why[:300]})")
        scores[grade_id] = new
    return scores, reasons
