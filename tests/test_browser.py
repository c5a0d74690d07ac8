"""The training dashboard in a real browser: JupyterLab on the release notebook, in Chromium.

The test generates the release version of the assignment with nbgrader in a temporary
copy of the course, puts the instructor's answers (read from the source notebook's
solution cells) into its solution cells, serves it with JupyterLab (free port, random
token, temporary folders for every setting), runs all cells through the menu, changes the
learning-rate slider, clicks Train, and checks that the plot was redrawn with the numbers
of ``course_utils.train`` and that no cell shows an error. Screenshots go to
tests/artifacts/ (``browser_dashboard.png``, or ``browser_failure.png`` when it fails).

To save time, nbgrader, JupyterLab and Chromium start at the same time.
"""

import json
import os
import re
import secrets
import shutil
import socket
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

import course_utils

PROJECT_DIR = Path(__file__).resolve().parent.parent
COURSE_DIR = PROJECT_DIR / "notebooks"
ASSIGNMENT = "backprop"
NOTEBOOK = "backprop.ipynb"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\s*$")
NEW_LEARNING_RATE = "0.5"
# Safety nets only: on a busy 2-core machine the whole test takes about a minute.
STARTUP_TIMEOUT = 120
RUN_ALL_TIMEOUT_MS = 180_000


def isolated_environment(tmp_path):
    """Environment variables that keep Jupyter's and nbgrader's settings inside ``tmp_path``."""
    return dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        JUPYTER_CONFIG_DIR=str(tmp_path / "jupyter-config"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "jupyter-runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        # The notebook's small matrix products are faster on one BLAS thread.
        OPENBLAS_NUM_THREADS="1",
    )


def start_release_generation(tmp_path, env):
    """Copy the course and start ``nbgrader generate_assignment`` in it; returns the process."""
    course = tmp_path / "course"
    shutil.copytree(COURSE_DIR / "source" / ASSIGNMENT, course / "source" / ASSIGNMENT,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copy(COURSE_DIR / "nbgrader_config.py", course)
    return subprocess.Popen(
        [sys.executable, "-m", "nbgrader", "generate_assignment", ASSIGNMENT, "--no-db", "--force"],
        cwd=course, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )


def answered_release(generation, tmp_path, learner_folder):
    """Wait for the release, put the instructor's answers into its solution cells and copy
    its notebooks into ``learner_folder`` (what a learner has after fetching it)."""
    output, _ = generation.communicate(timeout=STARTUP_TIMEOUT)
    assert generation.returncode == 0, output
    course = tmp_path / "course"
    source = nbformat.read(course / "source" / ASSIGNMENT / NOTEBOOK, as_version=4)
    answers = {
        cell.metadata["nbgrader"]["grade_id"]: "\n".join(
            line for line in cell.source.splitlines() if not SOLUTION_MARKER.match(line))
        for cell in source.cells
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution")
    }
    assert "d_loss_by_d_model" in answers
    release = course / "release" / ASSIGNMENT
    notebook = nbformat.read(release / NOTEBOOK, as_version=4)
    filled = 0
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.cell_type == "code" and grade_id in answers:
            assert "NotImplementedError" in cell.source, "the release should not contain the solution"
            cell.source = answers[grade_id]
            filled += 1
    assert filled == len(answers)
    for other in release.glob("*.ipynb"):
        shutil.copy(other, learner_folder)
    nbformat.write(notebook, learner_folder / NOTEBOOK)


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_lab_settings(settings_dir):
    settings = {
        # Every cell stays in the page, so the test can look at all outputs.
        "notebook-extension/tracker": {"windowingMode": "none"},
        # No "get notified about news?" pop-up over the notebook, and no network access.
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
    }
    for name, values in settings.items():
        plugin, file = name.split("/")
        folder = settings_dir / "@jupyterlab" / plugin
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{file}.jupyterlab-settings").write_text(json.dumps(values))


def turn_off_nbgrader_extensions(config_dir):
    """nbgrader's own extensions (formgrader, assignment list, validate button) play no part
    in the widgets; without them JupyterLab starts seconds sooner on a busy machine."""
    config_dir.mkdir(parents=True, exist_ok=True)
    server_extensions = {f"nbgrader.server_extensions.{name}": False for name in (
        "formgrader", "validate_assignment", "assignment_list", "course_list")}
    (config_dir / "jupyter_server_config.json").write_text(
        json.dumps({"ServerApp": {"jpserver_extensions": server_extensions}}))
    (config_dir / "labconfig").mkdir(exist_ok=True)
    (config_dir / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyter/nbgrader": True}}))


def start_jupyter_lab(folder, tmp_path, env):
    """Start JupyterLab on ``folder`` with a free port and a random token.

    Returns (process, base URL, token); stop it with ``stop_jupyter_lab``.
    """
    port, token = free_port(), secrets.token_hex(16)
    write_lab_settings(Path(env["JUPYTERLAB_SETTINGS_DIR"]))
    turn_off_nbgrader_extensions(Path(env["JUPYTER_CONFIG_DIR"]))
    with open(tmp_path / "jupyter-lab.log", "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={folder}",
             # Containers and CI machines often run the tests as root.
             "--ServerApp.allow_root=True"],
            cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    return process, f"http://127.0.0.1:{port}", token


def wait_for_jupyter_lab(process, base, token, log_path):
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("JupyterLab did not start:\n" + log_path.read_text()[-3000:])
            time.sleep(0.2)


def stop_jupyter_lab(process, base, token):
    """Shut the server down (it stops its kernels); kill what is left, by process id."""
    try:
        descendants = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    try:
        request = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(request, timeout=10).close()
        process.wait(timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        stop_process(process)
    _, alive = psutil.wait_procs(descendants, timeout=10)
    kill_and_wait(alive)


def kill_and_wait(processes, timeout=10):
    """Kill each of ``processes`` (psutil.Process) that is still there, and wait for them."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(processes, timeout=timeout)


def stop_process(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def lab_page(tmp_path):
    """A Chromium page with JupyterLab open on a folder holding the answered release notebook.

    Everything started here is stopped afterwards, also when the test fails.
    """
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium or set CHROMIUM.")
    env = isolated_environment(tmp_path)
    learner_folder = tmp_path / "learner"
    learner_folder.mkdir()
    with ExitStack() as cleanup:
        generation = start_release_generation(tmp_path, env)
        cleanup.callback(stop_process, generation)
        process, base, token = start_jupyter_lab(learner_folder, tmp_path, env)
        cleanup.callback(stop_jupyter_lab, process, base, token)
        playwright = cleanup.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        cleanup.callback(browser.close)

        wait_for_jupyter_lab(process, base, token, tmp_path / "jupyter-lab.log")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # JupyterLab loads while nbgrader is still at work. "reset": the default layout,
        # whatever a saved workspace says.
        page.goto(f"{base}/lab?token={token}&reset")
        answered_release(generation, tmp_path, learner_folder)
        yield page


def error_outputs(page):
    """Texts of the outputs that show an error (stderr, tracebacks, widgets that failed)."""
    stderr = page.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    broken_widgets = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    return [stderr.nth(i).inner_text() for i in range(stderr.count())] + [
        broken_widgets.nth(i).inner_text() for i in range(broken_widgets.count())]


def wait_for_kernel(page):
    """Wait until the notebook's kernel is connected and idle.

    The status bar says "Python 3 (ipykernel) | Idle" only then; the toolbar's execution
    indicator says "idle" already before the kernel exists, and "Run All" then skips
    every cell.
    """
    page.wait_for_function(
        """() => {
            const bar = document.querySelector('#jp-main-statusbar');
            return bar !== null && /\\| Idle/.test(bar.innerText) && !/No Kernel/.test(bar.innerText);
        }""",
        timeout=STARTUP_TIMEOUT * 1000, polling=250,
    )


def run_all_cells(page):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Done when every code cell has an execution number (none is queued or running), or
    # when a cell failed: JupyterLab then skips the cells after it.
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            const failed = document.querySelector(
                '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]');
            return failed !== null || (prompts.length > 0
                && prompts.every(p => /\\[\\d+\\]/.test(p.textContent)));
        }""",
        timeout=RUN_ALL_TIMEOUT_MS, polling=250,
    )
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]')


def open_notebook(page, name):
    """Open ``name`` from JupyterLab's file browser, as a learner does."""
    page.get_by_role("button", name="Refresh the file browser.").click()
    page.locator(".jp-DirListing-item", has_text=name).dblclick()


def test_dashboard_trains_in_jupyterlab(lab_page, solution, datas):
    page = lab_page
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "browser_failure.png").unlink(missing_ok=True)  # from an earlier run
    expected = course_utils.train(solution, 0, 10, 30, float(NEW_LEARNING_RATE), 0, False, 10,
                                  datas=datas, check_gradient=False)
    try:
        open_notebook(page, NOTEBOOK)
        wait_for_kernel(page)
        run_all_cells(page)
        assert error_outputs(page) == []

        # The accessible name starts with the icon's glyph.
        train = page.get_by_role("button", name=re.compile(r"^\W*Train$"))
        dashboard = page.locator(".widget-vbox", has=train).filter(has=page.locator("img.widget-image")).last
        plot = dashboard.locator("img.widget-image").first
        status = dashboard.locator(".widget-label", has_text=re.compile("click Train|Finished|Diverged"))
        expect(status).to_contain_text("click Train")  # nothing was trained by running all cells
        dashboard.scroll_into_view_if_needed()
        plot_before = (plot.get_attribute("src"), plot.screenshot())

        slider = dashboard.locator(".widget-slider", has=page.locator("label", has_text="learning rate"))
        readout = slider.locator(".widget-readout")
        readout.click()
        page.keyboard.press("Control+A")
        page.keyboard.type(NEW_LEARNING_RATE)
        page.keyboard.press("Enter")
        expect(readout).to_have_text(NEW_LEARNING_RATE)

        train.click()
        expect(status).to_contain_text(f"Finished 30 iterations (learning rate {NEW_LEARNING_RATE},",
                                       timeout=30_000)
        table = dashboard.locator("table")
        expect(table).to_contain_text(f"{expected.metrics['train']['loss']:.6g}")
        dashboard.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "browser_dashboard.png"))

        plot_after = (plot.get_attribute("src"), plot.screenshot())
        assert plot_after[0] != plot_before[0], "the plot image was not replaced"
        assert plot_after[1] != plot_before[1], "the plot looks the same after training"
        assert "Nothing was trained" not in dashboard.inner_text()
        for split in ("train", "val", "test"):
            assert f"{expected.metrics[split]['error_rate']:.2%}" in table.inner_text()
        assert error_outputs(page) == []

        # A learner drags the slider and clicks Train at once: the run uses the value the
        # slider shows when the click comes (the browser sends a click at once, but holds
        # back a slider's later updates while the kernel has not answered an earlier one).
        handle = slider.locator(".noUi-handle")
        box = handle.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        page.mouse.down()
        for step in range(1, 11):
            page.mouse.move(box["x"] + box["width"] / 2 - 6 * step, box["y"] + box["height"] / 2)
        page.mouse.up()
        shown = readout.inner_text()
        assert shown != NEW_LEARNING_RATE, "the drag did not move the slider"
        train.click()
        expect(status).to_contain_text(f"(learning rate {shown},", timeout=30_000)
        # What a click handler prints goes to JupyterLab's log console, not to a cell; its
        # status bar item shows up when there is any.
        expect(page.locator(".jp-LogConsoleStatusItem")).to_be_hidden()
    except BaseException:
        page.screenshot(path=str(ARTIFACTS / "browser_failure.png"), full_page=True)
        raise
