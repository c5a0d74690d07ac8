"""nbgrader's exchange, as learners' servers use it on the course's JupyterHub."""

import os

from nbgrader.exchange.default.submit import ExchangeSubmit
from nbgrader.utils import find_all_files


class SubmitIgnoringCheckpoints(ExchangeSubmit):
    """``nbgrader submit`` that compares only the notebooks it really submits.

    JupyterLab keeps ``.ipynb_checkpoints/<name>-checkpoint.ipynb`` beside every saved
    notebook. The copy leaves them out (``CourseDirectory.ignore``), but nbgrader's check
    for missing and extra notebooks does not, so every learner was told that "extra
    notebooks" were submitted. Here the check skips ignored files; a real difference is
    still reported by nbgrader's own check (and refused in strict mode).
    """

    def _notebooks(self, path):
        root = os.path.abspath(path)
        return sorted(os.path.relpath(name, root) for name in find_all_files(root, exclude=self.coursedir.ignore)
                      if name.endswith(".ipynb"))

    def check_filename_diff(self):
        if self._notebooks(self.release_path) != self._notebooks(self.src_path):
            super().check_filename_diff()
