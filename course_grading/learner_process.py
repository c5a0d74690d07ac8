"""The sandboxed learner process: runs the learner's code and answers calls of its gradient.

Started by :class:`course_grading.learner_function.LearnerFunction` inside the grading
sandbox, as a script beside ``learner_protocol.py`` (the only two files of the
instructor's side that the sandbox shows). It

1. imports NumPy and ``course_utils`` and says :class:`~learner_protocol.Ready`: until
   then no learner code has run, so a failure up to here is the grading machinery's;
2. defines the learner's ``d_loss_by_d_model`` from their code cells, as the notebook does;
3. answers each :class:`~learner_protocol.GradientCall` with the returned arrays.

Whatever this process sends after ``Ready`` may come from learner code, which can find
and write the channel itself; the grading process treats it as data to check.
"""
import os
import sys

try:
    from . import learner_protocol as protocol
except ImportError:  # run as a script in the sandbox, beside learner_protocol.py
    import learner_protocol as protocol


def main():
    # The channel is a private copy of stdin and stdout; what learner code prints goes to
    # stderr (discarded by the grading process), and it reads nothing.
    channel_out = os.fdopen(os.dup(1), "wb")
    channel_in = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    import numpy as np

    import course_utils
    from course_utils.notebook_code import define_function, learner_line, learner_namespace

    namespace = learner_namespace()
    namespace["course_utils"] = course_utils
    protocol.send(channel_out, protocol.Ready())

    code = protocol.receive(channel_in)
    np.seterr(all="ignore")
    failure = define_function(code.cells, code.function_cell, code.function_name, namespace)
    function = namespace.get(code.function_name)
    protocol.send(channel_out, protocol.Defined(defined=not failure, error=failure[:protocol.TEXT_LIMIT]))
    if failure:
        return
    while True:
        try:
            call = protocol.receive(channel_in)
        except protocol.ChannelClosed:
            return
        try:
            gradient = function(call.model, call.data, call.wd_coefficient)
            if isinstance(gradient, dict):
                arrays, opaque = {}, {}
                for key, value in list(gradient.items())[:16]:
                    try:
                        arrays[str(key)[:100]] = np.asarray(value, dtype=np.float64)
                    except Exception:
                        opaque[str(key)[:100]] = type(value).__name__
                reply = protocol.GradientReply(arrays=arrays, opaque=opaque)
            else:
                reply = protocol.GradientReply(arrays={}, returned=type(gradient).__name__)
        except BaseException as error:  # the learner's code: anything can happen
            reply = protocol.ErrorReply(type_name=type(error).__name__, message=str(error)[:protocol.TEXT_LIMIT],
                                        line=learner_line(error, of="your code"))
        protocol.send(channel_out, reply)


if __name__ == "__main__":
    sys.exit(main())
