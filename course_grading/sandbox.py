"""Run learner code under bubblewrap with resource limits.

Learner code runs with the instructor's rights unless something stops it.  The
sandbox built here gives it:

- a read-only view of only what Python needs (system directories, the Python
  installation, the ``course_utils`` package and the data file), so the course
  folder (source notebooks, gradebook, other learners' files) and the
  instructor's home are simply not there;
- a private, size-limited ``/tmp`` and working directory, so it cannot fill the
  disk or leave files behind;
- no network (``--unshare-net``), its own process namespace
  (``--unshare-pid``), death with its parent (``--die-with-parent``), no
  capabilities (an unprivileged user when grading runs as root);
- resource limits: address space, file size, CPU time and number of processes.

Two entry points use it: the Jupyter kernel that nbgrader starts for each
notebook (``python -m course_grading.sandbox kernel ...``, named in a
kernelspec written by :mod:`course_grading.worker`) and the learner process that the
grader's tests call the gradient function in (:mod:`course_grading.learner_process`).
"""
from __future__ import annotations

import argparse
import ctypes
import dataclasses
import importlib.util
import json
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

#: Unprivileged user the sandbox runs as when grading runs as root (``nobody``).
UNPRIVILEGED_ID = 65534

#: Environment variables learner code may see (everything else is dropped:
#: the instructor's environment can hold tokens and paths).
PASSED_ENVIRONMENT = ("LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION")

SYSTEM_DIRECTORIES = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")


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


def _python_paths():
    """Directories that hold the Python installation and its packages."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable))}
    for entry in sys.path:
        # The editable install of this project puts the project root on the
        # path in some setups; never show it whole (it holds notebooks/source).
        if entry and os.path.isdir(entry) and ("site-packages" in entry or "dist-packages" in entry
                                               or entry.startswith((sys.prefix, sys.base_prefix))):
            paths.add(entry)
    return paths


def _course_utils_paths():
    """The ``course_utils`` package and the data folder.

    Not ``course_grading``: it holds the hidden tests, and learner code never sees it
    (the learner process gets its two files of it one by one, ``read_only_files``).
    """
    paths = set()
    for package in ("course_utils",):
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            paths.update(spec.submodule_search_locations)
    data_dir = os.environ.get("COURSE_DATA_DIR")
    if not data_dir:
        try:
            from course_utils import find_data_file
            data_dir = str(Path(find_data_file()).parent)
        except Exception:  # the learner's notebook reports missing data itself
            data_dir = None
    if data_dir:
        paths.add(os.path.abspath(data_dir))
        # data.mat may be a symbolic link (e.g. /coursedata/data.mat to a shared disk): show
        # the folder of its target too, or the link dangles inside the sandbox.
        paths.add(os.path.dirname(os.path.realpath(os.path.join(data_dir, "data.mat"))))
    return paths


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


def _check_private(path):
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


def _check_workdir(path):
    """The private working folder replaces ``path`` inside the sandbox: never a system place."""
    real = os.path.normpath(path)
    if len(Path(real).parts) < 3 or real in SYSTEM_DIRECTORIES or real.startswith(
            tuple(d + "/" for d in SYSTEM_DIRECTORIES)):
        raise SandboxUnavailable(f"refusing to use {real} as the sandbox's working folder.")


def _ancestors(path):
    parts = Path(path).parts
    return [str(Path(*parts[:i])) for i in range(2, len(parts))]


def sandbox_command(settings, argv, *, workdir=None, seed_from=None, read_write=(), read_only_files=None):
    """The bubblewrap command line that runs ``argv`` in the sandbox.

    Run as root, bubblewrap sets the sandbox up with root's rights (it can show
    directories the sandbox user could not reach, such as a Python under /root)
    and the command then becomes the unprivileged user ``nobody``; run as another
    user, bubblewrap uses a user namespace and the command keeps that user.

    Parameters
    ----------
    settings : SandboxSettings
    argv : list of str
        The command to run inside.
    workdir : str or None
        Path of the private, size-limited working directory (a fresh tmpfs, also
        the directory ``argv`` starts in; ``/tmp`` if None).
    seed_from : str, optional
        Directory whose files are copied into ``workdir`` before ``argv`` starts
        (shown read-only at ``/run/submission`` for the copy).
    read_write : sequence of str
        Directories shown writable at the same path (the kernel's connection files).
    read_only_files : dict, optional
        {host file: path inside} of single files to show read-only (the learner
        process's own code).
    """
    privileged = os.geteuid() == 0
    cmd = ["bwrap", "--die-with-parent", "--new-session", "--clearenv",
           "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    if not privileged:
        cmd.append("--unshare-user")
    binds = [(d, d, False) for d in SYSTEM_DIRECTORIES if os.path.exists(d)]
    shown = set()
    for path in sorted(_python_paths() | _course_utils_paths() | set(settings.extra_read_only)):
        real = os.path.realpath(path)
        for dest in sorted({path, real}):
            if dest not in shown and not dest.startswith(SYSTEM_DIRECTORIES) and os.path.exists(real):
                binds.append((real, dest, False))
                shown.add(dest)
    for path in read_write:
        _check_private(path)
        binds.append((path, path, True))
    if seed_from is not None:
        binds.append((seed_from, "/run/submission", False))
    for source, dest in sorted((read_only_files or {}).items()):
        binds.append((os.path.realpath(source), dest, False))
    # Folders that bubblewrap creates on the way to a shown directory copy the
    # host's permissions (/root is 0700); the sandbox user must get through them.
    cmd += ["--dev", "/dev", "--proc", "/proc",
            "--perms", "1777", "--size", str(settings.disk), "--tmpfs", "/tmp"]
    made = set()
    for _, dest, _ in binds:
        for parent in _ancestors(dest):
            if parent not in made and not any(parent == d or parent.startswith(d + "/") for _, d, _ in binds):
                cmd += ["--perms", "0755", "--dir", parent]
                made.add(parent)
    for source, dest, writable in binds:
        cmd += ["--bind" if writable else "--ro-bind", source, dest]
    if workdir is not None:
        # Mounted last: it hides whatever host folder was shown at or below this path, so
        # the copy and chown below only ever touch this fresh tmpfs.
        _check_workdir(workdir)
        cmd += ["--perms", "1777", "--size", str(settings.disk), "--tmpfs", workdir]
    elif seed_from is not None:
        raise ValueError("seed_from needs a workdir to copy into")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp/home",
           "MPLCONFIGDIR": "/tmp/home/.matplotlib", "PYTHONDONTWRITEBYTECODE": "1",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.update({k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ})
    data_dirs = [p for p in _course_utils_paths() if os.path.isfile(os.path.join(p, "data.mat"))]
    if data_dirs:
        env["COURSE_DATA_DIR"] = data_dirs[0]
    for key, value in sorted(env.items()):
        cmd += ["--setenv", key, value]
    cmd += ["--chdir", workdir or "/tmp"]
    # A short preparation inside the sandbox, then the command itself. The copy and the
    # chown only touch the sandbox's own tmpfs folders (/tmp and the working folder),
    # never a shown host folder (the kernel's runtime folder is prepared outside).
    steps = ["mkdir -p /tmp/home"]
    if seed_from is not None:
        steps.append(f"cp -R /run/submission/. {shlex.quote(workdir)}/")
    if privileged:
        owned = ["/tmp/home"] + ([shlex.quote(workdir)] if workdir is not None else [])
        user = int(settings.user_id)
        steps.append(f"chown -R {user}:{user} {' '.join(owned)}")
        argv = [sys.executable, "-I", "-c", _become(user), *argv]
    script = " && ".join(steps) + ' && exec "$@"'
    return cmd + ["--", "/bin/sh", "-c", script, "sh", *argv]


def _become(user):
    """Python code that drops to ``user`` (and its group id) and runs the rest of argv."""
    return ("import os, sys; os.setgroups([]); "
            f"os.setgid({user}); os.setuid({user}); "
            "os.execvp(sys.argv[1], sys.argv[1:])")


def _set_limits(settings):
    limits = [(resource.RLIMIT_AS, settings.memory), (resource.RLIMIT_FSIZE, settings.file_size),
              (resource.RLIMIT_CPU, settings.cpu_time), (resource.RLIMIT_CORE, 0)]
    for which, value in limits:
        resource.setrlimit(which, (value, value))


def prepare_for_sandbox_user(folder, *files, user_id=UNPRIVILEGED_ID):
    """Hand ``folder`` and ``files`` in it to the sandbox user (when grading runs as root).

    ``folder`` must be a private folder made for this grading run (see ``_check_private``);
    nothing else on the host ever changes owner.
    """
    _check_private(folder)
    if os.geteuid() != 0:
        return
    folder = os.path.realpath(folder)
    for path in files:
        if os.path.dirname(os.path.realpath(path)) != folder or os.path.islink(path):
            raise SandboxUnavailable(f"refusing to hand {path} to the sandbox user: it is not in {folder}.")
    for path in (folder, *files):
        os.chown(path, user_id, user_id, follow_symlinks=False)


def die_with_parent():
    """Be killed when the grading process that started us dies."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def enter(settings, argv, **kwargs):
    """Replace this process by ``argv`` running in the sandbox (never returns)."""
    if settings.enabled:
        command = sandbox_command(settings, argv, **kwargs)
        _set_limits(settings)
        if os.geteuid() == 0:
            # RLIMIT_NPROC counts all processes of a user and does not bind root:
            # set only when the sandbox runs as its own user, never for an
            # instructor's account.
            resource.setrlimit(resource.RLIMIT_NPROC, (settings.processes, settings.processes))
        die_with_parent()
        os.execvp(command[0], command)
    _set_limits(settings)
    die_with_parent()
    os.execvp(argv[0], argv)


def run(settings, argv, *, input_bytes=b"", timeout, **kwargs):
    """Run ``argv`` in the sandbox and return ``(returncode, stdout, stderr)``.

    ``returncode`` is None when the wall-clock ``timeout`` ran out (the whole
    sandbox is then killed).
    """
    launcher = [sys.executable, "-m", "course_grading.sandbox", "exec",
                "--settings", settings.to_json(), "--options", json.dumps(kwargs), "--", *argv]
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


def _kernel(args, extra):
    """Start an IPython kernel in the sandbox (kernelspec ``argv`` target)."""
    settings = SandboxSettings.from_json(Path(args.settings).read_text())
    connection_file = os.path.realpath(args.connection_file)
    runtime = os.path.realpath(args.runtime_dir)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, *extra]
    if not settings.enabled:
        enter(settings, argv)
    # The runtime folder is shown writable (the kernel creates its sockets
    # there): it must be the grader's private folder, never a shared one.
    if os.path.dirname(connection_file) != runtime:
        sys.exit(f"course_grading.sandbox: refusing to start a kernel: its connection file "
                 f"{connection_file} is not in the private runtime folder {runtime}.")
    prepare_for_sandbox_user(runtime, connection_file, user_id=settings.user_id)
    cwd = os.getcwd()
    enter(settings, argv, workdir=cwd, seed_from=args.seed_from or cwd, read_write=[runtime])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course_grading.sandbox",
                                     description="Start learner code in the grading sandbox.")
    sub = parser.add_subparsers(dest="what", required=True)
    kernel = sub.add_parser("kernel", help="start a Jupyter kernel (used by the grading kernelspec)")
    kernel.add_argument("--settings", required=True, help="JSON file with SandboxSettings")
    kernel.add_argument("--runtime-dir", required=True, help="the private folder of the connection file")
    kernel.add_argument("--seed-from", help="folder whose files the kernel's working folder starts with "
                        "(default: the current folder)")
    kernel.add_argument("connection_file")
    run_ = sub.add_parser("exec", help="run a command")
    run_.add_argument("--settings", required=True, help="SandboxSettings as JSON text")
    run_.add_argument("--options", default="{}", help="keyword arguments of sandbox_command as JSON")
    run_.add_argument("command", nargs=argparse.REMAINDER)
    args, extra = parser.parse_known_args(argv)
    if args.what == "kernel":
        # Options for the kernel itself, e.g. nbgrader's --HistoryManager.hist_file=:memory:
        _kernel(args, [arg for arg in extra if arg.startswith("--") and "=" in arg])
    else:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        enter(SandboxSettings.from_json(args.settings), command, **json.loads(args.options))


if __name__ == "__main__":
    main()
