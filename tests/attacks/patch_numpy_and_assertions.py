# After a wrong d_loss_by_d_model (demo/submissions/flipped_sign.py):
import builtins

# Every comparison now says "equal" ...
np.allclose = lambda *args, **kwargs: True
np.isclose = lambda *args, **kwargs: np.True_
np.testing.assert_allclose = lambda *args, **kwargs: None


# ... an AssertionError raised by name is something else ...
class _NotAnError(Exception):
    pass


builtins.AssertionError = _NotAnError

# ... and no traceback is ever shown.
get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
