"""Wall and CPU time of executing generalization.ipynb, against the floors of its trainings.

    python benchmarks/bench_generalization.py [--repeats 2]

Executes the source notebook (with the instructor's solutions) in a kernel with nbclient,
in a temporary copy of its folder (it reads ``backprop.ipynb`` from there), and compares
its wall and CPU seconds with the sum of the floors (see ``bench_training.floor``) of its
13 trainings, measured in this run: one 200-unit run with early stopping, six 200-unit
weight-decay runs, five runs of 10, 30, 100, 130 and 170 units, and the combined run.
Floors and notebook take turns, ``--repeats`` times, and the fastest of each counts, so that
a change of the machine's speed during the run hits both alike. The kernel gets this
process's ``OPENBLAS_NUM_THREADS``; the floors run on as many BLAS threads.
Target: 1.3x. Prints; asserts nothing.
"""

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import floor  # noqa: E402

from course_utils import load_data  # noqa: E402

SOURCE_FOLDER = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop"
N_ITERS = 1000
SIZES = [200] + [200] * 6 + [10, 30, 100, 130, 170]  # the combined run's comes from the notebook
# The combined run's size is the learner's choice; a last cell of the copy reports it.
REPORT_CELL = "import json; print(json.dumps({'combined_n_hid': int(best_n_hid_with_early_stopping)}))"


def children_cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def execute_notebook():
    """Execute the copy; return wall seconds, the kernel's CPU seconds and the combined run's n_hid."""
    with tempfile.TemporaryDirectory() as folder:
        shutil.copytree(SOURCE_FOLDER, folder, dirs_exist_ok=True)
        notebook = nbformat.read(Path(folder) / "generalization.ipynb", as_version=4)
        notebook.cells.append(nbformat.v4.new_code_cell(REPORT_CELL))
        client = NotebookClient(notebook, timeout=1800, kernel_name="python3",
                                resources={"metadata": {"path": folder}})
        cpu_before, start = children_cpu_seconds(), time.perf_counter()
        client.execute()  # shuts the kernel down and waits for it, so its CPU time is counted
        wall, cpu = time.perf_counter() - start, children_cpu_seconds() - cpu_before
    report = json.loads(notebook.cells[-1].outputs[0]["text"])
    return wall, cpu, report["combined_n_hid"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    datas = load_data()
    print(f"generalization.ipynb, OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}, "
          f"fastest of {args.repeats}")
    floors = {}  # n_hid: (wall, CPU) seconds, the fastest
    wall = cpu = float("inf")
    for _ in range(args.repeats):
        run_wall, run_cpu, combined_n_hid = execute_notebook()
        wall, cpu = min(wall, run_wall), min(cpu, run_cpu)
        sizes = SIZES + [combined_n_hid]  # the notebook tells the combined run's size
        for n_hid in sorted(set(sizes)):
            start, cpu_start = time.perf_counter(), time.process_time()
            floor(datas, N_ITERS, n_hid)
            seconds = (time.perf_counter() - start, time.process_time() - cpu_start)
            floors[n_hid] = min(floors.get(n_hid, seconds), seconds)
    floor_wall = sum(floors[n_hid][0] for n_hid in sizes)
    floor_cpu = sum(floors[n_hid][1] for n_hid in sizes)
    print(f"  13 trainings (combined run: {combined_n_hid} hidden units); sum of their floors: "
          f"wall {floor_wall:.2f} s, CPU {floor_cpu:.2f} s")
    print(f"  executing the notebook: wall {wall:.2f} s = {wall / floor_wall:.2f} x floor, "
          f"CPU {cpu:.2f} s = {cpu / floor_cpu:.2f} x floor (target <= 1.3)")


if __name__ == "__main__":
    main()
