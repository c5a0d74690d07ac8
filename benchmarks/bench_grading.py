"""Benchmark: grading a class in parallel (``course-grade``) against nbgrader's sequential autograde.

Generates N submissions of the assignment, both notebooks each (``backprop.ipynb`` and
``generalization.ipynb``; a mix of correct and faulty answers from ``demo.examples``), grades one copy of the course with ``nbgrader autograde`` (one
submission after another, no sandbox, the verdicts in the learner's kernel: the baseline)
and another copy with ``course-grade`` (sandboxed, verdicts in the grading process, all cores), in the same run, then prints both
times and whether the gradebooks agree cell by cell.

    python benchmarks/bench_grading.py                 # 100 submissions
    python benchmarks/bench_grading.py --submissions 20 --sequential 10

With ``--sequential K`` (K < N) the baseline grades only the first K submissions and its
time for N is extrapolated linearly (said so in the output); grades are compared on those K.

It also prints the CPU time the whole machine spent in each phase (meaningful on an
otherwise quiet machine): the work per submission, against what the cores can give, and
the time 100 submissions would take on this machine at the measured rate (extrapolated
linearly when fewer were graded: said so in the output).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo import courses as support  # noqa: E402

# Correct and faulty answers, none that runs into a time limit (that measures the limit).
NOTEBOOKS = ("backprop", "generalization")
MIX = ("correct", "returns_zeros", "transposed", "missing_1_over_m", "flipped_sign",
       "missing_weight_decay", "learner_style", "wrong_keys", "raises", "syntax_error")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--sequential", type=int, help="grade only this many sequentially (default: all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args(argv)
    sequential_count = min(args.sequential or args.submissions, args.submissions)

    with tempfile.TemporaryDirectory(prefix="bench-grading-") as work:
        work = Path(work)
        # The whole notebooks, both of them, for every submission.
        base = support.released_course(work / "base", notebooks=NOTEBOOKS, last_cell=None)
        names = support.submit_examples(base, MIX, notebooks=NOTEBOOKS)
        # Student k gets example k mod len(MIX), under its own id.
        submitted = base / "submitted"
        students = []
        for k in range(args.submissions):
            student = f"learner{k:03d}"
            source = submitted / names[k % len(names)] / "backprop"
            dest = submitted / student / "backprop"
            dest.mkdir(parents=True)
            for item in source.iterdir():
                (dest / item.name).write_bytes(item.read_bytes())
            students.append(student)
        for name in names:
            for item in (submitted / name / "backprop").iterdir():
                item.unlink()
            (submitted / name / "backprop").rmdir()
            (submitted / name).rmdir()

        parallel_root = support.copy_course(base, work / "parallel")
        sequential_root = support.copy_course(base, work / "sequential")
        for student in students[sequential_count:]:
            for item in (sequential_root / "submitted" / student / "backprop").iterdir():
                item.unlink()
            (sequential_root / "submitted" / student / "backprop").rmdir()
            (sequential_root / "submitted" / student).rmdir()

        started, cpu = time.perf_counter(), busy_cpu_seconds()
        result = support.course_grade(parallel_root, "--workers", str(args.workers), "--quiet", timeout=4 * 3600)
        parallel_seconds, parallel_cpu = time.perf_counter() - started, busy_cpu_seconds() - cpu

        started, cpu = time.perf_counter(), busy_cpu_seconds()
        support.nbgrader(sequential_root, "autograde", support.ASSIGNMENT, check=False)
        sequential_seconds, sequential_cpu = time.perf_counter() - started, busy_cpu_seconds() - cpu

        got = support.scores(parallel_root / "gradebook.db")
        expected = support.scores(sequential_root / "gradebook.db")
        compared = {key: value for key, value in got.items() if key[0] in students[:sequential_count]}
        journal = support.journal(parallel_root / "gradebook.db")
        failed = {student: reason for student, (status, reason, _) in journal.items() if status == "failed"}

    scale = args.submissions / sequential_count
    print(f"Submissions: {args.submissions} ({', '.join(MIX)} in turn); machine: {os.cpu_count()} cores")
    print(f"course-grade (parallel, {args.workers} workers, sandboxed): {parallel_seconds:8.1f} s "
          f"({parallel_seconds / args.submissions:.1f} s per submission), exit code {result.returncode}, "
          f"{len(journal)} recorded, {len(failed)} failed")
    if scale == 1:
        print(f"nbgrader autograde (sequential, baseline):             {sequential_seconds:8.1f} s")
    else:
        print(f"nbgrader autograde (sequential, baseline): {sequential_seconds:.1f} s for {sequential_count}; "
              f"{sequential_seconds * scale:.1f} s for {args.submissions} (extrapolated)")
    print(f"CPU time of the machine: course-grade {parallel_cpu:.1f} s ({parallel_cpu / args.submissions:.1f} s "
          f"per submission), nbgrader {sequential_cpu:.1f} s ({sequential_cpu / sequential_count:.1f} s per "
          f"submission); {os.cpu_count()} cores give {os.cpu_count() * 240} CPU seconds in 240 s "
          f"({os.cpu_count() * 240 / args.submissions:.1f} per submission)")
    per_submission = parallel_seconds / args.submissions
    hundred = "" if args.submissions == 100 else " (extrapolated linearly from " + f"{args.submissions})"
    print(f"course-grade for 100 submissions: {100 * per_submission:.0f} s{hundred}; "
          f"CPU seconds per submission {parallel_cpu / args.submissions:.1f}")
    print(f"Speed-up: {sequential_seconds * scale / parallel_seconds:.2f}x; "
          f"target for 100 submissions: 240 s")
    print(f"Grades identical on the {sequential_count} graded both ways: {compared == expected} "
          f"({len(expected)} cell grades compared)")
    if failed:
        print("Failed:", failed)


def busy_cpu_seconds():
    """CPU seconds the whole machine has spent working since boot (user, nice, system,
    interrupts; not idle, waiting for the disk, or taken by the hypervisor)."""
    times = psutil.cpu_times()
    return sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq"))


if __name__ == "__main__":
    main()
