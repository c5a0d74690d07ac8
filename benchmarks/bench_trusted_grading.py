"""What trusted grading costs: CPU seconds per submission against the notebook's own kernel.

    python benchmarks/bench_trusted_grading.py [--submissions 4] [--notebooks backprop,generalization]

Measured in the same run, on correct submissions (the instructor's answers):

- the floor: the CPU time of the learner's kernel executing each notebook with nbclient,
  nothing else (kernel start included): what any grader must at least pay;
- ``course-grade``: the CPU time of the whole grading (coordinator, grading processes,
  sandboxed kernels and learner processes), divided by the number of submissions.

CPU seconds, not wall-clock seconds, so the figures hold on a busy machine too.
Target: course-grade within 1.3 x the floor.
"""
import argparse
import os
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from demo import courses as support  # noqa: E402  (the demo's course-building helpers)
from demo import examples  # noqa: E402


class CpuMeter:
    """CPU seconds of this process and everything it starts, however deep: a cgroup (v2) of
    its own counts them all; grading processes forked from the warm server are not this
    process's children, so ``getrusage`` would miss them. Without a writable cgroup, the
    whole machine's CPU time (/proc/stat), which counts other load too."""

    ROOT = Path("/sys/fs/cgroup/unified")

    def __init__(self):
        self.group = self.ROOT / f"course-bench-{os.getpid()}"
        try:
            self.group.mkdir()
            (self.group / "cgroup.procs").write_text(str(os.getpid()))
            self.what = "this benchmark's processes (a cgroup)"
        except OSError:
            self.group = None
            self.what = "the whole machine (no cgroup could be made: other load counts too)"

    def seconds(self):
        if self.group is not None:
            stat = dict(line.split() for line in (self.group / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        fields = Path("/proc/stat").read_text().split("\n")[0].split()[1:]
        busy = sum(int(x) for i, x in enumerate(fields) if i not in (3, 4))
        return busy / os.sysconf("SC_CLK_TCK")

    def close(self):
        if self.group is not None:
            (self.ROOT / "cgroup.procs").write_text(str(os.getpid()))
            with contextlib.suppress(OSError):
                self.group.rmdir()


def kernel_cpu(notebook_path):
    """CPU seconds the kernel spends executing ``notebook_path`` (in its folder)."""
    import nbformat
    import psutil
    from nbclient import NotebookClient

    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(notebook, timeout=900, resources={"metadata": {"path": str(notebook_path.parent)}})
    with client.setup_kernel():
        kernel = psutil.Process(client.km.provisioner.pid)
        for index, cell in enumerate(notebook.cells):
            client.execute_cell(cell, index)
        times = kernel.cpu_times()
        return times.user + times.system + times.children_user + times.children_system


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=4)
    parser.add_argument("--notebooks", default="backprop,generalization")
    args = parser.parse_args()
    notebooks = tuple(args.notebooks.split(","))
    from course_grading import grade

    work = Path(tempfile.mkdtemp(prefix="bench-", dir=os.environ.get("TMPDIR")))
    try:
        root = support.released_course(work / "course", notebooks=notebooks, last_cell=None)
        chosen = {f"learner{i:03d}": examples.Example("solution", True, notebooks) for i in range(args.submissions)}
        examples.write_submissions(root, chosen)
        folder = root / "submitted" / "learner000" / "backprop"
        floor = sum(kernel_cpu(folder / f"{name}.ipynb") for name in notebooks)
        print(f"floor: the kernel alone, {' + '.join(notebooks)}: {floor:.1f} CPU s per submission")
        meter = CpuMeter()
        try:
            before, started = meter.seconds(), time.monotonic()
            summary = grade.grade_assignment(str(root), "backprop", progress=False)
            used, wall = meter.seconds() - before, time.monotonic() - started
        finally:
            meter.close()
        assert not summary["failed"], summary["failed"]
        per = used / args.submissions
        print(f"course-grade: {per:.1f} CPU s per submission ({used:.1f} for {args.submissions}, "
              f"{wall:.1f} s wall-clock on {os.cpu_count()} cores) = {per / floor:.2f} x the floor (target 1.3); "
              f"CPU counted for {meter.what}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
