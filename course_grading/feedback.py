"""Feedback pages without the hidden tests.

nbgrader's feedback shows the autograded notebook, in which the hidden tests were put
back to be run. ``HideHiddenTests`` removes their code again, and shortens the error
output of those cells to the diagnosis itself, because a traceback quotes the lines of
code that raised.
"""

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
