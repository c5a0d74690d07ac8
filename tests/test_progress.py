"""course-grade's progress: a tqdm bar on a terminal, one line per submission in a log."""
import io

import pytest

from course_grading.grade import Progress
from course_grading.messages import GradingResult

pytestmark = pytest.mark.fast

RESULTS = [GradingResult("backprop", student, "digest", status)
           for student, status in (("ada", "graded"), ("bob", "failed"), ("cy", "graded"))]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_log_gets_one_line_per_submission():
    stream = io.StringIO()
    progress = Progress(len(RESULTS), stream=stream)
    for result in RESULTS:
        progress.update(result)
    lines = stream.getvalue().splitlines()
    assert len(lines) == len(RESULTS) and "\r" not in stream.getvalue()
    assert "1/3" in lines[0] and "failed 0, ada: graded" in lines[0]
    assert "2/3" in lines[1] and "failed 1, bob: failed" in lines[1]
    assert lines[2].startswith("100%") and "3/3" in lines[2] and "cy: graded" in lines[2]
    assert (progress.done, progress.failed) == (3, 1)


def test_a_terminal_gets_one_bar_redrawn_in_place():
    stream = Terminal()
    progress = Progress(len(RESULTS), stream=stream)
    for result in RESULTS:
        progress.update(result)
    text = stream.getvalue()
    assert "\r" in text and text.endswith("\n") and text.count("\n") == 1
    assert "3/3" in text.split("\r")[-1] and "cy: graded" in text


def test_quiet_prints_nothing_but_counts():
    for stream in (io.StringIO(), Terminal()):
        progress = Progress(len(RESULTS), stream=stream, quiet=True)
        for result in RESULTS:
            progress.update(result)
        assert stream.getvalue() == "" and progress.failed == 1
