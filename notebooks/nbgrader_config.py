"""nbgrader settings of the backpropagation course (this folder is the course root).

Run the instructor commands from this folder, e.g. ``nbgrader generate_assignment backprop``,
or use ``make demo`` / ``python -m demo.pipeline`` from the project root.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

COURSE_ROOT = os.path.dirname(os.path.abspath(__file__))

c.CourseDirectory.course_id = "backprop"
c.CourseDirectory.root = COURSE_ROOT

# The exchange (where learners fetch and submit on a shared server). A folder inside the
# course works out of the box for one machine; on JupyterHub point it at the shared
# exchange, e.g. by setting NBGRADER_EXCHANGE=/srv/nbgrader/exchange.
c.Exchange.root = os.environ.get("NBGRADER_EXCHANGE", os.path.join(COURSE_ROOT, "exchange"))

# Per-cell time limit while autograding. The slowest cell (the weight-decay runs of
# generalization.ipynb, six trainings of 1000 iterations) takes about 30 s on a quiet
# two-core machine and about two minutes while other submissions are graded beside it;
# five minutes leaves margin and bounds what an endless loop in a learner's code costs.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Learners sometimes delete a test cell; put it back so that it is graded anyway.
c.OverwriteCells.add_missing_cells = True

# What the release notebooks show in place of the solutions.
c.ClearSolutions.code_stub = {
    "python": (
        "# YOUR CODE HERE: replace this comment and the line below with your code.\n"
        "raise NotImplementedError(\"Not implemented yet: write your code in this cell.\")"
    ),
}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE (replace this line with your answer)"

# Feedback for learners: without the hidden tests' code, also not in tracebacks.
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "course_grading.feedback.HideHiddenTests",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
]

# Feedback pages and formgrader show learners' Markdown and outputs: sanitized, so that
# HTML or JavaScript a learner wrote is never live in a learner's or the instructor's
# browser (course-grade also keeps only inert outputs in the autograded notebooks).
c.HTMLExporter.sanitize_html = True
