"""Moving grades between a grading process's private gradebook and the course gradebook.

Each grading process autogrades one submission against a private copy of the course's
assignment definitions (the *template*: the gradebook without any submission) and reads
its scores back (:func:`read_scores`). The coordinating process alone writes the course
gradebook: it copies the results in and records the submission as finished in a journal
table, committed in the same transaction as the scores (:func:`record_result`).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import sqlite3
import sys

from nbgrader.api import Gradebook
from sqlalchemy import text

JOURNAL_TABLE = "course_grade_journal"

_SUBMISSION_TABLES = ("grade", "comment", "submitted_notebook", "submitted_assignment")


def put_alembic_on_path():
    """Let nbgrader find the ``alembic`` command of this Python's environment.

    nbgrader's ``Gradebook`` runs ``alembic`` from ``PATH``; a virtual environment used
    without activating it is not on ``PATH``. Child processes inherit the setting.
    """
    scripts = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if scripts not in path.split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([scripts, path]) if path else scripts


def make_template(course_db, template_path):
    """Copy the course gradebook without submissions to ``template_path``.

    Uses SQLite's backup API, so a gradebook in use (formgrader open) is copied consistently.
    """
    source = sqlite3.connect(f"file:{course_db}?mode=ro", uri=True)
    target = sqlite3.connect(template_path)
    with source, target:
        source.backup(target)
    source.close()
    with target:
        for table in _SUBMISSION_TABLES:
            target.execute(f"DELETE FROM {table}")
        target.execute(f"DROP TABLE IF EXISTS {JOURNAL_TABLE}")
    target.execute("VACUUM")
    target.close()


def kernel_names(db_url, assignment_id):
    """Kernelspec names the assignment's notebooks run with (``python3`` at least)."""
    names = {"python3"}
    with Gradebook(db_url) as gb:
        for notebook in gb.find_assignment(assignment_id).notebooks:
            if notebook.kernelspec:
                name = json.loads(notebook.kernelspec).get("name")
                if name:
                    names.add(name)
    return sorted(names)


def read_scores(db_url, assignment_id, student_id):
    """The autograding results (scores, comments) of one submission as plain data, or None if
    there are none."""
    with Gradebook(db_url) as gb:
        try:
            submission = gb.find_submission(assignment_id, student_id)
        except Exception:
            return None
        record = {"timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
                  "notebooks": {}}
        for notebook in submission.notebooks:
            record["notebooks"][notebook.name] = {
                "late_submission_penalty": notebook.late_submission_penalty,
                "flagged": notebook.flagged,
                "grades": {grade.name: {"auto_score": grade.auto_score,
                                        "needs_manual_grade": grade.needs_manual_grade}
                           for grade in notebook.grades},
                "comments": {comment.name: {"auto_comment": comment.auto_comment}
                             for comment in notebook.comments},
            }
        return record


def ensure_journal(gb):
    gb.db.execute(text(
        f"CREATE TABLE IF NOT EXISTS {JOURNAL_TABLE} ("
        " assignment_id TEXT NOT NULL, student_id TEXT NOT NULL, digest TEXT NOT NULL,"
        " status TEXT NOT NULL, reason TEXT, details TEXT, seconds REAL, finished_at TEXT,"
        " PRIMARY KEY (assignment_id, student_id))"))
    gb.db.commit()


def journal(gb, assignment_id):
    """student id -> {'digest', 'status', 'reason'} of the finished submissions of an assignment."""
    rows = gb.db.execute(text(
        f"SELECT student_id, digest, status, reason FROM {JOURNAL_TABLE} WHERE assignment_id = :a"),
        {"a": assignment_id}).fetchall()
    return {row[0]: {"digest": row[1], "status": row[2], "reason": row[3]} for row in rows}


def submission_digest(files):
    """A fingerprint of a submission's files ({relative path: bytes}); a resubmission changes it."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return digest.hexdigest()


def record_result(gb, result):
    """Write one submission's results (a ``messages.GradingResult``) and its journal entry to the course gradebook.

    Scores are set as ``nbgrader autograde`` sets them (``SaveAutoGrades``): a cell
    that a person already graded by hand keeps needing review. The journal entry
    goes into the same final commit as the scores, so after a crash either both are
    there or the submission is graded again.
    """
    assignment_id, student_id = result.assignment_id, result.student_id
    # A failed grading records only that it failed: the grades of an earlier grading stay.
    record = result.scores if result.status == "graded" else None
    gb.update_or_create_student(student_id)
    if record and record.get("timestamp"):
        gb.update_or_create_submission(assignment_id, student_id,
                                       timestamp=datetime.datetime.fromisoformat(record["timestamp"]))
    else:
        gb.update_or_create_submission(assignment_id, student_id)
    if record:
        for name, values in record["notebooks"].items():
            notebook = gb.find_submission_notebook(name, assignment_id, student_id)
            notebook.late_submission_penalty = values["late_submission_penalty"]
            notebook.flagged = values["flagged"]
            for grade in notebook.grades:
                new = values["grades"].get(grade.name)
                if new is None:
                    continue
                grade.auto_score = new["auto_score"]
                grade.needs_manual_grade = bool(new["needs_manual_grade"]) or grade.manual_score is not None
            for comment in notebook.comments:
                new = values["comments"].get(comment.name)
                if new is not None:
                    comment.auto_comment = new["auto_comment"]
    gb.db.execute(text(
        f"INSERT OR REPLACE INTO {JOURNAL_TABLE} "
        "(assignment_id, student_id, digest, status, reason, details, seconds, finished_at) "
        "VALUES (:a, :s, :d, :st, :r, :det, :sec, :t)"),
        {"a": assignment_id, "s": student_id, "d": result.digest, "st": result.status,
         "r": result.reason, "det": json.dumps({"problems": list(result.problems),
                                                "learner_process": result.learner_process_notes}),
         "sec": result.seconds,
         "t": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")})
    gb.db.commit()
