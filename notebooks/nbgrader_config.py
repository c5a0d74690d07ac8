"""nbgrader settings of the backpropagation course (this folder is the course root).

Run the instructor commands from this folder, e.g. ``nbgrader generate_assignment backprop``,
or use ``make demo`` / ``python -m demo.pipeline`` from the project root.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "backprop"
c.CourseDirectory.root = COURSE_ROOT



def _exchange_root_configured_elsewhere():
    """Whether a site-wide or user nbgrader config (read before this file) sets Exchange.root.

    nbgrader reads this file last and a file's ``c`` starts empty, so the settings read
    before it are not visible here; look into those files themselves.
    """
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config.loader import JSONFileConfigLoader, PyFileConfigLoader

    here = os.path.abspath(__file__)
    for folder in jupyter_config_path():
        for loader_class, name in ((PyFileConfigLoader, "nbgrader_config.py"),
                                   (JSONFileConfigLoader, "nbgrader_config.json")):
            path = os.path.join(folder, name)
            if not os.path.isfile(path) or os.path.abspath(path) == here:
                continue
            try:
                loaded = loader_class(name, path=folder).load_config()
            except Exception:  # nbgrader itself reports a broken config file
                continue
            if "root" in loaded.get("Exchange", {}):
                return True
    return False


# The exchange (where learners fetch and submit on a shared server). A site-wide setting
# (e.g. /etc/jupyter/nbgrader_config.py on JupyterHub, see hub/) or NBGRADER_EXCHANGE wins;
# otherwise a folder inside the course, which works out of the box on one machine.
if "NBGRADER_EXCHANGE" in os.environ:
    c.Exchange.root = os.environ["NBGRADER_EXCHANGE"]
elif not _exchange_root_configured_elsewhere():
    c.Exchange.root = os.path.join(COURSE_ROOT, "exchange")

# Per-cell time limit while autograding. The slowest cell (the weight-decay runs of
# generalization.ipynb, six trainings of 1000 iterations) takes about 30 s on a quiet
# two-core machine and about two minutes while other submissions are graded beside it;
# five minutes leaves margin and bounds what an endless loop in a learner's code costs.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Test cells with hidden tests are put back without a checksum warning each (the
# learners' copies never had the hidden part); real edits are still reported.
c.Autograde.sanitize_preprocessors = [
    "nbgrader.preprocessors.ClearOutput",
    "nbgrader.preprocessors.DeduplicateIds",
    "nbgrader.preprocessors.OverwriteKernelspec",
    "course_grading.overwrite.RestoreHiddenTests",
    "nbgrader.preprocessors.CheckCellMetadata",
]

# Files nbgrader never copies between its folders: its own defaults, and course-grade's
# verdicts (course_grade_verdicts.json, beside each learner's autograded notebooks, for the
# class report): a learner's file of that name is not taken into autograded/, and the
# grader's does not go out with the feedback.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "course_grade_verdicts.json"]

# Learners sometimes delete a test cell; put it back so that it is graded anyway.
c.OverwriteCells.add_missing_cells = True  # also for RestoreHiddenTests, a subclass

# What the release notebooks show in place of the solutions.
c.ClearSolutions.code_stub = {
    "python": (
        "# YOUR CODE HERE: replace this comment and the line below with your code.\n"
        "raise NotImplementedError(\"Not implemented yet: write your code in this cell.\")"
    ),
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE (replace this line with your answer)"

# Feedback for learners: without the hidden tests' code, also not in tracebacks, and each
# diagnosis of a wrong gradient once (later test cells point to it).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "course_grading.feedback.HideHiddenTests",
    "course_grading.feedback.DiagnosisOnce",
    "course_grading.feedback.SanitizeMarkdown",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Pages made with nbconvert's own templates (e.g. nbconvert --to html on an autograded
# notebook) sanitize learners' HTML too; feedback pages get SanitizeMarkdown above, and
# course-grade keeps only inert outputs and sanitized Markdown in the autograded notebooks,
# which formgrader shows.
c.HTMLExporter.sanitize_html = True

# Validate (JupyterLab's button, nbgrader validate) explains a pasted copy of a graded cell
# in plain words, with what to do, instead of a traceback (course_grading/validate.py).
try:
    from course_grading.validate import use_course_validator
except ImportError:  # nbgrader without this project: its own Validate
    pass
else:
    use_course_validator()
