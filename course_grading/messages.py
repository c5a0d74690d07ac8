"""The messages between the grading processes: each a dataclass, defined here once.

::

    coordinator (grade.py)
        --GradingTask-->    supervisor (supervisor.py: a thread, or a Dask worker)
        --GradingTask-->    grading process (grading_process.py, a file in its scratch folder)
        <--GradingResult--  (a file the grading process writes before it exits: graded, or
                            failed with the reason, a machinery failure included)
        <--GradingResult--  to the coordinator, which writes the course

Inside the grading process, nbgrader's preprocessors hand each notebook's
:class:`CellVerdict` s, or a :class:`MachineryFailure`, to the grading process's main code
through :class:`VerdictRecord` (a file in the scratch folder: nbgrader keeps no value of a
preprocessor). The verdicts leave the grading process in the :class:`GradingResult`, and
reach the class report as :class:`VerdictFile` (``course_grade_verdicts.json`` beside the
learner's autograded notebooks).

The messages to and from the sandboxed learner process are in
:mod:`course_grading.learner_protocol`: that file is shown to learner code and must stand
alone. Every message that crosses from a process that ran learner code, or that such a
process could have written, is read with a checking constructor (``from_plain``,
``from_json``, ``learner_protocol.decode``) that refuses anything else with
:class:`MessageError`; a refused message is a failure, never a pass.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

from course_utils.diagnosis import Mistake

from .sandbox import SandboxSettings

#: The verdict file's name, beside the learner's autograded notebooks, and its format.
VERDICT_FILE = "course_grade_verdicts.json"
VERDICT_FORMAT = 1
#: Longest message kept in a verdict (characters); longest text answer.
MESSAGE_LIMIT = 5000
ANSWER_TEXT_LIMIT = 200
#: Largest array kept among a verdict's answers, in elements (the tiny network's gradients).
ANSWER_ARRAY_LIMIT = 16


class MessageError(ValueError):
    """A message that is not what its type allows; the text says what was wrong."""


def _require(condition, what):
    if not condition:
        raise MessageError(what)


def _text(value, what, limit=None):
    _require(isinstance(value, str), f"{what} is not text")
    return value if limit is None else value[:limit]


def _texts(values, what):
    _require(isinstance(values, (list, tuple)) and all(isinstance(v, str) for v in values),
             f"{what} is not a list of text")
    return tuple(values)


# --- a cell's verdict --------------------------------------------------------------------------

def plain_answer(value):
    """The value as a verdict keeps it: a number, short text, a bool, or a small array of
    numbers as a flat list (row by row); None when it is nothing of the kind."""
    import numpy as np

    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else repr(float(value))
    if isinstance(value, str):
        return value[:ANSWER_TEXT_LIMIT]
    if isinstance(value, np.ndarray) and 0 < value.size <= ANSWER_ARRAY_LIMIT and value.dtype.kind in "fiu":
        return [plain_answer(x) for x in value.ravel().tolist()]
    return None


def keep_answer(value):
    """Whether a verdict keeps ``value`` among its answers (see ``plain_answer``)."""
    return plain_answer(value) is not None


def _check_answer(value):
    if isinstance(value, list):
        _require(len(value) <= ANSWER_ARRAY_LIMIT and all(
            isinstance(item, (int, float, str)) and not isinstance(item, bool) for item in value),
            "an answer is not a plain value")
        return value
    _require(isinstance(value, (bool, int, float, str)), "an answer is not a plain value")
    return value[:ANSWER_TEXT_LIMIT] if isinstance(value, str) else value


@dataclasses.dataclass(frozen=True)
class CellVerdict:
    """The grader's verdict on one test cell.

    Attributes
    ----------
    notebook : str, the notebook's name without ``.ipynb``
    grade_id : str
    passed : bool
    mistakes : tuple of Mistake, what the checks recognized (empty when it passed)
    message : str, what the learner is shown ('' when it passed)
    answers : dict {name: plain value}, the learner's values the test read (numbers,
        short text, small arrays of numbers as flat lists)
    learner_process : bool, failed because the process running the learner's function
        misbehaved (a crash, a time-out, a malformed message)
    """

    notebook: str
    grade_id: str
    passed: bool
    mistakes: tuple = ()
    message: str = ""
    answers: dict = dataclasses.field(default_factory=dict)
    learner_process: bool = False

    def to_plain(self):
        return {"notebook": self.notebook, "grade_id": self.grade_id, "passed": self.passed,
                "mistakes": [mistake.value for mistake in self.mistakes], "message": self.message,
                "answers": dict(self.answers), "learner_process": self.learner_process}

    @classmethod
    def from_plain(cls, plain):
        """The verdict a plain dict (``to_plain``'s) describes; MessageError for anything else."""
        _require(isinstance(plain, dict), "a cell's verdict is not an object")
        names = {field.name for field in dataclasses.fields(cls)}
        _require(set(plain) == names, f"a cell's verdict has the fields {sorted(plain)}, not {sorted(names)}")
        _require(isinstance(plain["passed"], bool) and isinstance(plain["learner_process"], bool),
                 "a cell's verdict has a 'passed' or 'learner_process' that is not true or false")
        try:
            mistakes = tuple(Mistake(name) for name in _texts(plain["mistakes"], "mistakes"))
        except ValueError as error:
            raise MessageError(f"a cell's verdict names an unknown mistake ({error})") from None
        answers = plain["answers"]
        _require(isinstance(answers, dict) and all(isinstance(k, str) for k in answers),
                 "a cell's answers are not an object")
        return cls(notebook=_text(plain["notebook"], "the notebook"), grade_id=_text(plain["grade_id"], "the grade id"),
                   passed=plain["passed"], mistakes=mistakes,
                   message=_text(plain["message"], "the message", MESSAGE_LIMIT),
                   answers={name: _check_answer(value) for name, value in answers.items()},
                   learner_process=plain["learner_process"])


@dataclasses.dataclass(frozen=True)
class MachineryFailure:
    """The grading itself failed (not the learner's code): the submission keeps its earlier
    grades and must be graded again."""

    reason: str


@dataclasses.dataclass(frozen=True)
class VerdictRecord:
    """The file through which the preprocessors hand their verdicts to the grading process.

    Each line is one notebook's verdicts (``{"notebook": ..., "cells": [...]}``) or a machinery
    failure (``{"machinery_failure": reason}``). Written and read in the grading process only.
    """

    path: str

    def add_notebook(self, cells):
        self._append({"cells": [cell.to_plain() for cell in cells]})

    def add_failure(self, reason):
        self._append({"machinery_failure": str(reason)})

    def _append(self, entry):
        # Private, like everything in the scratch folder.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with open(descriptor, "a") as stream:
            stream.write(json.dumps(entry) + "\n")

    def read(self):
        """(cells: tuple of CellVerdict, failure: MachineryFailure or None)."""
        cells, failure = [], None
        if not os.path.exists(self.path):
            return (), None
        with open(self.path) as stream:
            for line in stream:
                entry = json.loads(line)
                if "machinery_failure" in entry:
                    failure = MachineryFailure(_text(entry["machinery_failure"], "the failure"))
                else:
                    cells += [CellVerdict.from_plain(cell) for cell in entry["cells"]]
        return tuple(cells), failure


@dataclasses.dataclass(frozen=True)
class VerdictFile:
    """``course_grade_verdicts.json``: one learner's verdicts on one assignment, for the
    class report. ``notes`` say in words what the grader found in the submission and did."""

    assignment_id: str
    student_id: str
    cells: tuple
    notes: tuple = ()

    def added_to(self, files):
        """``files`` (an autograded folder's, {relative path: (bytes, mode)}) with this file as
        ``VERDICT_FILE``, read-only as nbgrader leaves the autograded notebooks. A file of that
        name already there (a learner's, copied by a course whose nbgrader config does not
        ignore it) is replaced, never trusted."""
        return {**files, VERDICT_FILE: (self.to_json().encode(), 0o444)}

    def to_json(self):
        return json.dumps({"format": VERDICT_FORMAT, "assignment_id": self.assignment_id,
                           "student_id": self.student_id, "cells": [cell.to_plain() for cell in self.cells],
                           "notes": list(self.notes)}, indent=1) + "\n"

    @classmethod
    def from_json(cls, text):
        """The verdict file in ``text``; MessageError saying what is wrong with anything else."""
        try:
            plain = json.loads(text)
        except (ValueError, RecursionError) as error:
            raise MessageError(f"a verdict file is not JSON ({error})") from None
        _require(isinstance(plain, dict), "a verdict file is not an object")
        _require(plain.get("format") == VERDICT_FORMAT,
                 f"a verdict file of format {plain.get('format')!r}; this grader reads format {VERDICT_FORMAT}")
        _require(isinstance(plain.get("cells"), list), "a verdict file has no list of cells")
        return cls(assignment_id=_text(plain.get("assignment_id"), "the assignment id"),
                   student_id=_text(plain.get("student_id"), "the student id"),
                   cells=tuple(CellVerdict.from_plain(cell) for cell in plain["cells"]),
                   notes=_texts(plain.get("notes"), "the notes"))


def read_verdict_file(path):
    """The :class:`VerdictFile` at ``path``; raises MessageError (saying what and where) for a
    file that is not one, OSError for one that cannot be read."""
    with open(path) as stream:
        text = stream.read()
    try:
        return VerdictFile.from_json(text)
    except MessageError as error:
        raise MessageError(f"{path}: {error}") from None


# --- the task and its result -------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class GradingTask:
    """Everything the grading of one submission needs; built by ``grade.Course.make_task``.

    Attributes
    ----------
    assignment_id, student_id : str
    digest : str, the fingerprint of the submission's files (``gradebook_sync.submission_digest``)
    submission_files : dict {relative path: bytes}, what was read of the submission
    submission_path, autograded_path, source_path : str, nbgrader's folders of this
        submission and assignment, relative to the course root
    source_files : dict {relative path: bytes}, the assignment's files other than notebooks
    course_config : str or None, the course's ``nbgrader_config.py``
    template_db : bytes, the gradebook without submissions
    kernel_names : tuple of str, kernelspecs the notebooks name
    sandbox : SandboxSettings
    cell_timeout : int or None, seconds per cell (None: the course's)
    timeout : float, seconds for the grading process (the submission, or its ``notebook``)
    scratch_root : str or None, where the scratch folder goes (None: TMPDIR)
    intake_notes : tuple of str, what was left out of the submission and why
    intake_error : str or None, why the submission cannot be graded at all
    notebook : str or None, grade only this notebook (its name without ``.ipynb``), with the
        whole submission at hand; None: every notebook (see :meth:`per_notebook`)
    """

    assignment_id: str
    student_id: str
    digest: str
    submission_files: dict
    submission_path: str
    autograded_path: str
    source_path: str
    source_files: dict
    course_config: Optional[str]
    template_db: bytes
    kernel_names: tuple
    sandbox: SandboxSettings
    cell_timeout: Optional[int]
    timeout: float
    scratch_root: Optional[str] = None
    intake_notes: tuple = ()
    intake_error: Optional[str] = None
    notebook: Optional[str] = None

    def per_notebook(self, notebooks):
        """One task for each of ``notebooks`` (names without ``.ipynb``) that the submission
        holds, to be graded side by side on idle cores (each notebook runs in a kernel of its
        own anyway). ``[self]`` for fewer than two."""
        present = [name for name in notebooks if f"{name}.ipynb" in self.submission_files]
        if len(present) < 2:
            return [self]
        return [dataclasses.replace(self, notebook=name) for name in present]

    def in_slot(self, user_id):
        """This task with its learner code run as ``user_id`` (a grading slot's own user)."""
        return dataclasses.replace(self, sandbox=dataclasses.replace(self.sandbox, user_id=user_id))


GRADED, FAILED = "graded", "failed"


@dataclasses.dataclass(frozen=True)
class GradingResult:
    """What grading one submission gave; built by :meth:`graded` or :meth:`failed` only.

    Attributes
    ----------
    assignment_id, student_id, digest : str, the task's
    status : 'graded' or 'failed'
    reason : str or None, why it failed
    scores : dict or None, nbgrader's results (``gradebook_sync.read_scores``); None when failed
    autograded_files : dict {relative path: (bytes, mode)}, the autograded folder
    problems : tuple of str, limits that stopped cells (memory, disk, time)
    verdicts : tuple of CellVerdict
    notes : tuple of str, what the grader found in the submission and did
    seconds : float or None
    log_tail : str, the end of the grading process's log when it failed
    """

    assignment_id: str
    student_id: str
    digest: str
    status: str
    reason: Optional[str] = None
    scores: Optional[dict] = None
    autograded_files: dict = dataclasses.field(default_factory=dict)
    problems: tuple = ()
    verdicts: tuple = ()
    notes: tuple = ()
    seconds: Optional[float] = None
    log_tail: str = ""

    @classmethod
    def graded(cls, task, *, scores, autograded_files, problems=(), verdicts=(), notes=()):
        return cls(task.assignment_id, task.student_id, task.digest, GRADED, scores=scores,
                   autograded_files=dict(autograded_files), problems=tuple(problems),
                   verdicts=tuple(verdicts), notes=tuple(notes))

    @classmethod
    def failed(cls, task, reason, *, log_tail="", notes=()):
        """No result: the reason says why (a failure to grade is never a grade)."""
        return cls(task.assignment_id, task.student_id, task.digest, FAILED, reason=str(reason),
                   log_tail=log_tail, notes=tuple(notes))

    @classmethod
    def combined(cls, task, parts):
        """The result of the whole submission ``task`` from the results of its notebooks
        (``parts``: [(the notebook's task, its result)], see :meth:`GradingTask.per_notebook`).
        One failed notebook fails the submission: it keeps its earlier grades whole."""
        if len(parts) == 1 and parts[0][0].notebook is None:
            return parts[0][1]
        seconds = sum(result.seconds or 0.0 for _, result in parts)
        for part, result in parts:
            if result.status == FAILED:
                return cls.failed(task, f"{part.notebook}.ipynb: {result.reason}", log_tail=result.log_tail,
                                  notes=task.intake_notes).timed(seconds)
        missing = [part.notebook for part, result in parts if part.notebook not in result.scores["notebooks"]]
        if missing:
            return cls.failed(task, f"no scores for {', '.join(missing)}.ipynb in its grading",
                              notes=task.intake_notes).timed(seconds)
        # Each part's gradebook holds every notebook of the submission, only its own graded.
        scores = dict(parts[0][1].scores)
        scores["notebooks"] = {**scores["notebooks"],
                               **{part.notebook: result.scores["notebooks"][part.notebook] for part, result in parts}}
        files = {}
        for _, result in parts:
            files.update(result.autograded_files)
        verdicts = tuple(verdict for _, result in parts for verdict in result.verdicts)
        files = VerdictFile(task.assignment_id, task.student_id, verdicts, task.intake_notes).added_to(files)
        return cls.graded(task, scores=scores, autograded_files=files, verdicts=verdicts, notes=task.intake_notes,
                          problems=[problem for _, result in parts for problem in result.problems]).timed(seconds)

    def timed(self, seconds):
        return dataclasses.replace(self, seconds=seconds)

    @property
    def learner_process_notes(self):
        """'notebook grade_id: message' of each cell failed by the learner process's misbehaviour."""
        return [f"{v.notebook} {v.grade_id}: {v.message[:300]}" for v in self.verdicts if v.learner_process]

    def to_plain(self):
        plain = dataclasses.asdict(self)
        plain["verdicts"] = [verdict.to_plain() for verdict in self.verdicts]
        return plain

    @classmethod
    def from_plain(cls, plain, task):
        """The result of ``task`` that a plain dict (``to_plain``'s) describes; MessageError for
        anything else, or for the result of another task."""
        _require(isinstance(plain, dict), "a result is not an object")
        names = {field.name for field in dataclasses.fields(cls)}
        _require(set(plain) == names, f"a result has the fields {sorted(plain)}, not {sorted(names)}")
        _require((plain["assignment_id"], plain["student_id"], plain["digest"])
                 == (task.assignment_id, task.student_id, task.digest), "a result of another task")
        _require(plain["status"] in (GRADED, FAILED), f"a result with the status {plain['status']!r}")
        _require(plain["status"] == FAILED or isinstance(plain["scores"], dict), "a graded result without scores")
        _require(plain["status"] == GRADED or isinstance(plain["reason"], str), "a failed result without a reason")
        files = plain["autograded_files"]
        _require(isinstance(files, dict) and all(
            isinstance(name, str) and isinstance(entry, tuple) and len(entry) == 2
            and isinstance(entry[0], bytes) and isinstance(entry[1], int) for name, entry in files.items()),
            "the autograded files are not {path: (bytes, mode)}")
        _require(all(not os.path.isabs(name) and ".." not in name.split(os.sep) for name in files),
                 "an autograded file's path leaves the autograded folder")
        _require(plain["seconds"] is None or isinstance(plain["seconds"], (int, float)), "the seconds are not a number")
        return cls(assignment_id=task.assignment_id, student_id=task.student_id, digest=task.digest,
                   status=plain["status"], reason=plain["reason"], scores=plain["scores"], autograded_files=files,
                   problems=_texts(plain["problems"], "the problems"),
                   verdicts=tuple(CellVerdict.from_plain(v) for v in plain["verdicts"]),
                   notes=_texts(plain["notes"], "the notes"), seconds=plain["seconds"],
                   log_tail=_text(plain["log_tail"], "the log"))
