"""Small course folders with example submissions, for the tests and the benchmarks.

``released_course`` copies the course's configuration and the backprop source notebook
into a temporary folder and releases it; ``submit_examples`` writes submissions from the
release notebook with ``demo.examples`` (the demo's example answers). The rest reads a
gradebook and runs ``course-grade`` on such a course.
"""
from __future__ import annotations

import atexit
import datetime
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from course_grading.gradebook_sync import put_alembic_on_path

from . import examples

PROJECT = Path(__file__).resolve().parent.parent
COURSE = PROJECT / "notebooks"
ASSIGNMENT = "backprop"
# Only the first notebook: the Part-4 notebook trains for minutes and adds nothing here.
NOTEBOOKS = ("backprop",)
# The tests' copy of that notebook ends with this cell: the learning-rate sweep and the
# widgets after it take a third of its running time and test nothing about grading.
# The benchmark grades the whole notebook.
LAST_CELL = "test_reported_training_loss"

_released = {}


def nbgrader(course_root, *args, check=True):
    """Run an nbgrader command in ``course_root``; returns the CompletedProcess."""
    put_alembic_on_path()
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_root,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def released_course(root, notebooks=NOTEBOOKS, last_cell=LAST_CELL):
    """A released copy of the course's assignment in ``root`` (only ``notebooks``).

    ``last_cell`` (a grade_id) ends the notebooks early; None keeps them whole. The release
    is made once per process and copied for each further course.
    """
    key = (tuple(notebooks), last_cell)
    if key not in _released:
        template = Path(tempfile.mkdtemp(prefix="released-course-"))
        atexit.register(shutil.rmtree, template, True)
        _release(template / "course", notebooks, last_cell)
        _released[key] = template / "course"
    shutil.copytree(_released[key], root, dirs_exist_ok=True)
    return Path(root)


def _release(root, notebooks, last_cell):
    import nbformat

    root.mkdir(parents=True)
    shutil.copy(COURSE / "nbgrader_config.py", root / "nbgrader_config.py")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for item in (COURSE / "source" / ASSIGNMENT).iterdir():
        if item.is_file() and (item.suffix != ".ipynb" or item.stem in notebooks):
            shutil.copy(item, source / item.name)
    for path in source.glob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        ids = [cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
        if last_cell is not None and last_cell in ids:
            notebook.cells = notebook.cells[:ids.index(last_cell) + 1]
            nbformat.write(notebook, path)
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")


def submit_examples(root, names, notebooks=NOTEBOOKS):
    """Submissions of the named examples of ``demo.examples``, each with ``notebooks`` (by
    default the first notebook only) whatever the example itself submits."""
    chosen = {name: replace(examples.EXAMPLES[name], notebooks=tuple(notebooks)) for name in names}
    return examples.write_submissions(root, chosen)


def copy_course(source, dest):
    """A copy of a course folder (release, submissions, gradebook) to grade separately."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".course_grade", "autograded"))
    return Path(dest)


def _query(db_path, sql):
    """The rows of ``sql`` on a gradebook; none if the table does not exist yet."""
    connection = sqlite3.connect(db_path)
    try:
        return connection.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        connection.close()


def _unique(pairs, what):
    found = {}
    for key, value in pairs:
        assert key not in found, f"{what} of {key} recorded twice"
        found[key] = value
    return found


def scores(db_path):
    """{(student, notebook, cell): (auto_score, needs_manual_grade)} of a gradebook."""
    rows = _query(db_path,
                  "SELECT student.id, notebook.name, base_cell.name, grade.auto_score, grade.needs_manual_grade "
                  "FROM grade JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
                  "JOIN notebook ON submitted_notebook.notebook_id = notebook.id "
                  "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
                  "JOIN student ON submitted_assignment.student_id = student.id "
                  "JOIN base_cell ON grade.cell_id = base_cell.id")
    return _unique((((student, notebook, cell), (auto, bool(manual)))
                    for student, notebook, cell, auto, manual in rows), "grade")


def autograded_max_scores(db_path):
    """{cell: max_score} of the autograded code cells of the assignment."""
    return dict(_query(db_path, "SELECT base_cell.name, grade_cells.max_score FROM grade_cells "
                                "JOIN base_cell ON grade_cells.id = base_cell.id WHERE grade_cells.cell_type = 'code'"))


def student_scores(db_path, student):
    return {cell: value for (who, _, cell), value in scores(db_path).items() if who == student}


def submissions(db_path):
    """{student: timestamp} of a gradebook's submissions of the assignment."""
    return _unique(_query(db_path, "SELECT student.id, submitted_assignment.timestamp FROM submitted_assignment "
                                   "JOIN student ON submitted_assignment.student_id = student.id"), "submission")


def journal(db_path):
    """{student: (status, reason, details)} from course-grade's journal."""
    rows = _query(db_path, "SELECT student_id, status, reason, details FROM course_grade_journal")
    return {student: (status, reason, details) for student, status, reason, details in rows}


def course_grade(root, *args, timeout=900, **popen):
    """Run the ``course-grade`` command on the course in ``root``; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "course_grading.grade", ASSIGNMENT, "--course", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, **popen)
