"""The learner's Validate, saying in plain words what their editor did to the notebook.

A cell copied and pasted in JupyterLab keeps its nbgrader metadata, so two cells have
one grade id. nbgrader's Validate (the button in JupyterLab and ``nbgrader validate``)
then stops with a traceback that says "the nbgrader metadata may be corrupted".
:class:`CourseValidator` does what ``course-grade`` does with such a notebook (the first
cell keeps the grade id, the copies run as ordinary cells, see
:mod:`course_grading.editors`), validates the rest, and reports the copies as failed
cells with what to do.

nbgrader builds its ``Validator`` by name in two places and offers no setting for the
class, so :func:`use_course_validator` (called from the course's nbgrader_config.py)
points those two names at this subclass.
"""
from __future__ import annotations

import html
import sys
import textwrap

from nbgrader.validator import Validator

from . import editors

#: The modules of nbgrader that build a Validator: the command and JupyterLab's server extension.
_USERS = ("nbgrader.apps.validateapp", "nbgrader.server_extensions.validate_assignment.handlers")
_WIDTH = 80


def copy_message(grade_id, kind, copies):
    """What to tell a learner whose notebook has ``copies`` pasted copies of the cell ``grade_id``."""
    count = "a copy" if copies == 1 else f"{copies} copies"
    text = (f"This notebook has {count} of the {kind} '{grade_id}' (a cell copied and pasted keeps "
            f"hidden data that says which graded cell it is). When your notebook is graded, the first "
            f"of these cells is graded as '{grade_id}' and the others run as ordinary cells, where "
            f"they are. What to do: keep your work in the first of these cells and delete the other"
            f"{' one' if copies == 1 else 's'} (or turn {'it' if copies == 1 else 'them'} into your "
            f"own new cell{'' if copies == 1 else 's'}: Edit > Copy the text, insert a new cell, "
            f"paste it there), then Validate again.")
    return textwrap.fill(text, _WIDTH)


class CourseValidator(Validator):
    """nbgrader's ``Validator`` that reports pasted copies of graded cells instead of
    failing on them."""

    def _preprocess(self, nb):
        self._copies = []
        first, copies = {}, {}
        for cell in nb.cells:
            name = editors.grade_id(cell)
            if name is None:
                continue
            if name in first:
                copies.setdefault(name, []).append(cell)
            else:
                first[name] = cell
        if copies:
            editors.deduplicate(nb.cells)
            for name, cells in copies.items():
                message = copy_message(name, editors.kind(first[name]), len(cells))
                self._copies.append({"source": first[name].source.strip(), "error": html.escape(message),
                                     "raw_error": message})
        return super()._preprocess(nb)

    def validate(self, filename):
        self._copies = []
        results = super().validate(filename)
        if self._copies:
            results["failed"] = self._copies + results.get("failed", [])
        return results


def use_course_validator():
    """Make nbgrader's Validate (command and JupyterLab) use :class:`CourseValidator`."""
    for name in _USERS:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "Validator", None) is Validator:
            module.Validator = CourseValidator
