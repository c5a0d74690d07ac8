# After a correct d_loss_by_d_model: try to read the hidden tests and print them.
import glob


def _leak(info):
    print("LEAKED CELL:", info.raw_cell)


get_ipython().events.register("pre_run_cell", _leak)
# The marker is put together here: this cell's own code is in the learner's notebook.
_MARKER = "hidden_tests" + ".check_"
for _path in glob.glob("*.ipynb") + glob.glob("../*/*.ipynb") + glob.glob("/run/submission/*.ipynb"):
    with open(_path) as _stream:
        print("LEAKED FILE:", _path, "hidden tests in it:", _MARKER in _stream.read())
try:
    import course_grading.hidden_tests
    print("LEAKED MODULE: course_grading.hidden_tests can be imported")
except ImportError:
    print("course_grading cannot be imported")
