"""Benchmark: grading on submit, from a learner's Submit to the feedback being fetchable.

Releases the course's assignment (the whole ``backprop.ipynb`` and ``generalization.ipynb``)
into an exchange in a temporary folder, starts the grading-on-submit service
(``course-on-submit serve``, as the hub starts it, sandboxed grading), then has learners
fetch the assignment, answer it correctly (the instructor's answers) and submit with
nbgrader's own ``submit``, as the Assignments tab does. A learner's latency is the time
from the end of their submit to their feedback being in the exchange for them to fetch
(checked each 0.2 s by the submission's secret, then confirmed with nbgrader's ``list`` as
that learner, which reports feedback ready to fetch as the Assignments tab does). It also
prints the CPU time of the service and everything it started (sampled, so that other load
does not count): a grading runs on one core, so on a quiet machine one learner's latency is
about that CPU time.

    python benchmarks/bench_on_submit.py                    # one learner, empty queue
    python benchmarks/bench_on_submit.py --learners 20 --within 60

The floor, measured in the same run with one learner (before and after the service's
grading, as the machine's speed drifts): the wall-clock time of a plain kernel (nbclient, no
sandbox) starting and executing the learner's longest notebook, the one grading cannot
avoid (the notebooks are graded side by side).

With ``--learners N --within S`` the N learners submit at even intervals over S seconds;
the benchmark prints each latency, the median and the largest, and the time from the first
submit until the last feedback.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import courses, examples  # noqa: E402

PROJECT = Path(__file__).resolve().parent.parent
HUB = PROJECT / "hub"
ASSIGNMENT = "backprop"
NOTEBOOKS = ("backprop", "generalization")


def environment(role, exchange, course, **extra):
    """The environment of a server of the hub (see hub/jupyterhub_config.py) for ``role``."""
    return dict(os.environ, JUPYTER_CONFIG_PATH=os.pathsep.join([str(HUB / "jupyter" / role),
                                                                 str(HUB / "jupyter" / "site")]),
                COURSE_EXCHANGE=str(exchange), COURSE_ROOT=str(course), COURSE_HUB_SPAWNER="simple",
                OPENBLAS_NUM_THREADS="1", **extra)


def nbgrader(env, cwd, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout + result.stderr


def listed_feedback(env, home):
    """Whether nbgrader's list, as the learner, reports feedback to fetch (as the Assignments tab does)."""
    result = subprocess.run([sys.executable, "-m", "nbgrader", "list", "--cached"], cwd=home, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return "(feedback ready to be fetched)" in result.stdout + result.stderr


def released_feedback(exchange, learner):
    """Whether the feedback of each notebook of ``learner``'s newest submission is in the
    exchange, where nbgrader's list looks for it (by the submission's secret), without
    starting a Python per look."""
    from nbgrader.utils import notebook_hash

    submissions = sorted((exchange / "backprop" / "inbound").glob(f"{learner}+{ASSIGNMENT}+*"))
    if not submissions:
        return False
    newest = submissions[-1]
    secret = (newest / "submission_secret.txt").read_text()
    return all((exchange / "backprop" / "feedback" / f"{notebook_hash(secret=secret, notebook_id=nb.stem)}.html")
               .exists() for nb in newest.glob("*.ipynb"))


def kernel_seconds(notebook_path):
    """Wall-clock seconds of a plain kernel starting and executing ``notebook_path`` (in its folder)."""
    import nbformat
    from nbclient import NotebookClient

    started = time.monotonic()
    notebook = nbformat.read(notebook_path, as_version=4)
    NotebookClient(notebook, timeout=900, resources={"metadata": {"path": str(notebook_path.parent)}}).execute()
    return time.monotonic() - started


def floor(home):
    """{notebook: seconds} of each of the learner's notebooks run alone (see kernel_seconds), in
    a copy of the learner's folder (so that nothing it writes is submitted)."""
    with tempfile.TemporaryDirectory(prefix="bench-os-floor-", dir="/tmp") as copy:
        folder = Path(shutil.copytree(home / ASSIGNMENT, Path(copy) / ASSIGNMENT))
        return {name: kernel_seconds(folder / f"{name}.ipynb") for name in NOTEBOOKS}


def sample_cpu(pid, seen):
    """Record in ``seen`` ({(pid, start): CPU s}) the CPU time so far of process ``pid`` and
    every process under it (other load on the machine does not count)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for process in processes:
        try:
            times = process.cpu_times()
            seen[(process.pid, process.create_time())] = times.user + times.system
        except psutil.NoSuchProcess:
            pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1)
    parser.add_argument("--within", type=float, default=60.0, help="seconds over which they submit")
    parser.add_argument("--parallel", type=int, default=2, help="the service's gradings at a time")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-os-", dir="/tmp"))
    try:
        course = courses.released_course(work / "course", notebooks=NOTEBOOKS, last_cell=None)
        exchange = work / "exchange"
        exchange.mkdir()
        exchange.chmod(0o1777)
        teacher = environment("instructor", exchange, course)
        nbgrader(teacher, course, "release_assignment", ASSIGNMENT, "--force")
        answers = {name: examples.model_answers(course / "source" / ASSIGNMENT / f"{name}.ipynb")
                   for name in NOTEBOOKS}
        learners = [f"learner{k:02d}" for k in range(args.learners)]
        homes = {}
        for learner in learners:
            home = work / "home" / learner
            home.mkdir(parents=True)
            env = environment("learner", exchange, course, JUPYTERHUB_USER=learner)
            nbgrader(env, home, "fetch_assignment", ASSIGNMENT)
            for name in NOTEBOOKS:
                path = home / ASSIGNMENT / f"{name}.ipynb"
                import nbformat

                nbformat.write(examples.fill_in(path, answers[name]), path)
            homes[learner] = (home, env)

        floors = [floor(homes[learners[0]][0])] if args.learners == 1 else []
        state = work / "on-submit.json"
        service_log = open(work / "service.log", "w")
        service = subprocess.Popen(
            [sys.executable, "-m", "course_grading.on_submit", "serve", "--course", str(course),
             "--assignment", ASSIGNMENT, "--state", str(state), "--parallel", str(args.parallel),
             "--per-hour", "4", "--poll", "1"],
            cwd=course, env=dict(teacher, TMPDIR=str(work)), stdout=service_log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL)
        try:
            submitted, latency = {}, {}
            interval = args.within / max(1, args.learners - 1) if args.learners > 1 else 0.0
            first = time.monotonic()
            pending = list(learners)
            cpu_seen, loads = {}, []
            while len(latency) < len(learners):
                sample_cpu(service.pid, cpu_seen)
                loads.append(os.getloadavg()[0])
                if pending and time.monotonic() >= first + interval * (len(learners) - len(pending)):
                    learner = pending.pop(0)
                    home, env = homes[learner]
                    nbgrader(env, home, "submit", ASSIGNMENT)
                    submitted[learner] = time.monotonic()
                for learner in [name for name in submitted if name not in latency]:
                    if released_feedback(exchange, learner):
                        latency[learner] = time.monotonic() - submitted[learner]
                        print(f"{learner}: feedback fetchable {latency[learner]:.1f} s after its submit",
                              flush=True)
                if service.poll() is not None:
                    raise SystemExit("the service stopped:\n" + (work / "service.log").read_text()[-3000:])
                time.sleep(0.2)
            total = time.monotonic() - first
            # As each learner's Assignments tab would see it.
            unlisted = [learner for learner in learners if not listed_feedback(homes[learner][1], homes[learner][0])]
            if unlisted:
                raise SystemExit(f"nbgrader list shows no feedback to fetch for {unlisted}")
        finally:
            service.terminate()
            service.wait(timeout=60)
            service_log.close()
        if floors:
            floors.append(floor(homes[learners[0]][0]))
        cpu = sum(cpu_seen.values())
        history = json.loads(state.read_text())["history"]
        graded = [entry for entry in history if entry["outcome"] == "graded"]
        print(f"\n{len(learners)} learner(s), submits over {args.within if len(learners) > 1 else 0:.0f} s, "
              f"{args.parallel} gradings at a time, {os.cpu_count()} cores")
        print(f"latency: median {statistics.median(latency.values()):.1f} s, largest {max(latency.values()):.1f} s; "
              f"first submit to last feedback {total:.1f} s")
        print(f"CPU time of the service and all it started (jobs, grading processes, sandboxed kernels; "
              f"sampled each 0.2 s): {cpu:.1f} s, {cpu / len(learners):.1f} s per learner; "
              f"machine's load average during the run {statistics.mean(loads):.1f}")
        print(f"gradings: {len(graded)} (scores {sorted({(e['score'], e['max_score']) for e in graded})}); "
              f"grading job alone: median {statistics.median(e['seconds'] for e in graded):.1f} s")
        for when, seconds in zip(("before", "after"), floors):
            longest = max(seconds, key=seconds.get)
            print(f"floor {when}: a plain kernel running the learner's notebooks alone, "
                  + ", ".join(f"{name} {s:.1f} s" for name, s in seconds.items())
                  + f"; latency = {max(latency.values()) / seconds[longest]:.2f} x the longest ({longest})")
        steps = ", ".join(f"{name} {statistics.median(e['steps'][name] for e in graded):.1f} s"
                          for name in graded[0]["steps"])
        print(f"the job's steps (median): {steps}; in the queue (noticed to started): median "
              f"{statistics.median(e['started'] - e['noticed'] for e in graded):.1f} s")
        # The same answers, the same score (all but the written answers, graded by hand later).
        if len(graded) != len(learners) or len({e["score"] for e in graded}) != 1 or not graded[0]["score"]:
            raise SystemExit(f"not every submission was graded exactly once with the same score: {graded}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
