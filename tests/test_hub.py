"""The course on a real JupyterHub, driven in Chromium: release, fetch, validate, submit,
grade, formgrader, feedback.

The test starts the hub of hub/jupyterhub_config.py (DummyAuthenticator,
SimpleLocalProcessSpawner, configurable-http-proxy, the MathJax service) on free ports of
127.0.0.1 with its state in a temporary folder, and a copy of the course as the
instructor's course folder. Then:

1. the instructor generates and releases ``backprop`` (nbgrader's commands, as in a
   terminal of the instructor's server, with the instructor's config);
2. two learners log in and fetch it from the Assignments tab; alice puts the
   instructor's answers into both notebooks, runs all cells, presses Validate on each
   and gets "Success", and submits; bob submits a flipped sign in the gradient;
3. the instructor collects, grades with ``course-grade`` and (in a copy of the course)
   with ``nbgrader autograde``: the same score for every cell of every submission, read
   through nbgrader's Gradebook API;
4. the instructor grades a written answer in formgrader, inside JupyterLab (the
   iframe is not blank), generates and releases feedback;
5. the learners fetch their feedback and open it: score, diagnosis, maths rendered by
   MathJax from the hub, no hidden test code.

Nothing may listen outside 127.0.0.1, and no process started here may be left at the end.
Screenshots go to tests/artifacts/hub/. Run it alone with ``pytest -m hub``.
"""

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from pathlib import Path

import nbformat
import psutil
import pytest
from playwright.sync_api import expect, sync_playwright

from demo import examples
from test_browser import CHROMIUM, CHROMIUM_ARGS, free_port, write_lab_settings

pytestmark = pytest.mark.hub

PROJECT_DIR = Path(__file__).resolve().parent.parent
HUB_DIR = PROJECT_DIR / "hub"
COURSE_DIR = PROJECT_DIR / "notebooks"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts" / "hub"
ASSIGNMENT = "backprop"
NOTEBOOKS = ("backprop", "generalization")
INSTRUCTOR, GOOD, BUGGY = "instructor", "alice", "bob"
PASSWORD = "backprop"
BIN = Path(sys.executable).parent
# Safety nets only: each wait ends as soon as its condition holds.
STARTUP_TIMEOUT = 120
RUN_ALL_TIMEOUT_MS = 420_000
VALIDATE_TIMEOUT_MS = 420_000
GRADE_TIMEOUT = 900


def proxy_command():
    local = HUB_DIR / "node_modules" / ".bin" / "configurable-http-proxy"
    return local if local.exists() else shutil.which("configurable-http-proxy")


def instructor_env(state, course):
    """The environment of a terminal in the instructor's server (see hub/jupyterhub_config.py)."""
    return dict(
        os.environ,
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        JUPYTER_CONFIG_PATH=os.pathsep.join([str(HUB_DIR / "jupyter" / "instructor"),
                                             str(HUB_DIR / "jupyter" / "site")]),
        JUPYTER_PATH=str(HUB_DIR / "share"),
        JUPYTER_CONFIG_DIR=str(state / "instructor-jupyter"),
        COURSE_EXCHANGE=str(state / "exchange"),
        COURSE_ROOT=str(course),
        COURSE_HUB_SPAWNER="simple",
        OPENBLAS_NUM_THREADS="1",
    )


def nbgrader(env, cwd, *args, timeout=GRADE_TIMEOUT):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def start_hub(state, course):
    port = free_port()
    ports = dict(COURSE_HUB_PORT=port, COURSE_HUB_API_PORT=free_port(),
                 COURSE_HUB_HUB_PORT=free_port(), COURSE_HUB_MATHJAX_PORT=free_port())
    env = dict(os.environ, COURSE_HUB_STATE=str(state), COURSE_HUB_COURSE_ROOT=str(course),
               COURSE_HUB_INSTRUCTOR=INSTRUCTOR, COURSE_HUB_LEARNERS=f"{GOOD},{BUGGY}",
               COURSE_HUB_PASSWORD=PASSWORD, **{k: str(v) for k, v in ports.items()},
               PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    log = open(state / "jupyterhub.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterhub", "-f", str(HUB_DIR / "jupyterhub_config.py")],
        cwd=state, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
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
    """Stop the hub (SIGTERM: it stops the proxy, the service and the users' servers), then
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
    for leftover in alive:
        try:
            leftover.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=10)
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


def submit_assignment(page):
    panel = assignment_list(page)
    panel.locator("#fetched_assignments_list .list_item", has_text=ASSIGNMENT).first.get_by_role(
        "button", name="Submit").click()
    expect(panel.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first).to_be_visible(
        timeout=60_000)


def wait_for_kernel(page):
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            return bar !== null && /\\| Idle/.test(bar.innerText) && !/No Kernel/.test(bar.innerText);
        }""", timeout=STARTUP_TIMEOUT * 1000, polling=250)


def start_run_all(page):
    wait_for_kernel(page)
    menu(page, "Run", "Run All Cells")


def wait_for_run_all(page):
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


def press_validate(page):
    page.locator(".jp-NotebookPanel-toolbar").get_by_role("button", name="Validate").click()


def validation_result(page):
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for(timeout=VALIDATE_TIMEOUT_MS)
    return dialog


def answered(release_notebook, answers):
    return examples.fill_in(release_notebook, answers)


def learner_notebook(state, user, name):
    return state / "home" / user / ASSIGNMENT / f"{name}.ipynb"


def shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


WRITTEN_ANSWER = "ex1a_softmax_answer"


def wait_until(condition, what, timeout=60):
    """Poll ``condition`` (a state on disk or in the gradebook) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


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


def grades_by_cell(course):
    """``{(student, notebook, grade_id): score}`` of every graded cell, through nbgrader's API."""
    from nbgrader.api import Gradebook

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores[(submission.student.id, notebook.name, grade.name)] = grade.score
    return scores


def test_course_on_jupyterhub(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM.")
    if proxy_command() is None:
        pytest.fail("configurable-http-proxy not found: run `npm install` in hub/ (bash .ci/run does).")
    if not (HUB_DIR / "node_modules" / "mathjax" / "MathJax.js").exists():
        pytest.fail("MathJax not found in hub/node_modules: run `npm install` in hub/ (bash .ci/run does).")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    state = tmp_path / "hub"
    course = tmp_path / "course"
    state.mkdir()
    shutil.copytree(COURSE_DIR / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(COURSE_DIR / "nbgrader_config.py", course)
    env = instructor_env(state, course)
    for user in (GOOD, BUGGY, INSTRUCTOR):
        home = state / "home" / user
        write_lab_settings(home / ".jupyter" / "lab" / "user-settings")
    seen = set()
    with ExitStack() as cleanup:
        hub, base = start_hub(state, course)
        cleanup.callback(lambda: stop_hub(hub, seen))
        # The release is made while the hub starts.
        release = subprocess.Popen(
            [sys.executable, "-c",
             "import subprocess, sys\n"
             "for step in (['generate_assignment', 'backprop', '--force'], ['release_assignment', 'backprop', '--force']):\n"
             "    subprocess.run([sys.executable, '-m', 'nbgrader', *step], check=True)"],
            cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL)
        cleanup.callback(lambda: release.poll() is None and release.kill())
        playwright = cleanup.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        cleanup.callback(browser.close)
        wait_for_hub(hub, base, state / "jupyterhub.log")
        output, _ = release.communicate(timeout=STARTUP_TIMEOUT)
        assert release.returncode == 0, output
        good, buggy = log_in(browser, base, GOOD), log_in(browser, base, BUGGY)
        try:
            # Learners see no instructor tools.
            good.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Nbgrader$")).click()
            expect(good.locator(".lm-Menu-itemLabel", has_text="Assignment List")).to_be_visible()
            expect(good.locator(".lm-Menu-itemLabel", has_text=re.compile("^Formgrader$"))).to_have_count(0)
            good.keyboard.press("Escape")

            for page in (good, buggy):
                fetch_assignment(page)
            shot(good, "01_learner_fetched")

            # alice answers both notebooks (the instructor's answers), bob flips a sign.
            source = course / "source" / ASSIGNMENT
            for name in NOTEBOOKS:
                path = learner_notebook(state, GOOD, name)
                nbformat.write(answered(path, examples.model_answers(source / f"{name}.ipynb")), path)
            bob_answers = examples.model_answers(source / "backprop.ipynb")
            bob_answers[examples.GRADIENT_CELL] = (PROJECT_DIR / "demo" / "submissions" / "flipped_sign.py").read_text()
            path = learner_notebook(state, BUGGY, "backprop")
            nbformat.write(answered(path, bob_answers), path)

            # Both notebooks run at once, each in its own tab.
            tabs = {name: open_lab_page(good, base, GOOD, f"{ASSIGNMENT}/{name}.ipynb") for name in NOTEBOOKS}
            for tab in tabs.values():
                start_run_all(tab)
            submit_assignment(buggy)
            for name, tab in tabs.items():
                wait_for_run_all(tab)
                press_validate(tab)
            for name, tab in tabs.items():
                dialog = validation_result(tab)
                expect(dialog).to_contain_text("Success! Your notebook passes all the tests.")
                shot(tab, f"02_validate_{name}")
                dialog.get_by_role("button", name="OK").click()
            # Lab saved the notebooks (Validate saves first), with checkpoints beside them.
            assert (state / "home" / GOOD / ASSIGNMENT / ".ipynb_checkpoints").is_dir()
            submit_assignment(good)
            shot(good, "03_learner_submitted")

            # The instructor collects and grades, twice.
            nbgrader(env, course, "collect", ASSIGNMENT)
            for student in (GOOD, BUGGY):
                assert (course / "submitted" / student / ASSIGNMENT / "backprop.ipynb").exists()
                leftovers = list((course / "submitted" / student / ASSIGNMENT).rglob(".ipynb_checkpoints"))
                assert leftovers == [], leftovers
            nbgrader_copy = tmp_path / "nbgrader-course"
            shutil.copytree(course, nbgrader_copy)
            autograde = subprocess.Popen(
                [sys.executable, "-m", "nbgrader", "autograde", ASSIGNMENT, "--force"],
                cwd=nbgrader_copy, env=dict(env, COURSE_ROOT=str(nbgrader_copy)),
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
            cleanup.callback(lambda: autograde.poll() is None and autograde.kill())
            graded = subprocess.run([sys.executable, "-m", "course_grading.grade", ASSIGNMENT,
                                     "--course", str(course)], cwd=course, env=env,
                                    capture_output=True, text=True, timeout=GRADE_TIMEOUT)
            assert graded.returncode == 0, graded.stdout + graded.stderr
            autograde_output, _ = autograde.communicate(timeout=GRADE_TIMEOUT)
            assert autograde.returncode == 0, autograde_output
            assert "checksum" not in autograde_output.lower(), autograde_output
            ours, theirs = grades_by_cell(course), grades_by_cell(nbgrader_copy)
            assert ours == theirs
            assert ours[(BUGGY, "backprop", "test_gradient_training_set")] == 0
            assert ours[(GOOD, "backprop", "test_gradient_training_set")] == 2

            # A written answer graded by hand, in formgrader inside JupyterLab.
            teacher = log_in(browser, base, INSTRUCTOR)
            menu(teacher, "Nbgrader", "Formgrader")
            frame = teacher.frame_locator("iframe").first
            expect(frame.locator("body")).to_contain_text("Manage Assignments", timeout=60_000)
            shot(teacher, "04_formgrader_in_lab")
            frame.get_by_role("link", name="Manual Grading").click()
            frame.get_by_role("link", name=ASSIGNMENT, exact=True).click()
            frame.get_by_role("link", name="backprop", exact=True).click()
            # Rows show "Submission #n"; the learner's name is in a hidden link of the row.
            frame.locator("tr", has=frame.locator("a.name-shown", has_text=GOOD)).locator("a.name-hidden").click()
            score = frame.locator(f"input#{WRITTEN_ANSWER}")
            expect(score).to_be_visible(timeout=60_000)
            score.fill("1.5")
            score.press("Tab")  # formgrader saves when the field is left
            wait_until(lambda: grades_by_cell(course)[(GOOD, "backprop", WRITTEN_ANSWER)] == 1.5,
                       "the manual grade to be saved")
            shot(teacher, "05_formgrader_manual_grade")

            output = nbgrader(env, course, "generate_feedback", ASSIGNMENT, "--force")
            assert "not recognized" not in output, output
            nbgrader(env, course, "release_feedback", ASSIGNMENT)

            for user, page in ((GOOD, good), (BUGGY, buggy)):
                panel = assignment_list(page)
                panel.locator("#submitted_assignments_list .list_item", has_text=ASSIGNMENT).first.get_by_role(
                    "button", name=re.compile("Fetch Feedback", re.I)).click()
                expect(panel.get_by_text("(view feedback)").first).to_be_visible(timeout=60_000)
                feedback = sorted((state / "home" / user / ASSIGNMENT / "feedback").rglob("backprop.html"))[-1]
                relative = feedback.relative_to(state / "home" / user)
                view = page.context.new_page()
                view.goto(f"{base}/user/{user}/files/{relative}")
                # MathJax from the hub's service typesets the page's maths.
                view.wait_for_function("() => window.MathJax && MathJax.Hub && MathJax.Hub.queue "
                                       "&& MathJax.Hub.queue.pending === 0 && MathJax.Hub.queue.running === 0"
                                       " && document.querySelector('.MathJax_CHTML, .MathJax') !== null",
                                       timeout=60_000, polling=250)
                text = view.locator("body").inner_text()
                shot(view, f"06_feedback_{user}")
                assert "$" not in text, "raw LaTeX in the feedback page"
                assert "HIDDEN TESTS" not in text
                shown = [line for line in hidden_test_lines(source / "backprop.ipynb") if line in text]
                assert shown == [], f"hidden test code in the feedback of {user}: {shown}"
                assert re.search(r"Score: [\d.]+ / [\d.]+", text), text[:2000]
                if user == BUGGY:
                    assert "its sign is flipped" in text, text[:3000]
                else:
                    assert "its sign is flipped" not in text
            # Only loopback addresses were listened on by anything started here.
            processes = own_processes(hub)
            seen.update(processes)
            addresses = listening_addresses(processes)
            assert addresses, "no listening sockets found: the check would prove nothing"
            assert {ip for _, ip, _ in addresses} <= {"127.0.0.1"}, addresses
        except BaseException:
            for name, page in (("failure_alice", good), ("failure_bob", buggy)):
                try:
                    shot(page, name)
                except Exception:
                    pass
            raise
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], left
