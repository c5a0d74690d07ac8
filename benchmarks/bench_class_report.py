"""Benchmark: the class report (``course-report``) of a class of 1,000 made-up learners.

Makes a graded course folder with ``demo.made_up_class`` (the gradebook through nbgrader's
``Gradebook`` API, course-grade's journal, a verdict file and feedback pages per learner;
this takes minutes and is not timed), then times the report itself: reading the gradebook
and the verdict files (``compute_report``), drawing the page (``render_html``) and writing
both files, each ``--repeats`` times, and prints the fastest of each. Target: 10 s in all.

    python benchmarks/bench_class_report.py                  # 1,000 learners
    python benchmarks/bench_class_report.py --learners 200 --keep /tmp/class
"""
import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from course_grading import class_report  # noqa: E402
from demo.made_up_class import MadeUpLearner, assignment_cells, make_class, verdict  # noqa: E402

GRADIENT_TESTS = ("test_keys_and_shapes", "test_gradient_training_set", "test_other_hidden_sizes",
                  "test_small_batches", "test_weight_decay", "test_whole_gradient", "test_not_transposed",
                  "test_backpropagation", "test_a2_training_loss")
# (mistakes, the gradient tests they fail); a learner gets one or two of them, or none.
MISTAKES = [
    (("sign_flipped",), GRADIENT_TESTS[1:]),
    (("transposed",), GRADIENT_TESTS[1:]),
    (("missing_one_over_m",), GRADIENT_TESTS[1:]),
    (("missing_weight_decay",), ("test_weight_decay", "test_whole_gradient")),
    (("doubled_weight_decay",), ("test_weight_decay", "test_whole_gradient")),
    (("missing_logistic_derivative",), GRADIENT_TESTS[1:]),
    (("wrong_keys_or_shape",), GRADIENT_TESTS),
    (("not_finite",), GRADIENT_TESTS[1:]),
    (("raised",), GRADIENT_TESTS),
]
# name -> (test cell, right answer, usual wrong answers)
ANSWERS = {
    "best_learning_rate": ("test_best_rate_without_momentum", 0.35, (0.5, 0.2, 0.05)),
    "best_learning_rate_with_momentum": ("test_best_rate_with_momentum", 0.05, (0.35, 0.01)),
    "early_stopping_iteration": ("test_early_stopping_iteration", 1000, (0, 500, 200)),
    "best_wd_coefficient": ("test_best_wd_coefficient", 0.001, (0.0, 0.01, 1.0)),
    "best_n_hid": ("test_best_n_hid_with_early_stopping", 100, (200, 30)),
}


def made_up_learner(number, rng):
    """One learner: mostly graded, with usual mistakes and answers; some failed, absent, late."""
    student = f"learner{number:04d}"
    draw = rng.random()
    if draw < 0.02:
        return MadeUpLearner(student, status="failed", reason="the worker failed: the kernel died")
    if draw < 0.05:
        return MadeUpLearner(student, status="not submitted")
    if draw < 0.06:
        return MadeUpLearner(student, status="not graded yet")
    failed, cells = set(), []
    chosen = rng.sample(MISTAKES, rng.choice((0, 0, 1, 1, 1, 2)))
    for mistakes, tests in chosen:
        failed.update(tests)
    for test in sorted(failed):
        found = [m for mistakes, tests in chosen if test in tests for m in mistakes]
        cells.append(verdict("backprop", test, False, sorted(set(found))))
    for name, (test, right, wrong) in ANSWERS.items():
        value = right if rng.random() < 0.7 else rng.choice(wrong)
        notebook = "backprop" if "rate" in name else "generalization"
        if value != right:
            failed.add(test)
        cells.append(verdict(notebook, test, value == right, [] if value == right else ["wrong_value"],
                             answers={name: value}))
    written = {cell: rng.choice((0.0, 1.0, 2.0)) for cell in ("ex1a_softmax_answer", "ex3b_explanation")
               if rng.random() < 0.6}
    late = rng.random() < 0.08
    return MadeUpLearner(student, failed_cells=tuple(sorted(failed)), written=written,
                         seconds_late=rng.uniform(60, 3 * 86400) if late else 0.0,
                         late_penalty=1.0 if late else 0.0,
                         verdicts=cells if rng.random() > 0.01 else None,
                         notes=["a pasted copy of a graded cell ran as an ordinary cell"] if rng.random() < 0.05
                         else [])


def best_of(repeats, function, *arguments):
    """(fastest seconds, last result) of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*arguments)
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learners", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="make the course folder here and keep it (default: a temporary one)")
    args = parser.parse_args(argv)
    rng = random.Random(25)
    learners = [made_up_learner(number, rng) for number in range(args.learners)]
    with tempfile.TemporaryDirectory(prefix="bench-class-report-") as work:
        root = Path(args.keep) if args.keep else Path(work) / "course"
        start = time.perf_counter()
        make_class(root, learners, assignment_cells())
        print(f"Made a graded class of {args.learners} learners in {time.perf_counter() - start:.0f} s "
              "(not timed below).")
        compute, report = best_of(args.repeats, class_report.compute_report, root, "backprop")
        render, page = best_of(args.repeats, class_report.render_html, report)
        write, _ = best_of(args.repeats, class_report.write_report, report, root)
        c = report.counts
        print(f"{c['learners']} learners: {c['graded']} graded, {c['failed']} failed, {c['not_submitted']} did "
              f"not submit, {c['late']} late, {len(report.mistakes)} kinds of mistakes, {len(report.answers)} "
              f"questions answered with values; the page {len(page) / 2**20:.1f} MiB.")
        print(f"Fastest of {args.repeats}: compute_report {compute:.2f} s, render_html {render:.2f} s, "
              f"write_report (render and write both files) {write:.2f} s.")
        print(f"The report (compute_report + write_report): {compute + write:.2f} s (target 10 s).")


if __name__ == "__main__":
    main()
