"""Benchmark of the interactive training lab (course_utils.widgets).

Measures, with the default settings (10 hidden units, 30 iterations, mini-batches of 10):

- the time from the Train click to the first update of the loss-curve image,
- the time from the click until the run is finished and drawn,
- the time of the sweep view's 14 runs (Exercise 3's settings), click to final heat map,

each next to a baseline measured in the same run: ``course_utils.train`` alone with the
same settings (no gradient test, no drawing). Targets: first update within 0.5 s, run
within 1 s, sweep within 5 s on 2 cores.

The learner's gradient is the instructor's solution, read from the source notebook.
The widgets train small networks on one BLAS thread; run this with
OPENBLAS_NUM_THREADS=1 (as the Makefile sets it) for a baseline on one thread too.

Usage: python benchmarks/bench_widgets.py [--repeats N]
"""

import argparse
import os
import statistics
import time
from pathlib import Path

import course_utils
from course_utils import widgets as lab

SOURCE_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop" / "backprop.ipynb"
TARGETS = {"first update": 0.5, "run": 1.0, "sweep": 5.0}


def time_dashboard_click(dashboard):
    """Seconds from the click to the first image update and to the end of the run."""
    updates = []
    dashboard.plot.observe(lambda change: updates.append(time.perf_counter()), "value")
    start = time.perf_counter()
    dashboard.train_button.click()
    end = time.perf_counter()
    dashboard.plot.unobserve_all()
    if dashboard.result is None:
        raise RuntimeError(f"The dashboard did not train: {dashboard.message.value}")
    return updates[0] - start, end - start


def time_sweep_click(view):
    start = time.perf_counter()
    view.run_button.click()
    seconds = time.perf_counter() - start
    if len(view.results) != 14:
        raise RuntimeError(f"The sweep did not run: {view.message.value}")
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="measurements of each (median reported)")
    repeats = parser.parse_args().repeats

    gradient_fn = course_utils.function_from_notebook(SOURCE_NOTEBOOK, "d_loss_by_d_model", "d_loss_by_d_model")
    datas = course_utils.load_data()
    dashboard = lab.training_dashboard(gradient_fn, datas)
    view = lab.sweep_view(gradient_fn, datas)
    settings = dashboard.settings()
    sweep_settings = view.settings()

    # Warm up (first matplotlib draw, BLAS start-up).
    time_dashboard_click(dashboard)
    dashboard.clear()

    first_updates, runs, sweeps, baseline_runs, baseline_sweeps = [], [], [], [], []
    for _ in range(repeats):
        start = time.perf_counter()
        course_utils.train(gradient_fn, **settings, datas=datas, check_gradient=False)
        baseline_runs.append(time.perf_counter() - start)
        first_update, run = time_dashboard_click(dashboard)
        first_updates.append(first_update)
        runs.append(run)
        dashboard.clear()

        start = time.perf_counter()
        for momentum_multiplier in view.momentum_multipliers:
            for learning_rate in view.learning_rates:
                course_utils.train(gradient_fn, learning_rate=learning_rate,
                                   momentum_multiplier=momentum_multiplier, **sweep_settings,
                                   datas=datas, check_gradient=False)
        baseline_sweeps.append(time.perf_counter() - start)
        sweeps.append(time_sweep_click(view))

    print(f"CPU cores available: {len(os.sched_getaffinity(0))}; load average {os.getloadavg()[0]:.2f}; "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}; median of {repeats}")
    print(f"dashboard settings: {settings}")
    print(f"sweep settings: {sweep_settings}, 14 runs")
    rows = [
        ("first update", first_updates, baseline_runs, "train() alone, whole run"),
        ("run", runs, baseline_runs, "train() alone"),
        ("sweep", sweeps, baseline_sweeps, "14 x train() alone"),
    ]
    for name, values, baseline, baseline_name in rows:
        median = statistics.median(values)
        verdict = "ok" if median <= TARGETS[name] else "SLOWER THAN TARGET"
        print(f"{name:>13}: {median:6.3f} s (min {min(values):.3f}, max {max(values):.3f}); "
              f"target {TARGETS[name]} s: {verdict}; baseline {baseline_name}: "
              f"{statistics.median(baseline):.3f} s")


if __name__ == "__main__":
    main()
