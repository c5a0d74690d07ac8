"""The course on a real JupyterHub where every user is their own OS account, driven in
Chromium: release, fetch, Validate, submit, graded on submit, feedback fetched, a written
answer graded by hand, the batch grading after the deadline.

The test runs as root. It creates OS accounts for the instructor and two learners (and
removes them at the end, also after a failure, with every process they had), gives the
instructor a course folder of their own, and starts the hub of hub/jupyterhub_config.py
with LocalProcessSpawner (one account per user), the hub's Python ``.venv-hub`` (made by
``make hub`` from /usr/bin/python3: an interpreter every account can run), on free ports of
127.0.0.1. The grading-on-submit service runs as the instructor's account. The course is a
short copy of ``backprop.ipynb`` (it ends at the grade id ``LAST_CELL``, as in the grading
tests) so that gradings take seconds. Then:

1. the instructor's account generates and releases ``backprop`` (nbgrader's commands);
2. alice and bob log in and fetch it from the Assignments tab; alice puts the instructor's
   answers in, runs all cells, presses Validate ("Success") and submits; bob submits a
   flipped sign in the gradient;
3. without the instructor doing anything, the service grades both and releases each their
   feedback: each fetches their own in the Assignments tab, bob's names his mistake;
4. bob submits again; the service is killed mid-grading, the hub starts it again, and the
   submission is graded exactly once;
5. bob, past the hourly limit (2 in this test), submits again and is told, in the feedback
   of that submission, when it will be graded;
6. in a terminal of alice's JupyterLab (made with her server's REST API and driven over its
   websocket, as Lab does; it runs as her account): she cannot read the source notebook,
   the gradebook, bob's home, submissions or feedback, the service's state, nor list the
   exchange's inbound and feedback folders, while the same terminal reads her own feedback;
   her browser gets no page of the instructor's server (403/404) nor the service's status
   page, which the instructor sees;
7. the instructor grades a written answer of alice by hand in formgrader (inside
   JupyterLab); after the deadline, as the instructor's account, ``nbgrader collect``,
   ``course-grade`` and ``course-grade --force``: every autograded cell of both learners
   keeps the score it got on submit (nbgrader's Gradebook API), and the hand-graded answer
   its score, counted in alice's total.

Nothing may listen outside 127.0.0.1; no process or account started here is left at the end.
Screenshots go to tests/artifacts/hub/. Run it alone with ``pytest -m hub``.
"""

import json
import os
import pwd
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import nbformat
import psutil
import pytest
from nbgrader.api import Gradebook
from playwright.sync_api import expect, sync_playwright

from demo import examples
from demo.courses import LAST_CELL
from test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, kill_and_wait, write_lab_settings

pytestmark = pytest.mark.hub

PROJECT_DIR = Path(__file__).resolve().parent.parent
HUB_DIR = PROJECT_DIR / "hub"
COURSE_DIR = PROJECT_DIR / "notebooks"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "hub"
ASSIGNMENT = "backprop"
INSTRUCTOR, GOOD, BUGGY = "instructor", "alice", "bob"
USERS = (INSTRUCTOR, GOOD, BUGGY)
PASSWORD = "backprop"
PER_HOUR = 2
# A written answer (markdown, graded by hand) of the short course, and the score the
# instructor gives alice's in formgrader (of its 2 points).
WRITTEN_ANSWER = "ex1a_softmax_answer"
MANUAL_SCORE = 1.5
# The hub's own environment (make hub): every account can run its interpreter.
HUB_PYTHON = PROJECT_DIR / ".venv-hub" / "bin" / "python"
BIN = HUB_PYTHON.parent
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"
# The accounts this test makes are marked so that those of an interrupted run are found.
ACCOUNT_COMMENT = "backprop course hub test account"
# Safety nets only: each wait ends as soon as its condition holds.
STARTUP_TIMEOUT = 120
RUN_ALL_TIMEOUT_MS = 300_000
VALIDATE_TIMEOUT_MS = 300_000
GRADE_TIMEOUT = 600
# JupyterHub looks at its services' processes every 30 s and starts a dead one again.
RESTART_TIMEOUT = 120


def proxy_command():
    local = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    return local if local.exists() else shutil.which("configurable-http-proxy")


# --- accounts ------------------------------------------------------------------------------

def account_processes(uids):
    found = []
    for proc in psutil.process_iter(["uids"]):
        try:
            if proc.info["uids"] and proc.info["uids"].real in uids:
                found.append(proc)
        except psutil.NoSuchProcess:
            pass
    return found


def remove_test_accounts():
    """Remove this test's accounts (marked with ACCOUNT_COMMENT), after ending their processes."""
    ours = [entry for entry in pwd.getpwall() if entry.pw_gecos == ACCOUNT_COMMENT]
    uids = {entry.pw_uid for entry in ours}
    leftovers = account_processes(uids)
    kill_and_wait(leftovers)
    for entry in ours:
        subprocess.run(["userdel", entry.pw_name], check=True, capture_output=True)
        subprocess.run(["groupdel", entry.pw_name], capture_output=True)  # gone with the user, usually
    return leftovers


def create_accounts(homes):
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            pass
        else:
            pytest.fail(f"An account {user!r} exists already (not made by this test): the test needs "
                        "the names instructor, alice and bob for accounts of its own. Remove it "
                        f"(userdel {user}) on this test machine, or run the test elsewhere.")
        home = homes / user
        subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell", "/bin/bash",
                        "--comment", ACCOUNT_COMMENT, "--user-group", user], check=True, capture_output=True)
        home.mkdir(parents=True)
        write_lab_settings(home / ".jupyter" / "lab" / "user-settings")
        chown_tree(home, user)
        home.chmod(0o700)


def chown_tree(path, user):
    account = pwd.getpwnam(user)
    for folder, dirs, files in os.walk(path):
        for name in [folder, *(os.path.join(folder, item) for item in dirs + files)]:
            os.chown(name, account.pw_uid, account.pw_gid)


def as_user(user, *command, env=None, cwd=None, timeout=GRADE_TIMEOUT):
    """Run ``command`` as ``user`` (runuser keeps ``env``); returns the CompletedProcess, which
    must have succeeded."""
    result = subprocess.run([RUNUSER, "-u", user, "--", *command], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"{' '.join(command)} as {user} failed:\n{result.stdout}\n{result.stderr}"
    return result


def instructor_env(base, course):
    """The environment of a terminal in the instructor's server (see hub/jupyterhub_config.py)."""
    return dict(
        os.environ,
        HOME=str(base / "home" / INSTRUCTOR), USER=INSTRUCTOR, TMPDIR="/tmp",
        PATH=f"{BIN}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
        JUPYTER_CONFIG_PATH=os.pathsep.join([str(HUB_DIR / "jupyter" / "instructor"),
                                             str(HUB_DIR / "jupyter" / "site")]),
        JUPYTER_PATH=str(HUB_DIR / "share"),
        COURSE_EXCHANGE=str(base / "exchange"),
        COURSE_ROOT=str(course),
        COURSE_HUB_SPAWNER="local",
        OPENBLAS_NUM_THREADS="1",
    )


def short_course(course):
    """The course folder: the course's config and a copy of backprop.ipynb ending at LAST_CELL."""
    source = course / "source" / ASSIGNMENT
    source.mkdir(parents=True)
    shutil.copy(COURSE_DIR / "nbgrader_config.py", course)
    notebook = nbformat.read(COURSE_DIR / "source" / ASSIGNMENT / "backprop.ipynb", as_version=4)
    ids = [cell.get("metadata", {}).get("nbgrader", {}).get("grade_id") for cell in notebook.cells]
    notebook.cells = notebook.cells[:ids.index(LAST_CELL) + 1]
    written = [cell for cell in notebook.cells if cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
               == WRITTEN_ANSWER]
    assert written and written[0].cell_type == "markdown" and written[0].metadata["nbgrader"].get("grade"), (
        f"the short course has no written answer {WRITTEN_ANSWER!r} to grade by hand")
    nbformat.write(notebook, source / "backprop.ipynb")


# --- the hub -------------------------------------------------------------------------------

def start_hub(base, course):
    port = free_port()
    ports = dict(COURSE_HUB_PORT=port, COURSE_HUB_API_PORT=free_port(), COURSE_HUB_HUB_PORT=free_port(),
                 COURSE_HUB_MATHJAX_PORT=free_port(), COURSE_HUB_ON_SUBMIT_PORT=free_port())
    env = dict(os.environ, COURSE_HUB_STATE=str(base / "state"), COURSE_HUB_COURSE_ROOT=str(course),
               COURSE_HUB_EXCHANGE=str(base / "exchange"), COURSE_HUB_SPAWNER="local",
               COURSE_HUB_ON_SUBMIT_STATE=str(base / "on-submit"),
               COURSE_HUB_ON_SUBMIT=ASSIGNMENT, COURSE_HUB_ON_SUBMIT_PER_HOUR=str(PER_HOUR),
               COURSE_HUB_INSTRUCTOR=INSTRUCTOR, COURSE_HUB_LEARNERS=f"{GOOD},{BUGGY}",
               COURSE_HUB_PASSWORD=PASSWORD, **{k: str(v) for k, v in ports.items()},
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("TMPDIR", None)
    log = open(base / "jupyterhub.log", "w")
    process = subprocess.Popen(
        [str(HUB_PYTHON), "-m", "jupyterhub", "-f", str(HUB_DIR / "jupyterhub_config.py")],
        cwd=base / "state", env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    return process, f"http://127.0.0.1:{port}"


def wait_for_hub(process, base, log_path):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{base}/hub/api/", timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterHub did not start:\n" + log_path.read_text()[-4000:])
            time.sleep(0.2)


def own_processes(process):
    try:
        return [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_hub(process, seen):
    """Stop the hub (SIGTERM: it stops the proxy, the services and the users' servers), then
    make sure that every process it ever had is gone, by process id."""
    seen.update(own_processes(process))
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    _, alive = psutil.wait_procs([p for p in seen if p.is_running()], timeout=20)
    kill_and_wait(alive)
    return alive


def listening_addresses(processes):
    addresses = set()
    for proc in processes:
        try:
            for connection in proc.net_connections(kind="inet"):
                if connection.status == psutil.CONN_LISTEN:
                    addresses.add((proc.name(), connection.laddr.ip, connection.laddr.port))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return addresses


def service_process(hub):
    """The grading-on-submit service's process (a child of the hub)."""
    for proc in own_processes(hub)[1:]:
        try:
            if "course_grading.on_submit" in proc.cmdline() and "serve" in proc.cmdline():
                return proc
        except psutil.NoSuchProcess:
            pass
    return None


# --- the browser ---------------------------------------------------------------------------

def log_in(browser, base, user):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{base}/hub/login")
    page.fill("input#username_input", user)
    page.fill("input#password_input", PASSWORD)
    page.click("input#login_submit")
    # The hub starts the server and sends the browser on to JupyterLab.
    page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=STARTUP_TIMEOUT * 1000)
    wait_for_lab(page)
    return page


def wait_for_lab(page):
    page.wait_for_selector("#jp-main-statusbar", timeout=STARTUP_TIMEOUT * 1000)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).wait_for()


def open_lab_page(context_page, base, user, path=""):
    """A second tab of the user's JupyterLab, on ``path`` (a notebook) or the default layout."""
    page = context_page.context.new_page()
    page.goto(f"{base}/user/{user}/lab/tree/{path}?reset" if path else f"{base}/user/{user}/lab?reset")
    wait_for_lab(page)
    return page


def menu(page, top, item):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(rf"^{top}$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(rf"^{item}$")).click()


def assignment_list(page):
    menu(page, "Nbgrader", "Assignment List")
    panel = page.locator("#nbgrader-assignment-list")
    panel.wait_for()
    return panel


def fetch_assignment(page):
    panel = assignment_list(page)
    released = panel.locator("#released_assignments_list .list_item", has_text=ASSIGNMENT)
    released.get_by_role("button", name="Fetch").click()
    expect(panel.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first).to_be_visible(
        timeout=60_000)
    return panel


def submit_assignment(page, submissions_before=0):
    """Press Submit in the Assignments tab; wait until it lists one submission more."""
    panel = assignment_list(page)
    panel.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first.get_by_role(
        "button", name="Submit").click()
    expect(panel.locator("#submitted_assignments_list .nested_list_item")).to_have_count(
        submissions_before + 1, timeout=60_000)


def fetch_feedback(page, base, user, home, timestamp):
    """Press Fetch Feedback in the Assignments tab and open the feedback of the submission
    made at ``timestamp``; returns the feedback's browser page."""
    panel = assignment_list(page)
    panel.locator("#refresh_assignments_list").click()
    submission = panel.locator("#submitted_assignments_list .nested_list_item", has_text=timestamp)
    expect(submission).to_contain_text("(feedback available to fetch)", timeout=60_000)
    panel.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first.get_by_role(
        "button", name=re.compile("Fetch Feedback", re.I)).click()
    expect(submission).to_contain_text("(view feedback)", timeout=60_000)
    feedback = home / ASSIGNMENT / "feedback" / timestamp / "backprop.html"
    view = page.context.new_page()
    view.goto(f"{base}/user/{user}/files/{feedback.relative_to(home)}")
    return view


def wait_for_kernel(page):
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            return bar !== null && /\\| Idle/.test(bar.innerText) && !/No Kernel/.test(bar.innerText);
        }""", timeout=STARTUP_TIMEOUT * 1000, polling=250)


def run_all(page):
    wait_for_kernel(page)
    menu(page, "Run", "Run All Cells")
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const failed = document.querySelector(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], .jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]');
            return failed !== null || (prompts.length > 0
                && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
        }""", timeout=RUN_ALL_TIMEOUT_MS, polling=500)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
    errors = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]')
    assert errors.count() == 0, errors.first.inner_text()


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def wait_until(condition, what, timeout=60):
    """Poll ``condition`` (a state on disk) until it holds; returns its value."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)
    return value


def hidden_test_lines(source_notebook):
    """The code lines between the hidden-test delimiters of the source notebook."""
    lines, hidden = set(), False
    for cell in nbformat.read(source_notebook, as_version=4).cells:
        for line in cell.source.splitlines():
            if "BEGIN HIDDEN TESTS" in line:
                hidden = True
            elif "END HIDDEN TESTS" in line:
                hidden = False
            elif hidden and len(line.strip()) > 12:
                lines.add(line.strip())
    assert lines, "the source notebook has no hidden tests: the check would prove nothing"
    return sorted(lines)


def service_state(base):
    path = base / "on-submit" / "state.json"
    return json.loads(path.read_text()) if path.exists() else {"history": [], "running": {}, "queued": {}}


def gradings(base, learner):
    """The submissions (timestamps) of ``learner`` the service graded, one entry per grading."""
    return [entry["submitted_at"] for entry in service_state(base)["history"]
            if entry["learner"] == learner and entry["outcome"] == "graded"]


def newest_submission(base, learner):
    """The timestamp of ``learner``'s newest submission in the exchange (as root sees it)."""
    names = sorted((base / "exchange" / "backprop" / "inbound").glob(f"{learner}+{ASSIGNMENT}+*"))
    return names[-1].name.rsplit("+", 3)[2] if names else None


def check_feedback_page(view, user, source):
    text = view.locator("body").inner_text()
    assert "HIDDEN TESTS" not in text
    shown = [line for line in hidden_test_lines(source) if line in text]
    assert shown == [], f"hidden test code in the feedback of {user}: {shown}"
    assert re.search(r"Score: [\d.]+ / [\d.]+", text), text[:2000]
    return text


# A terminal of the page's own Jupyter server, driven as JupyterLab drives one: created with
# the REST API (the _xsrf cookie as X-XSRFToken, which the hub's servers ask of every API
# request made with cookies), fed and read over its websocket
# (["stdin", text] in, ["stdout", text] out), deleted at the end, also after a failure.
TERMINAL_JS = """async ({commands, end, timeoutMs}) => {
    const server = location.pathname.match(/^\\/user\\/[^/]+/)[0];
    const cookie = document.cookie.split('; ').find(item => item.startsWith('_xsrf='));
    const headers = {'X-XSRFToken': cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : ''};
    const created = await fetch(`${server}/api/terminals`, {method: 'POST', headers});
    if (!created.ok) {
        return {failure: `POST ${server}/api/terminals: ${created.status} ${await created.text()}`};
    }
    const name = (await created.json()).name;
    let received = '', failure = null;
    try {
        await new Promise((resolve, reject) => {
            const socket = new WebSocket(
                `${location.protocol.replace('http', 'ws')}//${location.host}${server}/terminals/websocket/${name}`);
            const timer = setTimeout(() => { socket.close(); reject(new Error(`no ${end} within ${timeoutMs} ms`)); },
                                     timeoutMs);
            socket.onopen = () => {
                socket.send(JSON.stringify(['set_size', 50, 250]));
                socket.send(JSON.stringify(['stdin', commands.map(command => command + '\\r').join('')]));
            };
            socket.onmessage = message => {
                const [kind, text] = JSON.parse(message.data);
                if (kind === 'stdout') {
                    received += text;
                    if (received.includes(end)) { clearTimeout(timer); socket.close(); resolve(); }
                }
            };
            socket.onerror = () => { clearTimeout(timer); reject(new Error('the websocket failed')); };
        });
    } catch (error) {
        failure = String(error);
    }
    const deleted = await fetch(`${server}/api/terminals/${name}`, {method: 'DELETE', headers});
    const listed = await fetch(`${server}/api/terminals`, {headers});
    const left = listed.ok ? (await listed.json()).map(terminal => terminal.name) : [`listing: ${listed.status}`];
    return {name, received, failure, deleted: deleted.status, left};
}"""
# Printed by the shell, never echoed as typed: the typed lines hold %s and $?, not numbers.
TERMINAL_END = "checks done: 42"


def in_terminal(page, commands, timeout=60):
    """Run ``commands`` (shell lines) in a new terminal of ``page``'s Jupyter server, one after
    the other; returns ``(accounts, results)``: the account the terminal runs as (``id -un``,
    a list of one) and, for each command, (its output, its exit status). The terminal is
    deleted at the end; the server must have no other."""
    typed = ['echo "terminal of $(id -un)"']
    for index, command in enumerate(commands):
        typed.append(f"printf '<<%s>>\\n' {index}; {command}; printf '<</%s %s>>\\n' {index} $?")
    typed.append('echo "checks done: $((6 * 7))"')
    session = page.evaluate(TERMINAL_JS, {"commands": typed, "end": TERMINAL_END, "timeoutMs": timeout * 1000})
    assert session.get("failure") is None, f"{session.get('failure')}; the terminal said:\n{session.get('received', '')[-3000:]}"
    # Deleted, and no terminal left in the server (it had no other).
    assert session["deleted"] == 204 and session["left"] == [], session
    received = session["received"]
    blocks = {int(index): (text, int(status)) for index, text, status
              in re.findall(r"<<(\d+)>>(.*?)<</\1 (\d+)>>", received, re.S)}
    assert sorted(blocks) == list(range(len(commands))), received[-3000:]
    return re.findall(r"terminal of (\w+)", received), [blocks[index] for index in range(len(commands))]


def gradebook_grades(course, scratch):
    """The course gradebook's grades of ASSIGNMENT, through nbgrader's Gradebook API, read by
    root from a copy (SQLite's backup API, read-only: root leaves no file in the instructor's
    folder). Returns ``(cells, totals)``: ``{(student, grade_id): (cell_type, auto_score,
    manual_score, max_score)}`` and ``{student: total score}``."""
    copy = Path(tempfile.mkdtemp(prefix="gradebook-", dir=scratch)) / "gradebook.db"
    source = sqlite3.connect(f"file:{course / 'gradebook.db'}?mode=ro", uri=True)
    target = sqlite3.connect(copy)
    with source, target:
        source.backup(target)
    source.close()
    target.close()
    cells, totals = {}, {}
    with Gradebook(f"sqlite:///{copy}") as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            totals[submission.student_id] = submission.score
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    cells[(submission.student_id, grade.name)] = (
                        grade.cell_type, grade.auto_score, grade.manual_score, grade.max_score)
    shutil.rmtree(copy.parent)
    return cells, totals


def autograded_scores(cells):
    """``{(student, grade_id): auto_score}`` of the autograded (code) cells of ``cells``."""
    return {key: auto for key, (cell_type, auto, _, _) in cells.items() if cell_type == "code"}


def grade_by_hand(teacher, learner, grade_id, score):
    """In formgrader inside the instructor's JupyterLab: Manual Grading, the learner's
    submission of backprop.ipynb, ``score`` typed for the cell ``grade_id``."""
    menu(teacher, "Nbgrader", "Formgrader")
    frame = teacher.frame_locator("iframe").first
    expect(frame.locator("body")).to_contain_text("Manage Assignments", timeout=60_000)
    frame.get_by_role("link", name="Manual Grading").click()
    frame.get_by_role("link", name=ASSIGNMENT, exact=True).click()
    frame.get_by_role("link", name="backprop", exact=True).click()
    # Rows show "Submission #n"; the learner's name is in a hidden link of the row.
    frame.locator("tr", has=frame.locator("a.name-shown", has_text=learner)).locator("a.name-hidden").click()
    field = frame.locator(f"input#{grade_id}")
    expect(field).to_be_visible(timeout=60_000)
    # formgrader binds its inputs only once it has loaded the grades, and moves the focus to
    # the first input when MathJax has typeset the page: a score typed before is lost.
    teacher.locator("iframe").first.element_handle().content_frame().wait_for_function(
        "() => window.formgrader && formgrader.loaded && formgrader.grades.loaded && MathJax.loaded === true",
        timeout=60_000, polling=250)
    field.fill(str(score))
    field.press("Tab")  # formgrader saves when the field is left
    field.evaluate("element => element.scrollIntoView({block: 'center'})")  # for the screenshot


def test_course_on_jupyterhub_one_account_per_user():
    if os.geteuid() != 0:
        pytest.fail("The hub test runs as root: it creates an OS account for each user and starts "
                    "JupyterHub with LocalProcessSpawner.")
    if not HUB_PYTHON.exists():
        pytest.fail(f"{HUB_PYTHON} not found: run `make hub` (or `make test`), which makes the hub's "
                    "environment from /usr/bin/python3.")
    closed = [str(folder) for folder in [PROJECT_DIR, *PROJECT_DIR.parents] if not folder.stat().st_mode & 0o001]
    if closed:
        pytest.fail(f"Other accounts cannot pass through {', '.join(closed)}: every user's server runs "
                    f"{HUB_PYTHON} and imports the project from there. Put the project where every "
                    "account can pass through (not under /root), or chmod o+x those folders.")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM.")
    if proxy_command() is None:
        pytest.fail("configurable-http-proxy not found: run `npm install` in hub/ (bash .ci/run does).")
    if not (HUB_DIR / "node_modules" / "mathjax" / "MathJax.js").exists():
        pytest.fail("MathJax not found in hub/node_modules: run `npm install` in hub/ (bash .ci/run does).")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    remove_test_accounts()  # of an interrupted run
    seen = set()
    with ExitStack() as cleanup:
        # Every account may pass through the test's folder (not list it); homes 0700.
        base = Path(tempfile.mkdtemp(prefix="course-hub-", dir="/tmp"))
        cleanup.callback(shutil.rmtree, base, True)
        base.chmod(0o711)
        cleanup.callback(remove_test_accounts)
        create_accounts(base / "home")
        (base / "state").mkdir(mode=0o700)
        exchange = base / "exchange"
        exchange.mkdir()
        exchange.chmod(0o1777)
        (base / "on-submit").mkdir()
        chown_tree(base / "on-submit", INSTRUCTOR)
        (base / "on-submit").chmod(0o700)
        course = base / "home" / INSTRUCTOR / "course"
        short_course(course)
        chown_tree(course, INSTRUCTOR)
        source = course / "source" / ASSIGNMENT / "backprop.ipynb"
        homes = {user: base / "home" / user for user in USERS}
        env = instructor_env(base, course)

        hub, base_url = start_hub(base, course)
        cleanup.callback(lambda: stop_hub(hub, seen))
        # The release is made, as the instructor, while the hub starts.
        release = subprocess.Popen(
            [RUNUSER, "-u", INSTRUCTOR, "--", str(HUB_PYTHON), "-c",
             "import subprocess, sys\n"
             "for step in (['generate_assignment', 'backprop', '--force'], ['release_assignment', 'backprop', '--force']):\n"
             "    subprocess.run([sys.executable, '-m', 'nbgrader', *step], check=True)"],
            cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL)
        cleanup.callback(lambda: release.poll() is None and release.kill())
        playwright = cleanup.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        cleanup.callback(browser.close)
        wait_for_hub(hub, base_url, base / "jupyterhub.log")
        output, _ = release.communicate(timeout=STARTUP_TIMEOUT)
        assert release.returncode == 0, output
        good, buggy = log_in(browser, base_url, GOOD), log_in(browser, base_url, BUGGY)
        pages = {"alice": good, "bob": buggy}
        try:
            # Each server runs as its user's account.
            servers = {proc.username() for proc in own_processes(hub)
                       if "jupyterhub-singleuser" in " ".join(proc.cmdline())}
            assert servers == {GOOD, BUGGY}, servers
            # Learners see no instructor tools.
            good.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
            expect(good.locator(".lm-Menu-itemLabel", has_text="Assignment List")).to_be_visible()
            expect(good.locator(".lm-Menu-itemLabel", has_text=re.compile("^Formgrader$"))).to_have_count(0)
            good.keyboard.press("Escape")
            for page in (good, buggy):
                fetch_assignment(page)
            shot(good, "01_learner_fetched")

            # alice answers (the instructor's answers), bob flips a sign; written as themselves.
            answers = examples.model_answers(source)
            bob_answers = dict(answers)
            bob_answers[examples.GRADIENT_CELL] = (PROJECT_DIR / "demo" / "submissions" / "flipped_sign.py").read_text()
            for user, given in ((GOOD, answers), (BUGGY, bob_answers)):
                path = homes[user] / ASSIGNMENT / "backprop.ipynb"
                nbformat.write(examples.fill_in(path, given), path)
                chown_tree(path, user)
            submit_assignment(buggy)
            tab = open_lab_page(good, base_url, GOOD, f"{ASSIGNMENT}/backprop.ipynb")
            run_all(tab)
            tab.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate").click()
            dialog = tab.locator(".jp-Dialog")
            dialog.wait_for(timeout=VALIDATE_TIMEOUT_MS)
            expect(dialog).to_contain_text("Success! Your notebook passes all the tests.")
            shot(tab, "02_validate")
            dialog.get_by_role("button", name="OK").click()
            tab.close()
            submit_assignment(good)
            shot(good, "03_learner_submitted")

            # Graded on submit: nobody but the service does anything.
            for user in (GOOD, BUGGY):
                wait_until(lambda: gradings(base, user) == [newest_submission(base, user)],
                           f"the service to grade {user}'s submission", GRADE_TIMEOUT)
            texts = {}
            for user in (GOOD, BUGGY):
                view = fetch_feedback(pages[user], base_url, user, homes[user], newest_submission(base, user))
                # MathJax from the hub's service typesets the page's maths.
                view.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue "
                                       "&& MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0"
                                       " && document.querySelector('.MathJax_CHTML, .MathJax') !== null",
                                       timeout=60_000, polling=250)
                texts[user] = check_feedback_page(view, user, source)
                shot(view, f"04_feedback_{user}")
                view.close()
            assert "its sign is flipped" in texts[BUGGY], texts[BUGGY][:3000]
            assert "its sign is flipped" not in texts[GOOD]

            # bob submits again; the service is killed while grading it, and started again by the hub.
            submit_assignment(buggy, 1)
            second = newest_submission(base, BUGGY)
            running = wait_until(lambda: service_state(base)["running"].get(BUGGY, {}).get("pid"),
                                 "bob's second grading to start", 120)
            killed = service_process(hub)
            assert killed is not None and killed.username() == INSTRUCTOR, killed
            job = psutil.Process(running)
            time.sleep(2)  # into the grading (collect done, course-grade running)
            assert job.is_running() and service_state(base)["running"][BUGGY]["submitted_at"] == second
            os.kill(killed.pid, signal.SIGKILL)
            psutil.wait_procs([killed, job], timeout=30)
            assert not job.is_running(), "the grading job outlived the killed service"
            restarted = wait_until(lambda: (p := service_process(hub)) is not None and p.pid != killed.pid and p,
                                   "the hub to start the service again", RESTART_TIMEOUT)
            wait_until(lambda: second in gradings(base, BUGGY), "the interrupted grading to finish", GRADE_TIMEOUT)
            time.sleep(3)  # a second grading of it, if there were one, would start now
            assert gradings(base, BUGGY) == [gradings(base, BUGGY)[0], second], service_state(base)["history"]
            assert service_process(hub).pid == restarted.pid
            fetch_feedback(buggy, base_url, BUGGY, homes[BUGGY], second).close()

            # Past the hourly limit: bob is told when his next submission will be graded.
            submit_assignment(buggy, 2)
            third = newest_submission(base, BUGGY)
            wait_until(lambda: service_state(base)["queued"].get(f"{BUGGY}/{ASSIGNMENT}", {}).get(
                "told_wait_for") == third, "bob to be told when his submission will be graded", 120)
            view = fetch_feedback(buggy, base_url, BUGGY, homes[BUGGY], third)
            notice = view.locator("body").inner_text()
            shot(view, "05_feedback_later_bob")
            assert re.search(r"will be graded at \d\d:\d\d", notice), notice
            assert third not in gradings(base, BUGGY)

            # What alice cannot read, from her own terminal in JupyterLab; each target exists
            # (as root sees it).
            bob_feedback = sorted((homes[BUGGY] / ASSIGNMENT / "feedback").rglob("backprop.html"))[0]
            targets = [source, course / "gradebook.db", homes[BUGGY] / ASSIGNMENT / "backprop.ipynb", bob_feedback,
                       course / "submitted" / BUGGY / ASSIGNMENT / "backprop.ipynb",
                       course / "feedback" / BUGGY / ASSIGNMENT / "backprop.html",
                       base / "on-submit" / "state.json"]
            folders = [homes[BUGGY], course, exchange / "backprop" / "inbound", exchange / "backprop" / "feedback"]
            assert [path for path in targets + folders if not path.exists()] == []
            # ... while her own feedback and the released notebook are hers to read.
            own = sorted((homes[GOOD] / ASSIGNMENT / "feedback").rglob("backprop.html"))[0]
            released = exchange / "backprop" / "outbound" / ASSIGNMENT / "backprop.ipynb"
            refused = [f"cat {shlex.quote(str(target))}" for target in targets] + [
                f"ls {shlex.quote(str(folder))}" for folder in folders]
            allowed = [f"grep -c 'Score:' {shlex.quote(str(own))}", f"grep -c nbgrader {shlex.quote(str(released))}"]
            accounts, results = in_terminal(good, refused + allowed)
            assert accounts == [GOOD], accounts
            for command, (output, status) in zip(refused, results):
                assert status != 0 and "Permission denied" in output, (command, status, output)
            for command, (output, status) in zip(allowed, results[len(refused):]):
                assert status == 0 and re.search(r"^[1-9]\d*\r?$", output, re.M), (command, status, output)

            # In the browser: not the instructor's server, not the service's page.
            for path in (f"/user/{INSTRUCTOR}/lab", f"/user/{INSTRUCTOR}/files/course/gradebook.db",
                         "/services/on-submit/"):
                response = good.request.get(f"{base_url}{path}", max_redirects=5)
                assert response.status in (403, 404), (path, response.status, response.url)
            forbidden = good.context.new_page()
            forbidden.goto(f"{base_url}/services/on-submit/")
            expect(forbidden.locator("body")).to_contain_text("403")
            shot(forbidden, "06_learner_no_status_page")
            forbidden.close()

            # The instructor's status page: the gradings, the interrupted one once, bob waiting.
            teacher = log_in(browser, base_url, INSTRUCTOR)
            pages["instructor"] = teacher
            status = teacher.context.new_page()
            status.goto(f"{base_url}/services/on-submit/")
            expect(status.locator("h1")).to_have_text("Grading on submit", timeout=60_000)
            rows = status.locator("#gradings tr")
            expect(rows.filter(has_text=GOOD).filter(has_text="graded")).to_have_count(1)
            expect(rows.filter(has_text=BUGGY).filter(has_text="graded")).to_have_count(2)
            expect(status.locator("#queue")).to_contain_text("over the hourly limit")
            shot(status, "07_status_page")
            # alice's written answer graded by hand, in formgrader inside the instructor's
            # JupyterLab (the iframe is not blank).
            on_submit, _ = gradebook_grades(course, base)
            grade_by_hand(teacher, GOOD, WRITTEN_ANSWER, MANUAL_SCORE)
            wait_until(lambda: gradebook_grades(course, base)[0][(GOOD, WRITTEN_ANSWER)][2] == MANUAL_SCORE,
                       "formgrader to save the manual score")
            shot(teacher, "08_formgrader_manual_grade")
            _, by_hand = gradebook_grades(course, base)

            # After the deadline, the instructor's batch grading in their terminal: collect,
            # course-grade (what is not graded yet), course-grade --force (all of it again).
            as_user(INSTRUCTOR, str(HUB_PYTHON), "-m", "nbgrader", "collect", ASSIGNMENT, env=env, cwd=course)
            course_grade = [str(BIN / "course-grade"), ASSIGNMENT, "--course", str(course)]
            # alice's submission, graded on submit, is skipped; bob's newest, held back by the
            # hourly limit, is graded.
            batch = as_user(INSTRUCTOR, *course_grade, env=env, cwd=course).stdout
            assert "graded 1, failed 0, skipped (already graded) 1" in batch, batch
            forced = as_user(INSTRUCTOR, *course_grade, "--force", env=env, cwd=course).stdout
            assert "graded 2, failed 0" in forced, forced
            cells, totals = gradebook_grades(course, base)
            # The same score for every autograded cell as graded on submit; bob's wrong
            # gradient fails some, so the comparison can fail.
            graded_on_submit = autograded_scores(on_submit)
            assert {student for student, _ in graded_on_submit} == {GOOD, BUGGY}, on_submit
            assert any(score < on_submit[key][3] for key, score in graded_on_submit.items() if key[0] == BUGGY)
            assert autograded_scores(cells) == graded_on_submit
            # The hand-graded answer keeps its score, and alice's total counts it.
            assert cells[(GOOD, WRITTEN_ANSWER)][2] == MANUAL_SCORE
            alice_autograded = sum(score for (student, _), score in graded_on_submit.items() if student == GOOD)
            assert totals[GOOD] == pytest.approx(alice_autograded + MANUAL_SCORE), (totals, alice_autograded)
            assert by_hand[GOOD] == pytest.approx(totals[GOOD])

            # Only loopback addresses were listened on by anything started here.
            processes = own_processes(hub)
            seen.update(processes)
            addresses = listening_addresses(processes)
            assert addresses, "no listening sockets found: the check would prove nothing"
            assert {ip for _, ip, _ in addresses} <= {"127.0.0.1"}, addresses
        except BaseException:
            for name, page in pages.items():
                try:
                    shot(page, f"failure_{name}")
                except Exception:
                    pass
            print((base / "jupyterhub.log").read_text()[-6000:])
            for log in (base / "on-submit").glob("*.jobs/*.log"):
                print(log.name, log.read_text()[-3000:])
            raise
        uids = {pwd.getpwnam(user).pw_uid for user in USERS}
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], left
    assert account_processes(uids) == []
    assert not [entry for entry in pwd.getpwall() if entry.pw_gecos == ACCOUNT_COMMENT]
