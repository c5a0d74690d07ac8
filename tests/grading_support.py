"""Course folders and submissions for the grading tests: ``demo.courses``, and the attacks.

The course folders, example submissions and gradebook readers are the demo's
(``demo/courses.py``, shared with the benchmarks); what is here writes submissions whose
gradient cell is an attack from ``tests/attacks/``.
"""
from __future__ import annotations

import datetime
import shutil
from pathlib import Path

from demo import examples
# The tests reach the demo's helpers through this module.
from demo.courses import (ASSIGNMENT, COURSE, autograded_max_scores, copy_course,  # noqa: F401
                          course_grade, journal, nbgrader, released_course, scores,
                          student_scores, submissions, submit_examples)

ATTACKS = Path(__file__).resolve().parent / "attacks"


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
    ``demo/submissions`` or ``"solution"`` (the model answer of the course in ``root``).
    """
    code = (ATTACKS / f"{name}.py").read_text()
    if gradient == "solution":
        code = examples.model_answers(Path(root) / "source" / ASSIGNMENT / "backprop.ipynb")[
            examples.GRADIENT_CELL] + "\n\n" + code
    elif gradient is not None:
        code = (examples.ANSWER_FILES / gradient).read_text() + "\n\n" + code
    return code


