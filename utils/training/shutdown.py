"""An orderly end of training: the input thread stops before the session and the process.

tensorpack's ``QueueInput`` feeds the graph from an ``EnqueueThread``: a *daemon* thread that
pulls datapoints from the dataflow (with ``--workers 0/1`` it decodes the images itself, in
OpenCV, with the GIL released) and enqueues them.  tensorpack never stops it: its
``StartProcOrThread`` callback stops only ``StoppableThread``s, and closing the session ends
the thread only once it comes back to the queue.  So when training ends (finished, NaN stop,
Ctrl-C) while the thread is inside a long decode (one 6000x6000 JPEG takes seconds), the
main thread returns, Python finalises, and the daemon thread, on leaving OpenCV, is killed
by ``pthread_exit`` while unwinding C++ frames: ``terminate called without an active
exception``, SIGABRT, exit 134, after a successful run.

``StopInputThread`` (a callback, run in tensorpack's ``main_loop`` ``finally`` before the
session closes) closes the input queue, cancelling a pending enqueue, and waits until the
thread has finished its current datapoint and left; only then does training return.
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import time

from tensorpack.callbacks import Callback
from tensorpack.utils import logger

JOIN_POLL_S = 10.0     # how often a long wait is reported
JOIN_LIMIT_S = 600.0   # give up (with a warning) after this long


class StopInputThread(Callback):
    """Stops and joins a ``QueueInput``'s enqueue thread at the end of training."""

    _chief_only = False

    def __init__(self, queue_input):
        self.queue_input = queue_input

    def _after_train(self):
        thread = getattr(self.queue_input, "thread", None)
        if thread is None or not thread.is_alive():
            return
        try:  # a blocked enqueue returns; the next one fails and the thread leaves its loop
            thread.close_op.run()
        except Exception as e:  # the session may already be unusable (e.g. a lost worker)
            logger.warn(f"could not close the input queue: {e}")
        start = time.time()
        while thread.is_alive() and time.time() - start < JOIN_LIMIT_S:
            thread.join(JOIN_POLL_S)
            if thread.is_alive():
                logger.info(f"waiting for the input thread to finish its current datapoint "
                            f"({time.time() - start:.0f} s) ...")
        if thread.is_alive():
            logger.warn(f"the input thread did not stop within {JOIN_LIMIT_S:.0f} s; "
                        f"the process may abort at exit")
