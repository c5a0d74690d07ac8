"""Autograde one submission in a private scratch course.

:func:`grade_submission` is what the coordinator hands to a local thread or to a
Dask worker. It starts ``python -m course_grading.worker`` for the submission,
which

1. builds a scratch course: the assignment's definitions (a gradebook without
   submissions), the learner's files and the course's ``nbgrader_config.py``;
2. runs nbgrader's own ``autograde`` on it, with a kernelspec that starts the
   kernel in the sandbox (:mod:`course_grading.sandbox`);
   decides every test cell here, never in the kernel (:mod:`course_grading.verdicts`);
3. hands back the scores, the autograded files and any problems found.

Nothing here writes to the course folder: the coordinator does.

Starting Python and importing nbgrader takes about 5 s, as long as grading a
short notebook. So the grading processes are forked from a warm server process
that imported all that once (:mod:`multiprocessing`'s forkserver); each is still
a fresh process that grades one submission and exits. Inside a daemonic process
(a Dask worker), which may not have children of its own, each one is started
with ``python -m course_grading.worker`` instead.
"""
from __future__ import annotations

import contextlib
import json
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

PROBLEM_PATTERNS = (
    ("MemoryError", "memory limit reached"),
    ("CellTimeoutError", "time limit of a cell reached"),
    ("No space left on device", "disk limit reached"),
    ("File too large", "file size limit reached"),
    ("Disk quota exceeded", "disk limit reached"),
)


#: A Unix socket's path holds at most 107 bytes (``sun_path``, with the final NUL).
SOCKET_PATH_LIMIT = 107
#: What follows the scratch root in the path of a sandboxed kernel's sockets.
_SOCKET_SUFFIX = os.path.join("course-grade-xxxxxxxx", "runtime", "kernel-ipc-99")


def check_scratch_root(scratch_root=None):
    """Raise ValueError unless a sandboxed kernel's sockets fit under ``scratch_root``
    (default: ``TMPDIR``); zmq would otherwise fail with 'File name too long'."""
    root = os.path.abspath(scratch_root or tempfile.gettempdir())
    if len(os.path.join(root, _SOCKET_SUFFIX).encode()) > SOCKET_PATH_LIMIT:
        limit = SOCKET_PATH_LIMIT - len(_SOCKET_SUFFIX) - 1
        raise ValueError(f"The scratch folder {root} has too long a path for the sockets of the "
                         f"sandboxed kernels (at most {limit} characters): set TMPDIR to a shorter "
                         "folder, e.g. TMPDIR=/tmp.")


#: Imported once by the warm server process that grading processes are forked from.
WARM_MODULES = ("course_grading.worker", "course_grading.gradebook_sync", "course_grading.verdicts",
                "course_grading.hidden_tests",
                "nbgrader.apps.autogradeapp", "nbgrader.api", "nbclient", "course_utils",
                "course_utils.checks", "course_utils.notebook_code")

_forkserver = None


def _warm_context():
    """The forkserver context (started on first use), or None inside a daemonic process."""
    global _forkserver
    if multiprocessing.current_process().daemon:
        return None
    if _forkserver is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(WARM_MODULES))
        _forkserver = context
    return _forkserver


def start_warm_server():
    """Start the warm server now, so that its imports overlap with the coordinator's setup."""
    context = _warm_context()
    if context is not None:
        import multiprocessing.forkserver

        multiprocessing.forkserver.ensure_running()


def _forked_main(task_file, result_file, log_file, private_tmp):
    """Entry point of a grading process forked from the warm server: set up as
    ``subprocess`` would have (own session, output to the log, private TMPDIR), then grade."""
    os.setsid()
    sandbox.die_with_parent()
    log = os.open(log_file, os.O_WRONLY | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ["TMPDIR"] = private_tmp
    tempfile.tempdir = None  # the server may have looked it up already
    main(task_file, result_file)


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
            [sys.executable, "-m", "course_grading.worker", task_file, result_file],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "TMPDIR": private_tmp},
            start_new_session=True, preexec_fn=sandbox.die_with_parent)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return False, process.returncode
    return True, process.returncode


def grade_submission(task):
    """Autograde one submission in a child process; never raises for the learner's faults.

    Parameters
    ----------
    task : dict
        Built by :func:`course_grading.grade.make_task`.

    Returns
    -------
    dict
        ``status`` ('graded' or 'failed'), ``reason``, ``problems`` (list of str),
        ``submission`` (scores, see :func:`gradebook_sync.read_submission`),
        ``autograded_files`` ({relative path: (bytes, mode)}), ``seconds`` and the
        task's ids and digest.
    """
    started = time.monotonic()
    result = {"assignment_id": task["assignment_id"], "student_id": task["student_id"],
              "digest": task["digest"], "status": "failed", "reason": None, "problems": [],
              "verdict_notes": [], "submission": None, "autograded_files": {}}
    with tempfile.TemporaryDirectory(prefix="course-grade-", dir=task.get("scratch_root")) as scratch:
        os.chmod(scratch, 0o711)
        task_file = os.path.join(scratch, "task.pickle")
        result_file = os.path.join(scratch, "result.pickle")
        log_file = os.path.join(scratch, "autograde.log")
        # The scratch folder is passable (0711) so that the sandbox user reaches its runtime
        # folder; what it holds (the learner's files, the assignment's definitions) is the
        # instructor's alone.
        _write_private(task_file, pickle.dumps(task))
        private_tmp = os.path.join(scratch, "tmp")
        os.mkdir(private_tmp, 0o700)
        Path(log_file).touch(mode=0o600)
        finished, exit_code = _run_grading_process(task_file, result_file, log_file, private_tmp,
                                                   task["timeout"])
        stopped = not os.path.exists(result_file)
        if not finished:
            result["reason"] = (f"did not finish within {task['timeout']:g} s (an endless loop or "
                                "a hang that ignored the cell time limit)")
        elif not stopped:
            with open(result_file, "rb") as stream:
                result.update(pickle.load(stream))
        if result["status"] == "failed":
            log_text = Path(log_file).read_text(errors="replace")
            result["log_tail"] = log_text[-5000:]
            if finished and stopped:
                error = _last_exception(log_text)
                result["reason"] = (f"the grading process stopped (exit code {exit_code})"
                                    + (f": {error}" if error else ""))
            result["reason"] = result["reason"] or failure_reason(log_text)
    result["seconds"] = time.monotonic() - started
    return result


def _write_private(path, content):
    """Write a new file that only the instructor may read."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as stream:
        stream.write(content)


# --- inside the child process -----------------------------------------------------------------

def _write_files(root, files):
    for name, content in files.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as stream:
            stream.write(content)


def _read_files(root):
    files = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as stream:
                files[os.path.relpath(path, root)] = (stream.read(), os.stat(path).st_mode & 0o777)
    return files


NBGRADER_CONFIG = """\
c = get_config()  # noqa
{course}
c.CourseDirectory.root = {root!r}
c.CourseDirectory.db_url = {db_url!r}
c.Autograde.create_student = True
{extra}
"""


def build_scratch_course(task, scratch):
    """Lay out the scratch course for ``task`` in ``scratch``; return its settings."""
    settings = sandbox.SandboxSettings.from_json(task["sandbox"])
    if settings.enabled:
        check_scratch_root(os.path.dirname(scratch))
    root = os.path.join(scratch, "course")
    os.mkdir(root, 0o700)  # private, like everything at the top of the scratch folder
    with open(os.path.join(root, "gradebook.db"), "wb") as stream:
        stream.write(task["template_db"])
    _write_files(os.path.join(root, task["submission_path"]), task["submission_files"])
    _write_files(os.path.join(root, task["source_path"]), task["source_files"])
    course = ""
    if task.get("course_config") is not None:
        Path(root, "course_nbgrader_config.py").write_text(task["course_config"])
        course = "load_subconfig('course_nbgrader_config.py')  # noqa"
    runtime = os.path.join(scratch, "runtime")
    os.makedirs(runtime, mode=0o700)
    extra = [
        # One kernel at a time per worker: a fixed connection file in the private
        # runtime folder (jupyter_client would otherwise put it in the shared /tmp).
        f"c.KernelManager.connection_file = {os.path.join(runtime, 'kernel.json')!r}",
        # The scores are in once the last cell ran; a graceful shutdown only waits
        # (about 1 s) for a sandbox that is thrown away anyway.
        "c.Execute.shutdown_kernel = 'immediate'",
        # Test cells are decided here, never in the learner's kernel.
        "from course_grading.verdicts import autograde_preprocessors",
        "c.Autograde.autograde_preprocessors = autograde_preprocessors()",
    ]
    if task.get("cell_timeout"):
        extra.append(f"c.Execute.timeout = {int(task['cell_timeout'])}")
    if settings.enabled:
        # The kernel has no network: it talks to nbgrader over Unix sockets.
        extra.append("c.KernelManager.transport = 'ipc'")
    Path(root, "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(
        course=course, root=root, db_url="sqlite:///" + os.path.join(root, "gradebook.db"),
        extra="\n".join(extra)))

    settings_file = os.path.join(scratch, "sandbox.json")
    _write_private(settings_file, settings.to_json().encode())
    os.mkdir(os.path.join(scratch, "jupyter"), 0o700)
    for name in task["kernel_names"]:
        kernel_dir = os.path.join(scratch, "jupyter", "kernels", name)
        os.makedirs(kernel_dir)
        # The kernel's working folder starts as a copy of the learner's submission, not of
        # the autograded folder, which holds the notebooks graded before (with their tests).
        submitted = os.path.join(root, task["submission_path"])
        spec = {"argv": [sys.executable, "-m", "course_grading.sandbox", "kernel",
                         "--settings", settings_file, "--runtime-dir", runtime,
                         "--seed-from", submitted, "{connection_file}"],
                "display_name": f"{name} (grading sandbox)", "language": "python",
                "interrupt_mode": "message" if settings.enabled else "signal"}
        Path(kernel_dir, "kernel.json").write_text(json.dumps(spec))
    sandbox.prepare_for_sandbox_user(runtime, user_id=settings.user_id)
    os.environ["JUPYTER_PATH"] = os.pathsep.join(
        [os.path.join(scratch, "jupyter")] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p])
    os.environ["JUPYTER_RUNTIME_DIR"] = runtime
    set_data_dir()
    return root, settings


def set_data_dir():
    """Name the data folder in ``COURSE_DATA_DIR``, for the sandbox to show it to learner code."""
    if os.environ.get("COURSE_DATA_DIR"):
        return
    try:
        from course_utils import find_data_file
        os.environ["COURSE_DATA_DIR"] = str(Path(find_data_file()).parent)
    except Exception:  # the notebooks will report the missing data themselves
        pass


class _CheckedSchemaValidation:
    """``jsonschema.validate`` for nbgrader's cell metadata, checking its fixed schema only once.

    nbgrader validates every cell's metadata with ``jsonschema.validate``, which
    first checks the schema itself against the meta-schema: about 0.7 s of the
    grading process's time per notebook, always with the same answer. Same
    validator, same errors.
    """

    def __init__(self):
        self.validators = {}

    def validate(self, instance, schema):
        import jsonschema

        key = id(schema)
        if key not in self.validators:
            cls = jsonschema.validators.validator_for(schema)
            cls.check_schema(schema)
            self.validators[key] = (schema, cls(schema))  # the schema is kept alive with its id
        error = jsonschema.exceptions.best_match(self.validators[key][1].iter_errors(instance))
        if error is not None:
            raise error


def run_autograde(root, assignment_id, student_id):
    """nbgrader's own autograde of one student in the scratch course; returns its exit code."""
    from nbgrader.apps.autogradeapp import AutogradeApp
    from nbgrader.nbgraderformat import common

    if getattr(common, "jsonschema", None) is not None and hasattr(common.jsonschema, "validate"):
        common.jsonschema = _CheckedSchemaValidation()
    os.chdir(root)
    app = AutogradeApp()
    try:
        app.initialize([assignment_id, "--student", student_id, "--force"])
        app.start()
    except SystemExit as stop:
        return stop.code or 0
    return 0


def find_problems(autograded_files):
    """Learner-facing reasons for errors in the executed notebooks (memory, disk, time)."""
    problems = []
    for name, (content, _) in sorted(autograded_files.items()):
        if not name.endswith(".ipynb"):
            continue
        notebook = json.loads(content)
        for cell in notebook.get("cells", []):
            cell_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") or cell.get("id", "?")
            for output in cell.get("outputs", []):
                if output.get("output_type") != "error":
                    continue
                text = f"{output.get('ename')}: {output.get('evalue')}"
                for pattern, reason in PROBLEM_PATTERNS:
                    if pattern in text:
                        problems.append(f"{reason} in {name} cell {cell_id}")
    return problems


def failure_reason(log_text):
    """Why nbgrader could not autograde, from its log."""
    machinery = re.findall(r"GradingMachineryError: ([^\n]*)", log_text)
    if machinery:
        return f"grading machinery failure, not the learner's: {machinery[-1].strip()[:300]}"
    known = (("DeadKernelError", "the kernel died (a crash, or the memory limit was reached)"),
             ("Kernel died", "the kernel died (a crash, or the memory limit was reached)"),
             ("Kernel didn't respond", "the kernel did not start in time"),
             ("UnresponsiveKernelError", "the kernel stopped responding (an endless loop that ignores interrupts?)"))
    for pattern, reason in known:
        if pattern in log_text:
            return reason
    return _last_exception(log_text) or "nbgrader could not autograde it"


def _last_exception(log_text):
    """The last 'SomeError: message' line of a log, or None."""
    exceptions = re.findall(r"^\s*([A-Za-z_.]*(?:Error|Exception)\b[^\n]*)$", log_text, re.MULTILINE)
    return exceptions[-1].strip()[:300] if exceptions else None


def main(task_file, result_file):
    from .gradebook_sync import put_alembic_on_path, read_submission
    from .verdicts import RESULTS, TrustedVerdicts

    with open(task_file, "rb") as stream:
        task = pickle.load(stream)
    scratch = os.path.dirname(os.path.abspath(task_file))
    put_alembic_on_path()
    root, settings = build_scratch_course(task, scratch)
    TrustedVerdicts.settings = settings
    exit_code = run_autograde(root, task["assignment_id"], task["student_id"])
    db_url = "sqlite:///" + os.path.join(root, "gradebook.db")
    result = {"submission": read_submission(db_url, task["assignment_id"], task["student_id"]),
              "autograded_files": {}, "problems": [], "verdict_notes": []}
    autograded = os.path.join(root, task["autograded_path"])
    if exit_code == 0 and os.path.isdir(autograded):
        result["autograded_files"] = _read_files(autograded)
        result["problems"] = find_problems(result["autograded_files"])
        result["status"] = "graded"
        result["verdict_notes"] = [f"{entry.notebook} {verdict.grade_id}: {verdict.message[:300]}"
                                   for entry in RESULTS for verdict in entry.cells
                                   if verdict.learner_process]
    else:
        sys.stdout.flush()
        result["status"] = "failed"
    _write_private(result_file + ".part", pickle.dumps(result))
    os.replace(result_file + ".part", result_file)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m course_grading.worker TASK_FILE RESULT_FILE (started by course-grade)")
    main(sys.argv[1], sys.argv[2])
