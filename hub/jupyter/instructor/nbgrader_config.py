"""nbgrader settings of the instructor's server (read after the site-wide ones).

The course's own settings (time limits, feedback without hidden tests, ...) are in the
course folder's nbgrader_config.py, which nbgrader reads last.
"""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

c.CourseDirectory.root = os.environ.get("COURSE_ROOT", "/srv/nbgrader/backprop")

# With one OS account for all learners every submission belongs to that account, and
# collect warns "cheating attempt?" for each; only there is the check turned off. With
# one OS account per learner (COURSE_HUB_SPAWNER=local) it stays on.
if os.environ.get("COURSE_HUB_SPAWNER", "simple") != "local":
    c.ExchangeCollect.check_owner = False
