"""The grading sandbox as the grader's processes use it: its settings, checks and starting it.

Learner code runs with the instructor's rights unless something stops it. The sandbox
(built by :mod:`course_grading.sandbox_launcher`, a process of its own) gives it:

- a read-only view of only what Python needs (system directories, the Python
  installation, the ``course_utils`` package and the data file, and of the instructor's
  side only the files the sandboxed code itself runs: ``kernel_answers.py`` for the
  kernel, ``learner_process.py`` and ``learner_protocol.py`` for the learner process), so
  the course folder (source notebooks, gradebook, other learners' files), the hidden
  tests and the instructor's home are simply not there;
- a private, size-limited ``/tmp`` and working directory, so it cannot fill the
  disk or leave files behind;
- no network (``--unshare-net``), its own process namespace
  (``--unshare-pid``), death with its parent (``--die-with-parent``), no
  capabilities (an unprivileged user when grading runs as root);
- resource limits: address space, file size, CPU time and number of processes.

The coordinator checks that a sandbox can be made (:func:`check_available`) and gives
each grading slot its own user (:func:`slot_user`); the grading process hands the
sandbox user its runtime folder (:func:`prepare_for_sandbox_user`) and starts sandboxed
commands through the launcher (:func:`launcher_command`, :func:`run`): the Jupyter kernel
that nbgrader starts for each notebook (``python -m course_grading.sandbox_launcher kernel
...``, named in a kernelspec written by :mod:`course_grading.grading_process`) and the
learner process that the grader's tests call the gradient function in
(:mod:`course_grading.learner_process`).
"""
from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

#: Unprivileged user the sandbox runs as when grading runs as root (``nobody``).
UNPRIVILEGED_ID = 65534

SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")

#: Where the sandbox shows the instructor's files that sandboxed code runs.
GRADER_FILES_DIR = "/run/grader"
_HERE = os.path.dirname(os.path.abspath(__file__))
#: The file of the kernel's report of answers (``verdicts.StubTestCells`` calls it).
KERNEL_ANSWERS = "kernel_answers.py"


class SandboxUnavailable(RuntimeError):
    """bubblewrap is missing or cannot create a sandbox on this machine."""



@dataclasses.dataclass
class SandboxSettings:
    """Limits for learner code; sizes in bytes, times in seconds.

    Attributes
    ----------
    enabled : bool
        Run under bubblewrap. Without it only the resource limits apply.
    memory : int
        Address-space limit of each process (RLIMIT_AS).
    file_size : int
        Largest file a process may write (RLIMIT_FSIZE).
    disk : int
        Size of the private working directory and of the private ``/tmp`` each.
    cpu_time : int
        CPU seconds per process (RLIMIT_CPU).
    processes : int
        Processes the sandbox user may run (RLIMIT_NPROC); enforced when the
        sandbox runs as its own unprivileged user.
    user_id : int
        The unprivileged user learner code runs as when grading runs as root. The
        process limit counts all processes of a user, so sandboxes that run at the same
        time each get a user of their own (``slot_user``), and one learner's processes
        never count against another's.
    extra_read_only : tuple of str
        More paths to show read-only inside the sandbox.
    """

    enabled: bool = True
    memory: int = 3 * 2**30
    file_size: int = 64 * 2**20
    disk: int = 256 * 2**20
    cpu_time: int = 3600
    processes: int = 256
    extra_read_only: tuple = ()
    user_id: int = UNPRIVILEGED_ID

    def to_json(self):
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text):
        values = json.loads(text)
        values["extra_read_only"] = tuple(values.get("extra_read_only", ()))
        return cls(**values)


#: Users of the grading slots: slot k runs learner code as SLOT_USER_BASE + k. No account
#: on the machine may use these ids (they need no entry in /etc/passwd).
SLOT_USER_BASE = 61000


def slot_user(slot):
    """The user id of grading slot ``slot`` (0, 1, ...)."""
    return SLOT_USER_BASE + slot


def check_available():
    """Raise :class:`SandboxUnavailable` unless bubblewrap can start a sandbox here."""
    if shutil.which("bwrap") is None:
        raise SandboxUnavailable(
            "bubblewrap ('bwrap') is not installed, and grading runs learner code "
            "inside it by default. Install it (Debian/Ubuntu: apt-get install bubblewrap) "
            "or, only on a machine where learners' code is trusted, grade with --no-sandbox.")
    result = run(SandboxSettings(), ["/bin/true"], timeout=60)
    if result[0] != 0:
        message = result[2].decode(errors="replace").strip() or f"exit code {result[0]}"
        raise SandboxUnavailable(
            f"bubblewrap is installed but could not create a sandbox ({message}). "
            "It needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1). "
            "Fix that, or grade with --no-sandbox on a machine where learners' code is trusted.")


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


def set_data_dir():
    """Name the data folder in ``COURSE_DATA_DIR``, for the sandbox to show it to learner code."""
    if os.environ.get("COURSE_DATA_DIR"):
        return
    try:
        from course_utils import find_data_file
        os.environ["COURSE_DATA_DIR"] = str(Path(find_data_file()).parent)
    except Exception:  # the notebooks will report the missing data themselves
        pass


def check_private(path):
    """Refuse a folder unless it is a private folder of the grader's (mode 0700, not a shared place).

    Only such a folder may be shown writable in the sandbox or handed to the sandbox user.
    """
    real = os.path.realpath(path)
    info = os.stat(real)
    shared = (real in ("/", "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"))
              or real.startswith(tuple(d + "/" for d in SYSTEM_DIRECTORIES)) or real in SYSTEM_DIRECTORIES
              or not os.path.isdir(real) or info.st_mode & 0o077 or len(Path(real).parts) < 3)
    if shared:
        raise SandboxUnavailable(f"refusing to give {real} to learner code: only a private "
                                 "folder (mode 0700) made for this grading run may be.")


def prepare_for_sandbox_user(folder, *files, user_id=UNPRIVILEGED_ID):
    """Hand ``folder`` and ``files`` in it to the sandbox user (when grading runs as root).

    ``folder`` must be a private folder made for this grading run (see ``check_private``);
    nothing else on the host ever changes owner.
    """
    check_private(folder)
    if os.geteuid() != 0:
        return
    folder = os.path.realpath(folder)
    for path in files:
        if os.path.dirname(os.path.realpath(path)) != folder or os.path.islink(path):
            raise SandboxUnavailable(f"refusing to hand {path} to the sandbox user: it is not in {folder}.")
    for path in (folder, *files):
        os.chown(path, user_id, user_id, follow_symlinks=False)


def die_with_parent(parent=None):
    """Be killed when the process that started us dies (a grading process, or the
    on-submit service for its jobs): Linux's PR_SET_PDEATHSIG.

    ``parent`` is that process's id, when known. A parent that died before this call
    (killed while we were starting) would never signal us: then we exit at once instead
    of running on, orphaned, for ever (a sandboxed kernel nobody would stop).
    """
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def kernel_answers_path(settings):
    """Where the kernel finds ``kernel_answers.py``: shown in the sandbox, or the file itself."""
    if settings.enabled:
        return f"{GRADER_FILES_DIR}/{KERNEL_ANSWERS}"
    return os.path.join(_HERE, KERNEL_ANSWERS)


def kernel_files():
    """{host file: path inside} of the instructor's files the sandboxed kernel is shown."""
    return {os.path.join(_HERE, KERNEL_ANSWERS): f"{GRADER_FILES_DIR}/{KERNEL_ANSWERS}"}


def launcher_command(settings, argv, options=None):
    """The command that runs ``argv`` in the sandbox (through the launcher process);
    ``options`` are keyword arguments of ``sandbox_launcher.sandbox_command``."""
    return [sys.executable, "-m", "course_grading.sandbox_launcher", "exec", "--parent", str(os.getpid()),
            "--settings", settings.to_json(), "--options", json.dumps(options or {}), "--", *argv]


def run(settings, argv, *, input_bytes=b"", timeout, **kwargs):
    """Run ``argv`` in the sandbox and return ``(returncode, stdout, stderr)``.

    ``returncode`` is None when the wall-clock ``timeout`` ran out (the whole
    sandbox is then killed).
    """
    launcher = launcher_command(settings, argv, kwargs)
    process = subprocess.Popen(launcher, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = process.communicate(input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        out, err = process.communicate()
        return None, out, err
    return process.returncode, out, err


def _kill_group(process):
    try:
        os.killpg(process.pid, 9)
    except ProcessLookupError:
        pass
