"""JupyterHub for the backpropagation course on one machine.

Start it with ``make hub`` (a try-out on 127.0.0.1) or ``jupyterhub -f hub/jupyterhub_config.py``.
Every setting that differs between a try-out and a real deployment is read from an
environment variable (see ``hub/README.md``):

COURSE_HUB_PORT / COURSE_HUB_API_PORT / COURSE_HUB_HUB_PORT
    ports on 127.0.0.1 of the proxy (what browsers open), of the proxy's API and of the hub.
COURSE_HUB_STATE
    folder for the hub's database, cookie secret, the learners' home folders and the exchange.
COURSE_HUB_COURSE_ROOT
    the nbgrader course folder the instructor works in (default: this project's notebooks/).
COURSE_HUB_INSTRUCTOR, COURSE_HUB_LEARNERS, COURSE_HUB_PASSWORD
    user names (learners comma-separated) and the one password of DummyAuthenticator.
COURSE_HUB_SPAWNER
    ``simple`` (default): every server runs as the hub's own OS account, each user with
    its own home folder under the state folder; ``local``: one OS account per user
    (LocalProcessSpawner; the accounts must exist and the hub must run as root). The
    grading-on-submit service then runs as the instructor's account.
COURSE_HUB_ON_SUBMIT
    the assignments graded on submit, comma-separated (default ``backprop``; empty: the
    service is off). COURSE_HUB_ON_SUBMIT_PER_HOUR (default 4) gradings per learner per
    hour, COURSE_HUB_ON_SUBMIT_PARALLEL (default 2) at a time,
    COURSE_HUB_ON_SUBMIT_CELL_TIMEOUT seconds per cell (default: the course's),
    COURSE_HUB_ON_SUBMIT_PORT its port on 127.0.0.1 (default: the hub's port + 4),
    COURSE_HUB_ON_SUBMIT_STATE its folder (queue, history; default: on-submit/ in the state folder).
"""

import os
import pwd
import sys
from pathlib import Path

c = get_config()  # noqa: F821 (provided by JupyterHub when it reads this file)

HUB_DIR = Path(__file__).resolve().parent
PROJECT_DIR = HUB_DIR.parent
STATE = Path(os.environ.get("COURSE_HUB_STATE", HUB_DIR / "state")).resolve()
COURSE_ROOT = Path(os.environ.get("COURSE_HUB_COURSE_ROOT", PROJECT_DIR / "notebooks")).resolve()
EXCHANGE = Path(os.environ.get("COURSE_HUB_EXCHANGE", STATE / "exchange"))
INSTRUCTOR = os.environ.get("COURSE_HUB_INSTRUCTOR", "instructor")
LEARNERS = [name for name in os.environ.get("COURSE_HUB_LEARNERS", "alice,bob").split(",") if name]
SPAWNER = os.environ.get("COURSE_HUB_SPAWNER", "simple")
PORT = int(os.environ.get("COURSE_HUB_PORT", "8000"))
API_PORT = int(os.environ.get("COURSE_HUB_API_PORT", str(PORT + 1)))
HUB_PORT = int(os.environ.get("COURSE_HUB_HUB_PORT", str(PORT + 2)))
MATHJAX_PORT = int(os.environ.get("COURSE_HUB_MATHJAX_PORT", str(PORT + 3)))
ON_SUBMIT_PORT = int(os.environ.get("COURSE_HUB_ON_SUBMIT_PORT", str(PORT + 4)))
ON_SUBMIT = [name for name in os.environ.get("COURSE_HUB_ON_SUBMIT", "backprop").split(",") if name]
# The Python of the hub is the Python of every single-user server and kernel. It must be
# one that every learner's OS account can run (not one under /root); `make hub` makes it.
BIN = Path(sys.executable).parent

STATE.mkdir(parents=True, exist_ok=True)
# The exchange must exist, writable by every learner (sticky, like /tmp), before anyone
# fetches or submits.
if not EXCHANGE.exists():
    EXCHANGE.mkdir(parents=True)
    EXCHANGE.chmod(0o1777)

# Everything listens on the loopback interface only; put a TLS proxy (nginx, Caddy) in
# front to serve a real class.
c.JupyterHub.bind_url = f"http://127.0.0.1:{PORT}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = HUB_PORT
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{API_PORT}"
proxy = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
if proxy.exists():  # `npm install` in hub/ (make hub does it); else the one on PATH
    c.ConfigurableHTTPProxy.command = [str(proxy)]
c.JupyterHub.db_url = f"sqlite:///{STATE / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(STATE / "jupyterhub_cookie_secret")
c.JupyterHub.pid_file = str(STATE / "jupyterhub.pid")
c.ConfigurableHTTPProxy.pid_file = str(STATE / "jupyterhub-proxy.pid")

# Try-out login: any listed user with the one password. A real course uses the
# university's login instead (e.g. oauthenticator, ltiauthenticator).
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = os.environ.get("COURSE_HUB_PASSWORD", "backprop")
c.Authenticator.allowed_users = {INSTRUCTOR, *LEARNERS}
c.Authenticator.admin_users = {INSTRUCTOR}

# MathJax for formgrader and the feedback pages, from this machine (the hub may have no
# internet): the npm package mathjax@2 (nbconvert's templates use MathJax 2's API),
# served read-only at /services/mathjax/ by a small static file server behind the proxy.
c.JupyterHub.services = [{
    "name": "mathjax",
    "url": f"http://127.0.0.1:{MATHJAX_PORT}",
    "command": [sys.executable, str(HUB_DIR / "static_files.py"), "--port", str(MATHJAX_PORT),
                "--prefix", "/services/mathjax/", str(HUB_DIR / "node_modules" / "mathjax")],
    "display": False,
}]

if ON_SUBMIT:
    # Grading on submit (course_grading/on_submit.py): each new submission of these
    # assignments is collected, graded with course-grade and its feedback released to that
    # learner. It reads the exchange's inbound folder and writes the course folder, so it
    # runs as the instructor's account (with one account per user); its page, at
    # /services/on-submit/, lists the queue, the last gradings and the failures, for the
    # hub's admins (the instructor) only.
    on_submit_state = Path(os.environ.get("COURSE_HUB_ON_SUBMIT_STATE", STATE / "on-submit"))
    on_submit_state.mkdir(mode=0o700, exist_ok=True)
    on_submit = {
        "name": "on-submit",
        "url": f"http://127.0.0.1:{ON_SUBMIT_PORT}",
        "command": [sys.executable, "-m", "course_grading.on_submit", "serve", "--course", str(COURSE_ROOT),
                    *[arg for name in ON_SUBMIT for arg in ("--assignment", name)],
                    "--state", str(on_submit_state / "state.json"),
                    "--per-hour", os.environ.get("COURSE_HUB_ON_SUBMIT_PER_HOUR", "4"),
                    "--parallel", os.environ.get("COURSE_HUB_ON_SUBMIT_PARALLEL", "2")],
        "cwd": str(COURSE_ROOT),
        "environment": {
            # The instructor's nbgrader config (course folder, exchange), as in their terminal.
            "JUPYTER_CONFIG_PATH": os.pathsep.join([str(HUB_DIR / "jupyter" / "instructor"),
                                                    str(HUB_DIR / "jupyter" / "site")]),
            "JUPYTER_PATH": str(HUB_DIR / "share"),
            "COURSE_EXCHANGE": str(EXCHANGE),
            "COURSE_ROOT": str(COURSE_ROOT),
            "COURSE_HUB_SPAWNER": SPAWNER,
            "OPENBLAS_NUM_THREADS": "1",
            "PATH": os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"]),
            # Short: the sandboxed kernels' sockets live there.
            "TMPDIR": os.environ.get("TMPDIR", "/tmp") if SPAWNER != "local" else "/tmp",
            **{name: os.environ[name] for name in ("COURSE_DATA_DIR",) if name in os.environ},
        },
        "oauth_no_confirm": True,
    }
    if os.environ.get("COURSE_HUB_ON_SUBMIT_CELL_TIMEOUT"):
        on_submit["command"] += ["--cell-timeout", os.environ["COURSE_HUB_ON_SUBMIT_CELL_TIMEOUT"]]
    if SPAWNER == "local":
        on_submit["user"] = INSTRUCTOR
        account = pwd.getpwnam(INSTRUCTOR)
        os.chown(on_submit_state, account.pw_uid, account.pw_gid)
        # The service's HOME: where nbgrader and Jupyter look for the user's own config.
        on_submit["environment"]["HOME"] = account.pw_dir
    c.JupyterHub.services.append(on_submit)

if SPAWNER == "local":
    # One OS account per user (created beforehand, e.g. `useradd -m alice`): nbgrader
    # then files each submission under the account's name and collect's owner check holds.
    c.JupyterHub.spawner_class = "localprocess"
    c.LocalProcessSpawner.notebook_dir = "~"
else:
    # One OS account (the hub's) for everybody, each user with a home folder of its own.
    # nbgrader would file every submission under that account's name (it only asks
    # JupyterHub for the user name when the account is called `jovyan`); the learners'
    # config below therefore names the learner from JUPYTERHUB_USER.
    c.JupyterHub.spawner_class = "simple"
    c.SimpleLocalProcessSpawner.home_dir_template = str(STATE / "home" / "{username}")
    if os.geteuid() == 0:
        # The servers then run as root too (a try-out in a container or CI machine);
        # Jupyter refuses that unless told.
        c.Spawner.args = ["--allow-root"]

c.Spawner.cmd = [str(BIN / "jupyterhub-singleuser")]
c.Spawner.ip = "127.0.0.1"
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 180


def prepare(spawner):
    """Per-user settings: instructor or learner config, and the course folder for the instructor."""
    name = spawner.user.name
    role = "instructor" if name == INSTRUCTOR else "learner"
    # Later entries of JUPYTER_CONFIG_PATH are read first: site-wide, then the role's.
    spawner.environment["JUPYTER_CONFIG_PATH"] = os.pathsep.join(
        [str(HUB_DIR / "jupyter" / role), str(HUB_DIR / "jupyter" / "site")])
    # nbconvert templates that load MathJax from the hub (feedback and formgrader pages).
    spawner.environment["JUPYTER_PATH"] = str(HUB_DIR / "share")
    spawner.environment["COURSE_EXCHANGE"] = str(EXCHANGE)
    spawner.environment["COURSE_HUB_SPAWNER"] = SPAWNER
    spawner.environment["OPENBLAS_NUM_THREADS"] = "1"
    spawner.environment["PATH"] = os.pathsep.join([str(BIN), "/usr/local/bin", "/usr/bin", "/bin"])
    # The hub's TMPDIR only where every server runs as the hub's account: another
    # account may not be able to write there.
    for passed in ("COURSE_DATA_DIR", "TMPDIR") if SPAWNER != "local" else ("COURSE_DATA_DIR",):
        if passed in os.environ:
            spawner.environment[passed] = os.environ[passed]
    if role == "instructor":
        spawner.environment["COURSE_ROOT"] = str(COURSE_ROOT)
        spawner.notebook_dir = str(COURSE_ROOT)
    if SPAWNER != "local":
        home = Path(spawner.home_dir_template.format(username=name))
        home.mkdir(parents=True, exist_ok=True)


c.Spawner.pre_spawn_hook = prepare
