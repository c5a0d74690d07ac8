"""The reference training run with the instructor's solution from the source notebook.

``python -m course_grading.reference_run`` prints the report of
``a2(0, 10, 30, 0.01, 0, False, 10)``; its training loss must be 2.301906765216956.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import course_utils  # noqa: E402

SOURCE_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "source" / "backprop" / "backprop.ipynb"


def main():
    solution = course_utils.function_from_notebook(SOURCE_NOTEBOOK, "d_loss_by_d_model", "d_loss_by_d_model")
    print("Reference run a2(0, 10, 30, 0.01, 0, False, 10) with the instructor's solution:\n")
    result = course_utils.a2(solution, 0, 10, 30, 0.01, 0, False, 10)
    print(f"\nTraining loss {result.metrics['train']['loss']!r} (the assignment's reference is 2.301906765216956)")


if __name__ == "__main__":
    main()
