"""A graded class made up without grading anything, for the class report's tests and benchmark.

``make_class`` writes an nbgrader course folder as ``course-grade`` and ``nbgrader
generate_feedback`` leave it: the gradebook (through nbgrader's ``Gradebook`` API, with the
assignment's real grade cells read from the source notebooks), course-grade's journal, the
autograded folders with a verdict file each, and feedback pages. Every learner is described
by a :class:`MadeUpLearner`, so a test knows every count the report should show.
"""
from __future__ import annotations

import datetime
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from sqlalchemy import text
from sqlalchemy.exc import SAWarning

from course_grading.gradebook_sync import JOURNAL_TABLE, ensure_journal, put_alembic_on_path
from course_grading.messages import VERDICT_FILE, CellVerdict, VerdictFile

PROJECT = Path(__file__).resolve().parent.parent
COURSE = PROJECT / "notebooks"
ASSIGNMENT = "backprop"
DUEDATE = datetime.datetime(2026, 3, 2, 12, 0, 0)


@dataclass(frozen=True)
class MadeUpLearner:
    """One learner of the made-up class.

    Attributes
    ----------
    status : str
        "graded", "failed" (course-grade's journal says so, with ``reason``), "not graded yet"
        (a submitted folder, nothing in the gradebook) or "not submitted" (in the gradebook's
        list of learners only).
    failed_cells, partly_cells : tuple of str
        grade_ids of autograded cells with 0 points / half the points; the others have full points.
    written : dict
        grade_id -> points given by hand to a written answer; the others still wait.
    notebooks : tuple of str or None
        the notebooks in the autograded folder (None: all of the assignment's).
    seconds_late, late_penalty : float
    verdicts : list, str or None
        the verdict file's cells (plain, as ``verdict`` makes them), written by the grader's
        own ``VerdictFile``; a str is written as the file's whole text; None writes no file.
    notes : list of str
        the verdict file's notes.
    """

    student_id: str
    status: str = "graded"
    reason: str | None = None
    failed_cells: tuple = ()
    partly_cells: tuple = ()
    written: dict = field(default_factory=dict)
    notebooks: tuple | None = None
    seconds_late: float = 0.0
    late_penalty: float = 0.0
    verdicts: object = field(default_factory=list)
    notes: tuple = ()


def verdict(notebook, grade_id, passed, mistakes=(), answers=None, learner_process=False):
    """One cell of a verdict file, plain (``messages.CellVerdict.to_plain``'s layout)."""
    return {"notebook": notebook, "grade_id": grade_id, "passed": passed, "mistakes": list(mistakes),
            "message": "Passed." if passed else "Failed: see the diagnosis.", "answers": answers or {},
            "learner_process": learner_process}


def assignment_cells(source_folder=COURSE / "source" / ASSIGNMENT):
    """``{notebook: [(grade_id, "code" or "markdown", points)]}`` of the assignment's graded cells."""
    cells = {}
    for path in sorted(Path(source_folder).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        cells[path.stem] = [(cell.metadata.nbgrader["grade_id"], cell.cell_type,
                             float(cell.metadata.nbgrader["points"]))
                            for cell in notebook.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade")]
    return cells


def make_class(root, learners, cells=None, assignment=ASSIGNMENT, duedate=DUEDATE):
    """Write the made-up course folder into ``root``; returns ``root`` as a Path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE / "nbgrader_config.py", root / "nbgrader_config.py")
    cells = assignment_cells() if cells is None else cells
    put_alembic_on_path()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SAWarning)
        with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:
            gb.add_assignment(assignment, duedate=duedate)
            for notebook, graded in cells.items():
                gb.add_notebook(notebook, assignment)
                for grade_id, kind, points in graded:
                    gb.add_grade_cell(grade_id, notebook, assignment, max_score=points, cell_type=kind)
            ensure_journal(gb)
            for learner in learners:
                gb.add_student(learner.student_id)
                _add_learner(gb, root, learner, cells, assignment, duedate)
    return root


def _add_learner(gb, root, learner, cells, assignment, duedate):
    if learner.status == "not submitted":
        return
    submitted = root / "submitted" / learner.student_id / assignment
    submitted.mkdir(parents=True, exist_ok=True)
    if learner.status == "not graded yet":
        return
    timestamp = (duedate + datetime.timedelta(seconds=learner.seconds_late) if learner.seconds_late
                 else duedate - datetime.timedelta(hours=1))
    submission = gb.add_submission(assignment, learner.student_id, timestamp=timestamp)
    if learner.status == "graded":
        for number, notebook in enumerate(submission.notebooks):
            notebook.late_submission_penalty = learner.late_penalty if number == 0 else 0.0
            for grade in notebook.grades:
                name = grade.cell.name
                if grade.cell.cell_type == "code":
                    points = grade.cell.max_score
                    grade.auto_score = (0.0 if name in learner.failed_cells
                                        else points / 2 if name in learner.partly_cells else points)
                    grade.needs_manual_grade = False
                elif name in learner.written:
                    grade.manual_score = learner.written[name]
                    grade.needs_manual_grade = False
        _write_files(root, learner, cells, assignment)
    gb.db.execute(text(
        f"INSERT INTO {JOURNAL_TABLE} (assignment_id, student_id, digest, status, reason, details, seconds, "
        "finished_at) VALUES (:a, :s, 'made-up', :st, :r, '{}', 1.0, :t)"),
        {"a": assignment, "s": learner.student_id, "st": learner.status, "r": learner.reason,
         "t": duedate.isoformat()})
    gb.db.commit()


def _write_files(root, learner, cells, assignment):
    autograded = root / "autograded" / learner.student_id / assignment
    feedback = root / "feedback" / learner.student_id / assignment
    autograded.mkdir(parents=True, exist_ok=True)
    feedback.mkdir(parents=True, exist_ok=True)
    for notebook in (learner.notebooks if learner.notebooks is not None else tuple(cells)):
        nbformat.write(nbformat.v4.new_notebook(), autograded / f"{notebook}.ipynb")
        (feedback / f"{notebook}.html").write_text(
            f"<!DOCTYPE html><title>{notebook}</title><p>Feedback of {learner.student_id}</p>\n")
    if isinstance(learner.verdicts, str):
        (autograded / VERDICT_FILE).write_text(learner.verdicts)
    elif learner.verdicts is not None:
        cells = tuple(CellVerdict.from_plain(cell) for cell in learner.verdicts)
        (autograded / VERDICT_FILE).write_text(
            VerdictFile(assignment, learner.student_id, cells, tuple(learner.notes)).to_json())
