"""The course's nbgrader_config.py and the hub's site-wide config, as nbgrader reads them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
HUB_DIR = PROJECT_DIR / "hub"

SHOW_CONFIG = """
import json
from nbgrader.apps.baseapp import NbGrader
app = NbGrader()
app.initialize([])
print(json.dumps({"exchange": app.config.Exchange.get("root"),
                  "timeout": app.config.Execute.get("timeout"),
                  "course": app.config.CourseDirectory.get("course_id")}))
"""


def loaded_config(tmp_path, config_path=(), course_file=True, **env):
    """What nbgrader has loaded, run in a copy of the course folder with its own config folders."""
    course = tmp_path / "course"
    if not course.exists():
        course.mkdir()
        if course_file:
            shutil.copy(PROJECT_DIR / "notebooks" / "nbgrader_config.py", course)
    environment = {k: v for k, v in os.environ.items() if k != "NBGRADER_EXCHANGE"}
    environment.update(JUPYTER_CONFIG_DIR=str(tmp_path / "user-config"),
                       JUPYTER_CONFIG_PATH=os.pathsep.join(map(str, config_path)), **env)
    result = subprocess.run([sys.executable, "-c", SHOW_CONFIG], cwd=course, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1]), course


def test_course_local_exchange_when_nothing_else_is_configured(tmp_path):
    config, course = loaded_config(tmp_path)
    assert config["exchange"] == str(course / "exchange")


def test_site_wide_exchange_is_not_overridden_by_the_course(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "nbgrader_config.py").write_text("c.Exchange.root = '/srv/nbgrader/exchange'\n")
    config, _ = loaded_config(tmp_path, [site])
    assert config["exchange"] == "/srv/nbgrader/exchange"


def test_site_wide_exchange_in_json_is_respected_too(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "nbgrader_config.json").write_text(json.dumps({"Exchange": {"root": "/srv/x"}}))
    config, _ = loaded_config(tmp_path, [site])
    assert config["exchange"] == "/srv/x"


def test_environment_variable_wins(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "nbgrader_config.py").write_text("c.Exchange.root = '/srv/nbgrader/exchange'\n")
    config, _ = loaded_config(tmp_path, [site], NBGRADER_EXCHANGE="/elsewhere")
    assert config["exchange"] == "/elsewhere"


@pytest.mark.parametrize("role", ["learner", "instructor"])
def test_hub_site_config_gives_every_server_the_exchange_and_the_cell_time_limit(tmp_path, role):
    """A learner's Validate runs with the course's per-cell limit, not nbgrader's 30 s."""
    folders = [HUB_DIR / "jupyter" / role, HUB_DIR / "jupyter" / "site"]
    # A learner's server has no course folder: only the hub's config speaks.
    config, _ = loaded_config(tmp_path, folders, course_file=False, COURSE_EXCHANGE="/srv/hub-exchange")
    assert config == {"exchange": "/srv/hub-exchange", "timeout": 300, "course": "backprop"}
