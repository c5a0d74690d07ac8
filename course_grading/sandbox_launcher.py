"""The sandbox launcher: a process that becomes the sandboxed kernel or learner process.

``python -m course_grading.sandbox_launcher kernel ...`` (the grading kernelspec's
command) and ``python -m course_grading.sandbox_launcher exec ...`` (the learner process,
:func:`course_grading.sandbox.run`) read the :class:`~course_grading.sandbox.SandboxSettings`
(JSON, checked by ``SandboxSettings.from_json``), build the bubblewrap command line, set
the resource limits and replace themselves by it (see :mod:`course_grading.sandbox` for
what the sandbox shows and withholds). Run as root, bubblewrap sets the sandbox up with
root's rights and the command inside becomes the slot's unprivileged user.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shlex
import sys
from pathlib import Path

from .sandbox import (
    SYSTEM_DIRECTORIES,
    SandboxSettings,
    SandboxUnavailable,
    check_private,
    die_with_parent,
    kernel_files,
    prepare_for_sandbox_user,
)

#: Environment variables learner code may see (everything else is dropped:
#: the instructor's environment can hold tokens and paths).
PASSED_ENVIRONMENT = ("LANG", "LC_ALL", "TZ", "NBGRADER_EXECUTION")


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
    (the kernel and the learner process get the files they run one by one,
    ``read_only_files``).
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
        check_private(path)
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


def enter(settings, argv, parent=None, **kwargs):
    """Replace this process by ``argv`` running in the sandbox (never returns); ``parent``:
    the id of the process that started this one (see ``sandbox.die_with_parent``)."""
    if settings.enabled:
        command = sandbox_command(settings, argv, **kwargs)
        _set_limits(settings)
        if os.geteuid() == 0:
            # RLIMIT_NPROC counts all processes of a user and does not bind root:
            # set only when the sandbox runs as its own user, never for an
            # instructor's account.
            resource.setrlimit(resource.RLIMIT_NPROC, (settings.processes, settings.processes))
        die_with_parent(parent)
        os.execvp(command[0], command)
    _set_limits(settings)
    die_with_parent(parent)
    os.execvp(argv[0], argv)


def _kernel(args, extra):
    """Start an IPython kernel in the sandbox (kernelspec ``argv`` target)."""
    settings = SandboxSettings.from_json(Path(args.settings).read_text())
    connection_file = os.path.realpath(args.connection_file)
    runtime = os.path.realpath(args.runtime_dir)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, *extra]
    if not settings.enabled:
        enter(settings, argv, args.parent)
    # The runtime folder is shown writable (the kernel creates its sockets
    # there): it must be the grader's private folder, never a shared one.
    if os.path.dirname(connection_file) != runtime:
        sys.exit(f"course_grading.sandbox_launcher: refusing to start a kernel: its connection file "
                 f"{connection_file} is not in the private runtime folder {runtime}.")
    prepare_for_sandbox_user(runtime, connection_file, user_id=settings.user_id)
    cwd = os.getcwd()
    enter(settings, argv, args.parent, workdir=cwd, seed_from=args.seed_from or cwd, read_write=[runtime],
          read_only_files=kernel_files())


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m course_grading.sandbox_launcher",
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
    for sub_parser in (kernel, run_):
        sub_parser.add_argument("--parent", type=int, help="the id of the process that starts this one: "
                                "if it has already ended, nothing is started")
    args, extra = parser.parse_known_args(argv)
    if args.what == "kernel":
        # Options for the kernel itself, e.g. nbgrader's --HistoryManager.hist_file=:memory:
        _kernel(args, [arg for arg in extra if arg.startswith("--") and "=" in arg])
    else:
        command = args.command[1:] if args.command[:1] == ["--"] else args.command
        enter(SandboxSettings.from_json(args.settings), command, args.parent, **json.loads(args.options))


if __name__ == "__main__":
    main()
