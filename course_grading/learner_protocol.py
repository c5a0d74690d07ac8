"""The messages between the grading process and the sandboxed learner process.

The learner process (:mod:`course_grading.learner_process`) runs the learner's code;
the grading process (:mod:`course_grading.learner_function`) calls the learner's
``d_loss_by_d_model`` through it. Everything the learner process sends may have been
written by learner code, so the grading process reads it as data: a frame of known
kind, a small JSON header of known fields, and raw float64 arrays whose shapes the
header declares and the grading process checks. Nothing is unpickled, nothing is
evaluated.

The one message the grading process trusts is :class:`Ready`, because the learner
process sends it before it runs any learner code: until it has arrived, a failure is
the grading machinery's, never the learner's.

A frame is ``kind (1 byte) | header length (4 bytes) | payload length (8 bytes) |
header (JSON) | payload``. This file imports nothing from ``course_grading``: the
sandbox shows it, and the learner process, to learner code, and nothing else of the
instructor's side.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import select
import struct
import time

import numpy as np

_FRAME = struct.Struct("<cIQ")
#: Largest header accepted (bytes of JSON).
HEADER_LIMIT = 64 * 2**10
#: Largest array payload accepted from the learner process (bytes): a gradient of a
#: model with 2000 hidden units.
PAYLOAD_LIMIT = 8 * 2000 * (256 + 10) + 1024
#: Longest text accepted in a message (characters); longer text is cut.
TEXT_LIMIT = 2000


class ProtocolError(Exception):
    """A message that is not what the protocol allows: it says what was wrong."""


class ChannelClosed(ProtocolError):
    """The other process closed its end (it stopped, crashed or was killed)."""


class OutOfTime(ProtocolError):
    """No complete message arrived before the deadline."""


# --- the messages -----------------------------------------------------------------------------

@dataclasses.dataclass
class LearnerCode:
    """Grader -> learner: the learner's code cells of the notebook, in order, and which
    one defines the function (it runs whole; the others give their definitions only)."""

    cells: list
    function_cell: int
    function_name: str = "d_loss_by_d_model"


@dataclasses.dataclass
class GradientCall:
    """Grader -> learner: call the function with this model, data and weight decay."""

    model: dict
    data: dict
    wd_coefficient: float


@dataclasses.dataclass
class Ready:
    """Learner -> grader, before any learner code runs: the process started."""


@dataclasses.dataclass
class Defined:
    """Learner -> grader: whether the learner's code defined the function (and why not)."""

    defined: bool
    error: str = ""


@dataclasses.dataclass
class GradientReply:
    """Learner -> grader: what the function returned.

    ``arrays`` holds the float64 arrays of a returned dict, ``opaque`` the type names of
    its values that are not arrays of numbers; ``returned`` names the type of anything
    else that was returned (then both are empty).
    """

    arrays: dict
    returned: str = "dict"
    opaque: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ErrorReply:
    """Learner -> grader: the function raised ``type_name: message`` at ``line`` (the
    learner's line, as text, or '')."""

    type_name: str
    message: str
    line: str = ""


_KINDS = {b"C": LearnerCode, b"G": GradientCall, b"R": Ready, b"D": Defined, b"A": GradientReply,
          b"E": ErrorReply}
_CODES = {cls: code for code, cls in _KINDS.items()}


# --- writing ----------------------------------------------------------------------------------

def _encode_arrays(arrays):
    """({name: [shape]}, raw bytes) for a dict of arrays, each as C-ordered float64."""
    shapes, chunks = {}, []
    for name, value in arrays.items():
        array = np.ascontiguousarray(value, dtype="<f8")
        shapes[str(name)] = list(array.shape)
        chunks.append(array.tobytes())
    return shapes, b"".join(chunks)


def encode(message):
    """The frame for ``message`` (bytes)."""
    header = {}
    payload = b""
    if isinstance(message, GradientCall):
        shapes, payload = _encode_arrays({**{f"model.{k}": v for k, v in message.model.items()},
                                          **{f"data.{k}": v for k, v in message.data.items()}})
        header = {"shapes": shapes, "wd_coefficient": float(message.wd_coefficient)}
    elif isinstance(message, GradientReply):
        shapes, payload = _encode_arrays(message.arrays)
        header = {"shapes": shapes,
                  "returned": str(message.returned)[:100],
                  "opaque": {str(k)[:100]: str(v)[:100] for k, v in list(message.opaque.items())[:16]}}
    else:
        header = dataclasses.asdict(message)
    text = json.dumps(header).encode()
    return _FRAME.pack(_CODES[type(message)], len(text), len(payload)) + text + payload


def send(stream, message):
    stream.write(encode(message))
    stream.flush()


# --- reading ----------------------------------------------------------------------------------

def _read_exactly(fd, size, deadline):
    chunks = []
    while size:
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and (remaining <= 0 or not select.select([fd], [], [], remaining)[0]):
            raise OutOfTime("no answer in time")
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise ChannelClosed("the process stopped (it crashed, ran out of memory or was killed)")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _text(header, key):
    value = header.get(key, "")
    if not isinstance(value, str):
        raise ProtocolError(f"'{key}' is not text")
    return value[:TEXT_LIMIT]


def _decode_arrays(shapes, payload, max_ndim=2, max_size=None):
    if not isinstance(shapes, dict) or len(shapes) > 16:
        raise ProtocolError("the array shapes are malformed")
    arrays, offset = {}, 0
    for name, shape in shapes.items():
        if (not isinstance(shape, list) or len(shape) > max_ndim
                or not all(isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 10**7 for n in shape)):
            raise ProtocolError(f"the shape of '{name[:100]}' is malformed")
        size = 8 * math.prod(shape)
        if offset + size > len(payload):
            raise ProtocolError("the arrays are shorter than their shapes say")
        arrays[name[:100]] = np.frombuffer(payload, dtype="<f8", count=size // 8, offset=offset).reshape(shape).copy()
        offset += size
    if offset != len(payload):
        raise ProtocolError("the arrays are longer than their shapes say")
    return arrays


def decode(kind, header_bytes, payload):
    """The message in a frame; raises ProtocolError for anything the protocol does not allow."""
    cls = _KINDS.get(kind)
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    try:
        header = json.loads(header_bytes)
    except (ValueError, RecursionError):
        raise ProtocolError("the message header is not JSON") from None
    if not isinstance(header, dict):
        raise ProtocolError("the message header is not an object")
    if cls in (Ready, Defined, ErrorReply, LearnerCode) and payload:
        raise ProtocolError("unexpected payload")
    if cls is Ready:
        return Ready()
    if cls is Defined:
        return Defined(defined=header.get("defined") is True, error=_text(header, "error"))
    if cls is ErrorReply:
        return ErrorReply(type_name=_text(header, "type_name")[:100], message=_text(header, "message"),
                          line=_text(header, "line"))
    if cls is LearnerCode:
        cells = header.get("cells")
        if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
            raise ProtocolError("the cells are not a list of text")
        return LearnerCode(cells=cells, function_cell=int(header.get("function_cell", -1)),
                           function_name=_text(header, "function_name"))
    arrays = _decode_arrays(header.get("shapes"), payload)
    if cls is GradientCall:
        model = {k[len("model."):]: v for k, v in arrays.items() if k.startswith("model.")}
        data = {k[len("data."):]: v for k, v in arrays.items() if k.startswith("data.")}
        return GradientCall(model=model, data=data, wd_coefficient=float(header["wd_coefficient"]))
    opaque = header.get("opaque", {})
    if (not isinstance(opaque, dict) or len(opaque) > 16
            or not all(isinstance(v, str) for v in opaque.values())):
        raise ProtocolError("the names of the returned values are malformed")
    return GradientReply(arrays=arrays, returned=_text(header, "returned")[:100],
                         opaque={k[:100]: v[:100] for k, v in opaque.items()})


def receive(fd, deadline=None, payload_limit=PAYLOAD_LIMIT):
    """Read one message from the file descriptor ``fd`` (``deadline`` from time.monotonic)."""
    kind, header_size, payload_size = _FRAME.unpack(_read_exactly(fd, _FRAME.size, deadline))
    if header_size > HEADER_LIMIT and kind != b"C":
        raise ProtocolError(f"a message header of {header_size} bytes (at most {HEADER_LIMIT})")
    if payload_size > payload_limit:
        raise ProtocolError(f"{payload_size} bytes of arrays (at most {payload_limit})")
    header = _read_exactly(fd, header_size, deadline)
    payload = _read_exactly(fd, payload_size, deadline)
    return decode(kind, header, payload)
