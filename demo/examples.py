"""Example submissions: learners' answers put into the release notebooks.

Each example is made the way a learner fills in the release: the answer cells get the
learner's text, and nothing else changes, except where the example is about a learner who
deleted or edited other cells. Answers to the gradient come from ``demo/submissions/*.py``;
the correct answers to everything come from the solution cells of the source notebooks, so
that the solution exists in one place only.
"""

import datetime
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

ANSWER_FILES = Path(__file__).resolve().parent / "submissions"
ASSIGNMENT = "backprop"
NOTEBOOKS = ("backprop", "generalization")
GRADIENT_CELL = "d_loss_by_d_model"

SOLUTION_REGION = re.compile(r"^[ \t]*### BEGIN SOLUTION[ \t]*\n(.*?)^[ \t]*### END SOLUTION[ \t]*\n?",
                             re.MULTILINE | re.DOTALL)

# Cells a cheating learner would like to change: the setup cell (locked) and a test cell.
NEUTERED_SETUP_LINES = (
    "\n# Every test passes from now on.\n"
    "for _name in dir(checks):\n"
    "    if _name.startswith('check_'):\n"
    "        setattr(checks, _name, lambda *args, **kwargs: None)\n"
)


@dataclass(frozen=True)
class Example:
    """One example submission.

    Attributes
    ----------
    gradient : str or None
        File name in ``demo/submissions`` whose text replaces the gradient cell;
        ``"solution"`` for the source notebook's solution; None leaves the release stub.
    other_answers : bool
        Whether the other answer cells get the source notebook's model answers.
    notebooks : tuple of str
        The notebooks submitted (a missing notebook scores zero).
    deleted_cells : tuple of str
        grade_ids of cells the learner deleted.
    edited_cells : tuple of str
        grade_ids of locked or test cells the learner edited.
    about : str
        What the example shows, for the table.
    cell_timeout : int or None
        A per-cell time limit (seconds) for grading this example instead of the course's.
    """

    gradient: object = None
    other_answers: bool = False
    notebooks: tuple = ("backprop",)
    deleted_cells: tuple = ()
    edited_cells: tuple = ()
    about: str = ""
    cell_timeout: object = None


EXAMPLES = {
    "correct": Example("solution", True, NOTEBOOKS, about="the model answers of the source notebooks"),
    "learner_style": Example("learner_style.py", True,
                             about="correct, written for the original notebook (own logistic)"),
    "noisy_stderr": Example("noisy_stderr.py", True, about="correct, but writes to stderr and warns"),
    "untouched": Example(None, False, NOTEBOOKS, about="the release as it was handed out"),
    "returns_zeros": Example("returns_zeros.py", about="the original stub: returns zeros"),
    "transposed": Example("transposed.py", about="hid_to_class transposed"),
    "missing_1_over_m": Example("missing_1_over_m.py", about="sum over the cases, not the average"),
    "flipped_sign": Example("flipped_sign.py", about="target - class_prob"),
    "missing_weight_decay": Example("missing_weight_decay.py", about="no weight decay term"),
    "doubled_weight_decay": Example("doubled_weight_decay.py", about="weight decay added twice"),
    "missing_logistic_derivative": Example("missing_logistic_derivative.py",
                                           about="no h (1 - h) factor"),
    "nan_gradient": Example("nan_gradient.py", about="NaN from log of a negative number"),
    "wrong_keys": Example("wrong_keys.py", about="keys W1 and W2"),
    "wrong_shape": Example("wrong_shape.py", about="input_to_hid transposed (256 x n_hid)"),
    "raises": Example("raises.py", about="raises ValueError"),
    # Each cell that calls the endless loop waits for the time limit; a short one keeps the
    # demo short (the course's own limit is for real, slow but finite, work).
    "never_returns": Example("never_returns.py", about="an endless loop (stopped at 10 s per cell)",
                             cell_timeout=10),
    "syntax_error": Example("syntax_error.py", about="a syntax error"),
    "deleted_test_cells": Example("solution", True,
                                  deleted_cells=("test_gradient_training_set", "test_whole_gradient"),
                                  about="correct, two test cells deleted"),
    "edited_locked_cells": Example("flipped_sign.py",
                                   edited_cells=("setup", "test_gradient_training_set"),
                                   about="flipped sign, setup and a test cell edited to pass"),
}


def strip_solution_markers(source):
    """A solution cell's text as the learner would write it: the delimiters removed."""
    return re.sub(r"^[ \t]*### (BEGIN|END) SOLUTION[ \t]*\n?", "", source, flags=re.MULTILINE)


def _grade_id(cell):
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _solution_cells(notebook):
    return {_grade_id(cell): cell for cell in notebook.cells
            if cell.get("metadata", {}).get("nbgrader", {}).get("solution")}


def model_answers(source_notebook):
    """``{grade_id: text}`` of every answer cell of a source notebook, as a learner writes it."""
    return {grade_id: strip_solution_markers(cell.source)
            for grade_id, cell in _solution_cells(nbformat.read(source_notebook, as_version=4)).items()}


def fill_in(release_notebook, answers, deleted_cells=(), edited_cells=()):
    """The release notebook with ``answers`` ({grade_id: text}) typed into its cells."""
    notebook = nbformat.read(release_notebook, as_version=4)
    cells = []
    for cell in notebook.cells:
        grade_id = _grade_id(cell)
        if grade_id in deleted_cells:
            continue
        if grade_id in answers:
            cell.source = answers[grade_id]
        if grade_id in edited_cells:
            cell.source = (cell.source + NEUTERED_SETUP_LINES if grade_id == "setup"
                           else "# This test is in my way.\npass")
        cells.append(cell)
    notebook.cells = cells
    return notebook


def answers_for(example, notebook_name, source_folder):
    """The answer texts of ``example`` for one notebook."""
    source_notebook = Path(source_folder) / f"{notebook_name}.ipynb"
    answers = model_answers(source_notebook) if example.other_answers else {}
    if notebook_name == "backprop":
        answers.pop(GRADIENT_CELL, None)
        if example.gradient == "solution":
            answers[GRADIENT_CELL] = model_answers(source_notebook)[GRADIENT_CELL]
        elif example.gradient is not None:
            answers[GRADIENT_CELL] = (ANSWER_FILES / example.gradient).read_text()
    return answers


def write_submissions(course_root, examples=None, assignment=ASSIGNMENT):
    """Write ``submitted/<student>/<assignment>/`` for each example from the release notebooks.

    Returns the list of student ids written.
    """
    examples = EXAMPLES if examples is None else examples
    course_root = Path(course_root)
    release = course_root / "release" / assignment
    source = course_root / "source" / assignment
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    for student, example in examples.items():
        folder = course_root / "submitted" / student / assignment
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        for notebook_name in example.notebooks:
            answers = answers_for(example, notebook_name, source)
            notebook = fill_in(release / f"{notebook_name}.ipynb", answers,
                               example.deleted_cells, example.edited_cells)
            nbformat.write(notebook, folder / f"{notebook_name}.ipynb")
        (folder / "timestamp.txt").write_text(timestamp)
    return list(examples)
