"""Course folders and submissions for the grading tests and the benchmark.

``released_course`` copies the course's configuration and the backprop source notebook
into a temporary folder and releases it; submissions are written from the release
notebook by ``course_grading.examples`` (the notebooks' own example answers) or, for the
attacks, with a gradient cell from ``tests/attacks/``.
"""
from __future__ import annotations

import atexit
import datetime
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from course_grading import examples
from course_grading.gradebook_sync import put_alembic_on_path

PROJECT = Path(__file__).resolve().parent.parent
COURSE = PROJECT / "notebooks"
ATTACKS = Path(__file__).resolve().parent / "attacks"
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


def attack(name, gradient=None, root=None):
    """The gradient cell of the attack ``tests/attacks/<name>.py``.

    ``gradient`` names the ``d_loss_by_d_model`` put before the attack's code: a file of
    ``tests/submissions`` or ``"solution"`` (the model answer of the course in ``root``).
    """
    code = (ATTACKS / f"{name}.py").read_text()
    if gradient == "solution":
        code = examples.model_answers(Path(root) / "source" / ASSIGNMENT / "backprop.ipynb")[
            examples.GRADIENT_CELL] + "\n\n" + code
    elif gradient is not None:
        code = (examples.ANSWER_FILES / gradient).read_text() + "\n\n" + code
    return code


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
