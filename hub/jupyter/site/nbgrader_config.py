"""Site-wide nbgrader settings of the course's JupyterHub: read by every user's server.

In a real deployment this file goes to /etc/jupyter/nbgrader_config.py (or the hub
sets JUPYTER_CONFIG_PATH to this folder, as hub/jupyterhub_config.py does). Learners
never have the course folder, so whatever their Validate button and fetch/submit need
is set here, not only in the course's notebooks/nbgrader_config.py.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

c.CourseDirectory.course_id = "backprop"
# The one exchange of this machine (hub/jupyterhub_config.py creates it, mode 1777).
c.Exchange.root = os.environ.get("COURSE_EXCHANGE", "/srv/nbgrader/exchange")

# Per-cell time limit of Validate: generalization.ipynb trains for a while, and with
# nbgrader's default (30 s) a correct notebook reports a timeout and then NameErrors
# in the cells after it. Same limit as the course's autograding.
c.Execute.timeout = 300
c.Execute.interrupt_on_timeout = True

# Lab's checkpoints are not part of a submission or a release.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback"]

# Pages made by nbconvert outside nbgrader's own templates load MathJax from the hub too.
c.HTMLExporter.mathjax_url = "/services/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"

# Submitting: no "extra notebooks" warning for Lab's checkpoint copies, which are not
# submitted anyway (course_grading/exchange.py).
c.ExchangeFactory.submit = "course_grading.exchange.SubmitIgnoringCheckpoints"

# Validate (JupyterLab's button, nbgrader validate) explains a pasted copy of a graded cell
# in plain words, with what to do, instead of a traceback (course_grading/validate.py).
try:
    from course_grading.validate import use_course_validator
except ImportError:  # nbgrader without this project: its own Validate
    pass
else:
    use_course_validator()
