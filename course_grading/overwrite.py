"""Putting the instructor's test cells back into a submission without false alarms.

nbgrader's ``OverwriteCells`` compares the checksum of each locked cell of a submission
with the one stored at ``generate_assignment``. For a cell with hidden tests the stored
checksum is that of the source cell (hidden tests included), while learners only ever
had the release version (hidden tests cut out), so every such cell of every submission
was reported as changed ("Attribute 'checksum' for cell ... has changed!"), and warnings
about cells a learner really edited drowned among them.
"""

import copy

from nbgrader import utils
from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells


class RestoreHiddenTests(OverwriteCells):
    """``OverwriteCells`` that restores an unchanged hidden-test cell silently.

    A locked cell whose text is exactly the release version of its source cell gets the
    source back before nbgrader's check; any other difference is still reported (and
    overwritten) by ``OverwriteCells`` itself.
    """

    def preprocess_cell(self, cell, resources, cell_index):
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id is not None and utils.is_locked(cell):
            try:
                source_cell = self.gradebook.find_source_cell(grade_id, self.notebook_id, self.assignment_id)
            except Exception:  # a cell unknown to the gradebook: OverwriteCells says so
                source_cell = None
            if source_cell is not None and source_cell.locked and cell.source != source_cell.source:
                released = copy.deepcopy(cell)
                released.source = source_cell.source
                if ClearHiddenTests(parent=self.parent)._remove_hidden_test_region(released) and released.source == cell.source:
                    cell.source = source_cell.source
        return super().preprocess_cell(cell, resources, cell_index)
