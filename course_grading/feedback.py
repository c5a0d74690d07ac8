"""Feedback pages without the hidden tests, and with each diagnosis once.

nbgrader's feedback shows the autograded notebook, in which the hidden tests were put
back to be run. ``HideHiddenTests`` removes their code again, and shortens the error
output of those cells to the diagnosis itself, because a traceback quotes the lines of
code that raised. ``DiagnosisOnce`` keeps a wrong gradient's diagnosis ("What looks
wrong, layer by layer") in the first test cell that shows it; later cells point there.
"""

import re

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, NbGraderPreprocessor
from traitlets import List

from .outputs import sanitize_markdown_cells


class HideHiddenTests(ClearHiddenTests):
    """Remove hidden test code, and its traceback lines, from the instructor's test cells.

    Only test cells (graded, not solution cells) are touched: their source comes from
    the instructor's gradebook, whereas a learner's own cell may contain anything, even
    a delimiter without its partner, and must not break the feedback of that learner.
    """

    # nbconvert's HTML exporter configures ``NbConvertBase.display_data_priority`` for every
    # preprocessor; nbgrader's base class redeclares the trait without ``config=True``, so
    # each feedback run warned "Config option display_data_priority not recognized by
    # HideHiddenTests". Accept it, as nbgrader's own GetGrades does (it is not used here).
    display_data_priority = List(ClearHiddenTests.display_data_priority.make_dynamic_default()).tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or not utils.is_grade(cell) or utils.is_solution(cell):
            return cell, resources
        if self._remove_hidden_test_region(cell):
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class SanitizeMarkdown(NbGraderPreprocessor):
    """The learners' Markdown cells with their HTML made inert, for the feedback pages
    (nbgrader's feedback template does not sanitize; see ``course_grading.outputs``)."""

    # Accepted for the same reason as in HideHiddenTests above.
    display_data_priority = List(ClearHiddenTests.display_data_priority.make_dynamic_default()).tag(config=True)

    def preprocess(self, nb, resources):
        return sanitize_markdown_cells(nb), resources


#: Where a test cell's message gives the diagnosis of the learner's gradient
#: (``course_utils.checks``); it runs to the end of the message.
DIAGNOSIS_HEADING = "What looks wrong, layer by layer:"
_BATCH_SIZE = re.compile(r" \((\d+) in the test above\)")


def _is_test_cell(cell):
    return cell.cell_type == "code" and utils.is_grade(cell) and not utils.is_solution(cell)


class DiagnosisOnce(NbGraderPreprocessor):
    """Show a gradient's diagnosis in the first test cell that has it; in later test cells
    with the same diagnosis, a line that points to that cell instead.

    Only the grader's outputs of test cells are read and changed (see ``HideHiddenTests``):
    a learner's cell may print anything, also text that looks like a diagnosis.
    """

    display_data_priority = List(ClearHiddenTests.display_data_priority.make_dynamic_default()).tag(config=True)

    def preprocess(self, nb, resources):
        shown = {}
        for cell in nb.cells:
            if not _is_test_cell(cell):
                continue
            grade_id = cell.metadata.nbgrader["grade_id"]
            for output in cell.get("outputs", []):
                if output.output_type != "error" or DIAGNOSIS_HEADING not in output.get("evalue", ""):
                    continue
                diagnosis = output.evalue[output.evalue.index(DIAGNOSIS_HEADING):]
                key = _BATCH_SIZE.sub("", diagnosis)
                if key not in shown:
                    shown[key] = grade_id
                    continue
                sizes = sorted(set(_BATCH_SIZE.findall(diagnosis)), key=int)
                here = f" (here m = {', '.join(sizes)})" if sizes else ""
                pointer = f"{DIAGNOSIS_HEADING} the same as in {shown[key]} above{here}."
                output.evalue = output.evalue.replace(diagnosis, pointer)
                output.traceback = [line.replace(diagnosis, pointer) for line in output.get("traceback", [])]
        return nb, resources
