"""Reading a learner's submission folder: regular files only, within size limits.

A submission folder is the learner's: it can hold symbolic links (to the source
notebooks, the gradebook, another learner's files, files only root may read), FIFOs
that block whoever opens them, devices, or files of any size. Read naively, a link's
target is copied into the sandbox and into ``autograded/``, a FIFO hangs the grading of
the whole class, and one broken link stops it. Here nothing is followed and nothing
blocks: what is not a regular file, or is too big, is left out with a note; a notebook
that is not valid JSON fails only its own submission.

Notebooks are then put back as nbgrader expects them where the learner's editor changed
them (:mod:`course_grading.editors`: a pasted copy of a graded cell, cells moved or
deleted, an older notebook format), and stray copies of a notebook
(``backprop-Copy1.ipynb``) are left out, each with a note.
"""
from __future__ import annotations

import dataclasses
import os
import stat

import nbformat

from . import editors

#: Largest file read (bytes), and largest submission in total.
FILE_LIMIT = 32 * 2**20
TOTAL_LIMIT = 128 * 2**20
#: Folders that are never part of a submission (JupyterLab's autosaves).
LEFT_OUT_FOLDERS = frozenset({".ipynb_checkpoints", "__pycache__"})


@dataclasses.dataclass
class Submission:
    """What was read: ``files`` {relative path: bytes}, ``notes`` on what was left out or
    repaired and why, and ``error`` when the submission cannot be graded at all (else None)."""

    files: dict
    notes: list
    error: str | None = None


def _read_regular_file(path, limit):
    """The file's bytes, or raise ValueError saying why it is not read. Never follows a
    link and never blocks (a FIFO opened with O_NONBLOCK returns at once)."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("it is not a regular file (a FIFO, socket or device)")
        if info.st_size > limit:
            raise ValueError(f"it is larger than {limit // 2**20} MiB ({info.st_size} bytes)")
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError(f"it grew larger than {limit // 2**20} MiB while it was read")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def read_submission(root, file_limit=FILE_LIMIT, total_limit=TOTAL_LIMIT, release=None):
    """Read the submission folder ``root``; returns a :class:`Submission`.

    ``release`` ({notebook file name: cells}, see :func:`editors.release_notebooks`) is
    what learners were given: the notebooks' cells are put back in its order.
    """
    files, notes = {}, []
    if os.path.islink(root) or not os.path.isdir(root):
        return Submission({}, [], f"the submission folder {root} is not a folder (a symbolic link?)")
    total = 0
    pending = [""]
    while pending:
        relative = pending.pop()
        try:
            entries = sorted(os.scandir(os.path.join(root, relative)), key=lambda e: e.name)
        except OSError as error:
            notes.append(f"left out the folder {relative or '.'}: {error.strerror}")
            continue
        for entry in entries:
            name = os.path.join(relative, entry.name)
            if entry.is_symlink():
                notes.append(f"left out {name}: it is a symbolic link (links are never followed)")
            elif entry.is_dir(follow_symlinks=False):
                if entry.name not in LEFT_OUT_FOLDERS:
                    pending.append(name)
                elif entry.name == ".ipynb_checkpoints":
                    notes.append(f"left out {name}{os.sep}: JupyterLab's automatic saves, never graded")
            else:
                try:
                    content = _read_regular_file(entry.path, file_limit)
                except (OSError, ValueError) as error:
                    reason = error.strerror if isinstance(error, OSError) else str(error)
                    notes.append(f"left out {name}: {reason}")
                    continue
                if total + len(content) > total_limit:
                    notes.append(f"left out {name}: the submission is larger than {total_limit // 2**20} MiB")
                    continue
                total += len(content)
                files[name] = content
    notebooks = {name for name in files if name.endswith(".ipynb") and os.sep not in name}
    for name in sorted(notebooks):
        original = editors.stray_copy_of(name, notebooks)
        if original is not None:
            del files[name]
            notes.append(f"left out {name}: a copy of {original} (JupyterLab's Duplicate or Save As); "
                         f"only {original} is graded")
            continue
        if release and name not in release:
            continue  # not one of the assignment's notebooks: nbgrader does not grade it
        try:
            repaired = editors.repair_notebook(files[name], (release or {}).get(name))
        except ValueError as error:
            return Submission(files, notes, f"{name} is not a notebook nbgrader can read ({error})")
        except Exception as error:  # JSON that nbformat reads but not shaped as a notebook
            notes.append(f"{name}: not checked for an editor's changes ({type(error).__name__}: "
                         f"{str(error)[:200]}); graded as it is")
            continue
        if repaired.notes:
            repaired.notebook.cells.insert(0, editors.note_cell(repaired.notes))
            files[name] = nbformat.writes(repaired.notebook).encode() + b"\n"
            notes += [f"{name}: {note}" for note in repaired.notes]
    return Submission(files, notes)
