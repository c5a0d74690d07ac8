"""nbgrader settings of a learner's server (read after the site-wide ones)."""

import os

c = get_config()  # noqa: F821 (provided by nbgrader when it reads this file)

# With one OS account for all learners (SimpleLocalProcessSpawner) nbgrader would file
# every submission under that account's name, since it asks JupyterHub for the user
# name only when the account is called `jovyan`. Name the learner from the hub instead.
# With one OS account per learner (LocalProcessSpawner) both are the same name.
if os.environ.get("JUPYTERHUB_USER"):
    c.CourseDirectory.student_id = os.environ["JUPYTERHUB_USER"]
