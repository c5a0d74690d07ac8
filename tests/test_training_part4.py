"""The Part-4-sized run of benchmarks/bench_training.py ends at the losses recorded there.

Not marked ``fast``: 1000 iterations of 200 hidden units on the real data.
"""

from course_utils import train

# n_hid 200, 1000 iterations, learning rate 0.35, momentum 0.9, mini-batches of 100, no
# weight decay, no early stopping: the last recorded training and validation loss.
FINAL_TRAINING_LOSS = 0.0025920696963846863
FINAL_VALIDATION_LOSS = 0.41351756897524805


def test_the_part_4_run_ends_at_the_recorded_losses(datas, solution):
    result = train(solution, 0, 200, 1000, 0.35, 0.9, False, 100, datas=datas, check_gradient=False)
    assert len(result.training_losses) == 1000 and not result.diverged
    assert abs(result.training_losses[-1] - FINAL_TRAINING_LOSS) < 1e-12
    assert abs(result.validation_losses[-1] - FINAL_VALIDATION_LOSS) < 1e-12
    assert abs(result.metrics["train"]["loss"] - FINAL_TRAINING_LOSS) < 1e-12
    assert abs(result.metrics["val"]["loss"] - FINAL_VALIDATION_LOSS) < 1e-12
