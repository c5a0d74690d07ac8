"""What went wrong in the learner's code, as plain data, and hints for names from other versions.

Older and other versions of this assignment call things differently (``data['targets']``,
``model['inputToHid']``, ``d_loss_by_d_model(model, data)``). A learner who copies code
from one of them gets a KeyError or a TypeError that does not say what the name is here;
``hint_for_other_versions`` does. It works on a type name and a message, not on an
exception object, so that an error that happened in another process (and arrives as a
``LearnerCodeError``) gets the same words as one raised here.
"""

import re


class LearnerCodeError(Exception):
    """The learner's function failed in another process; only its description came back.

    Attributes
    ----------
    type_name : str, the exception's type there, e.g. 'KeyError'
    message : str, ``str(exception)`` there, e.g. "'targets'"
    line : str, where in the learner's code, as ``notebook_code.learner_line(error, of="your
        code")`` gives it (e.g. "line 7 of your code: t = data['targets']"), or ''
    """

    def __init__(self, type_name, message, line=""):
        super().__init__(type_name, message, line)
        self.type_name, self.message, self.line = type_name, message, line

    def __str__(self):
        return f"{self.type_name}: {self.message}"


# Names of other versions of the assignment -> how to write them here.
OTHER_VERSION_KEYS = {
    "targets": "data['target']",
    "inputToHid": "model['input_to_hid']",
    "hidToClass": "model['hid_to_class']",
    "input_to_hidden": "model['input_to_hid']",
    "hidden_to_class": "model['hid_to_class']",
}
# An attribute of a dict (data.inputs) -> the key here.
DICT_ATTRIBUTES = {
    "inputs": "data['inputs']", "targets": "data['target']", "target": "data['target']",
    "input_to_hid": "model['input_to_hid']", "hid_to_class": "model['hid_to_class']",
    "inputToHid": "model['input_to_hid']", "hidToClass": "model['hid_to_class']",
}


def hint_for_other_versions(type_name, message):
    """' Here ...' when the error looks like a name from another version of the assignment, else ''.

    Parameters
    ----------
    type_name : str, e.g. 'KeyError'
    message : str, the exception's ``str()``, e.g. "'targets'" (KeyError quotes the key)
    """
    if type_name == "KeyError":
        key = message.strip("'\"")
        if key in OTHER_VERSION_KEYS:
            return (f" That name comes from another version of this assignment: here it is "
                    f"{OTHER_VERSION_KEYS[key]} (data has the keys 'inputs' and 'target', the model "
                    "'input_to_hid' and 'hid_to_class').")
    if type_name == "AttributeError":
        found = re.fullmatch(r"'dict' object has no attribute '(\w+)'", message)
        if found and found[1] in DICT_ATTRIBUTES:
            return (f" Here data and model are dicts, not objects: use "
                    f"{DICT_ATTRIBUTES[found[1]]}, not .{found[1]}.")
    if type_name == "TypeError" and re.search(
            r"\bd_loss_by_d_model\(\) takes 2 positional arguments but 3 were given", message):
        return (" Here d_loss_by_d_model takes three arguments, (model, data, wd_coefficient), "
                "and adds the weight decay term wd_coefficient times the weights.")
    return ""
