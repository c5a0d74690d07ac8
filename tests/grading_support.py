"""Course folders and submissions for the grading tests and the benchmark.

``released_course`` copies the course's configuration and the backprop source notebook
into a temporary folder and releases it; submissions are written from the release
notebook by ``course_grading.examples`` (the notebooks' own example answers) or, for the
attacks, with a gradient cell from ``tests/attacks/``.
"""
from __future__ import annotations

import datetime
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from course_grading import examples
from course_grading.gradebook_sync import put_alembic_on_path

PROJECT = Path(__file__).resolve().parent.parent
COURSE = PROJECT / "notebooks"
ATTACKS = Path(__file__).resolve().parent / "attacks"
ASSIGNMENT = "backprop"
# Only the first notebook: the Part-4 notebook trains for minutes and adds nothing here.
NOTEBOOKS = ("backprop",)


def nbgrader(course_root, *args, check=True):
    """Run an nbgrader command in ``course_root``; returns the CompletedProcess."""
    put_alembic_on_path()
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course_root,
                            capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def released_course(root, notebooks=NOTEBOOKS):
    """A released copy of the course's assignment in ``root`` (only ``notebooks``)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(COURSE / "nbgrader_config.py", root / "nbgrader_config.py")
    source = root / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    for item in (COURSE / "source" / ASSIGNMENT).iterdir():
        if item.is_file() and (item.suffix != ".ipynb" or item.stem in notebooks):
            shutil.copy(item, source / item.name)
    nbgrader(root, "generate_assignment", ASSIGNMENT, "--force")
    return root


def submit_examples(root, names):
    """Submissions of the named examples of ``course_grading.examples`` (first notebook only)."""
    chosen = {name: examples.EXAMPLES[name] for name in names}
    chosen = {name: _only_first_notebook(example) for name, example in chosen.items()}
    return examples.write_submissions(root, chosen)


def _only_first_notebook(example):
    from dataclasses import replace
    return replace(example, notebooks=tuple(n for n in example.notebooks if n in NOTEBOOKS) or NOTEBOOKS)


def submit_gradient(root, student, gradient_source, *, other_answers=True, extra_cells=()):
    """A submission whose gradient cell is ``gradient_source`` (other answers the model answers).

    ``extra_cells`` are code cells the learner added right after the gradient cell.
    """
    import nbformat

    source = Path(root) / "source" / ASSIGNMENT
    release = Path(root) / "release" / ASSIGNMENT
    answers = examples.model_answers(source / "backprop.ipynb") if other_answers else {}
    answers[examples.GRADIENT_CELL] = gradient_source
    notebook = examples.fill_in(release / "backprop.ipynb", answers)
    position = 1 + next(i for i, cell in enumerate(notebook.cells)
                        if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") == examples.GRADIENT_CELL)
    notebook.cells[position:position] = [nbformat.v4.new_code_cell(text) for text in extra_cells]
    folder = Path(root) / "submitted" / student / ASSIGNMENT
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    nbformat.write(notebook, folder / "backprop.ipynb")
    stamp = datetime.datetime(2026, 1, 1, 12, 0, 0)
    (folder / "timestamp.txt").write_text(stamp.strftime("%Y-%m-%d %H:%M:%S.%f UTC"))
    return folder


def attack(name):
    """The gradient cell of the attack ``tests/attacks/<name>.py``."""
    return (ATTACKS / f"{name}.py").read_text()


def copy_course(source, dest):
    """A copy of a course folder (release, submissions, gradebook) to grade separately."""
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(".course_grade", "autograded"))
    return Path(dest)


def scores(db_path):
    """{(student, notebook, cell): (auto_score, needs_manual_grade)} of a gradebook."""
    connection = sqlite3.connect(db_path)
    rows = connection.execute(
        "SELECT student.id, notebook.name, base_cell.name, grade.auto_score, grade.needs_manual_grade "
        "FROM grade JOIN submitted_notebook ON grade.notebook_id = submitted_notebook.id "
        "JOIN notebook ON submitted_notebook.notebook_id = notebook.id "
        "JOIN submitted_assignment ON submitted_notebook.assignment_id = submitted_assignment.id "
        "JOIN student ON submitted_assignment.student_id = student.id "
        "JOIN base_cell ON grade.cell_id = base_cell.id").fetchall()
    connection.close()
    result = {}
    for student, notebook, cell, auto, manual in rows:
        key = (student, notebook, cell)
        assert key not in result, f"grade of {key} recorded twice"
        result[key] = (auto, bool(manual))
    return result


def autograded_max_scores(db_path):
    """{cell: max_score} of the autograded code cells of the assignment."""
    connection = sqlite3.connect(db_path)
    rows = connection.execute(
        "SELECT base_cell.name, grade_cells.max_score FROM grade_cells "
        "JOIN base_cell ON grade_cells.id = base_cell.id WHERE grade_cells.cell_type = 'code'").fetchall()
    connection.close()
    return dict(rows)


def student_scores(db_path, student):
    return {cell: value for (who, _, cell), value in scores(db_path).items() if who == student}


def submissions(db_path):
    """{student: timestamp} of a gradebook's submissions of the assignment."""
    connection = sqlite3.connect(db_path)
    rows = connection.execute(
        "SELECT student.id, submitted_assignment.timestamp FROM submitted_assignment "
        "JOIN student ON submitted_assignment.student_id = student.id").fetchall()
    connection.close()
    found = {}
    for student, stamp in rows:
        assert student not in found, f"{student} submitted twice"
        found[student] = stamp
    return found


def journal(db_path):
    """{student: (status, reason, details)} from course-grade's journal."""
    connection = sqlite3.connect(db_path)
    try:
        rows = connection.execute("SELECT student_id, status, reason, details FROM course_grade_journal").fetchall()
    except sqlite3.OperationalError:
        rows = []
    connection.close()
    return {student: (status, reason, details) for student, status, reason, details in rows}


def course_grade(root, *args, timeout=900, **popen):
    """Run the ``course-grade`` command on the course in ``root``; returns the CompletedProcess."""
    return subprocess.run([sys.executable, "-m", "course_grading.grade", ASSIGNMENT, "--course", str(root), *args],
                          capture_output=True, text=True, timeout=timeout, **popen)
