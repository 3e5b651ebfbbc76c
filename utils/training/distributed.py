"""Multi-machine training with tensorpack's distributed trainers (parameter servers + workers).

    --trainer distributed_replicated | distributed_ps  --cluster SPEC  --job ps|worker  --task N

``SPEC`` (inline JSON or a file, plain or TF_CONFIG-style) is parsed and checked by
``utils.training.cluster``.

Processes
  * ``ps`` tasks hold the variables (``tf.train.Server``); they build no model and read no
    data, but take the same flags as the workers (the configuration is validated alike).
  * ``worker`` tasks each build the model on their towers (``--gpu``; one CPU tower without
    it) and train in lock step: ``--batch`` is the batch of one worker (split over its towers),
    so one step consumes ``--batch`` x workers images.  Every worker must be given the same
    model / schedule flags.  Worker 0 is the chief: it initialises the variables (also from
    ``--use_pretrained_model`` / ``--load`` / a resumed checkpoint), validates and writes the
    checkpoints (with the single-machine variable names); the others only train and log, and
    start once the chief has initialised, at the chief's epoch.  Give every process its own
    ``--log_dir``; checkpoints appear in the chief's only, and rerunning the same commands
    resumes from them.  Global steps count the steps of one worker.
  * Ending: the parameter servers serve until every worker has reported that it is finished
    (a token in a queue on each ps, pushed by the worker once its training session is
    closed), then exit — status 0 when every worker succeeded, 1 otherwise.  A worker that
    fails with a Python exception (e.g. a NaN loss) reports too, after closing the step
    barriers, so the other workers stop with an error instead of waiting for it.  Not covered:
    a worker killed outright or failing before its trainer exists (bad flags, missing data),
    or a chief whose log folder holds a finished run (it returns at once): the others then
    wait; stop them with Ctrl-C.

The cluster spec itself is parsed and checked in ``utils.training.cluster`` (TensorFlow-free,
used by ``utils.config``).  Nothing here imports TensorFlow at module level.
"""
from utils.errors import ConfigError

DONE_QUEUE_NAME = "e2net_workers_done"   # on every ps: one token per worker when it is finished
READY_QUEUE_NAME = "e2net_chief_ready"   # on ps 0: the chief's "variables initialised" tokens
DONE_OK, DONE_FAILED = 0, 1
PS_POLL_MS = 1000                        # blocking waits wake up this often (so Ctrl-C is honoured)
SESSION_POLL_SECS = 1                    # non-chief workers check this often for initialised variables

_server = None                           # one tf.train.Server per process


# ----------------------------------------------------------------------------- server

def get_server(args):
    """This process's ``tf.train.Server`` (created once), with tensorpack's default session
    config (soft placement; GPUs hidden on parameter servers)."""
    global _server
    if _server is None:
        from tensorpack.tfutils.common import get_default_sess_config
        from utils.compat import tf
        config = get_default_sess_config()
        if args.job == "ps":
            config.device_count["GPU"] = 0
        _server = tf.train.Server(tf.train.ClusterSpec(args.cluster_spec), job_name=args.job,
                                  task_index=args.task, config=config, start=True)
    return _server


def session_config(server):
    """Session config for the sessions of this process: tensorpack's defaults, restricted
    (``device_filters``) to the parameter servers and this task.  Without the filter a new
    session contacts every task of the cluster, e.g. a ps the workers that are not up yet —
    and gRPC then refuses that ps's later calls to them for a while ("failed to connect to
    all addresses"), which broke the start of training now and then."""
    from tensorpack.tfutils.common import get_default_sess_config
    job, task = server.server_def.job_name, server.server_def.task_index
    config = get_default_sess_config()
    config.device_filters[:] = [f"/job:ps/task:{task}"] if job == "ps" else ["/job:ps", f"/job:worker/task:{task}"]
    return config


def _queue(cluster, name, ps_task):
    """The token queue ``name`` on parameter server ``ps_task`` (the same definition on every
    process, so all of them address one shared queue)."""
    from utils.compat import tf
    with tf.device(f"/job:ps/task:{ps_task}/cpu:0"):
        return tf.FIFOQueue(2 * len(cluster["worker"]), [tf.int32], shapes=[[]], shared_name=name,
                            name=f"{name}_{ps_task}")


def post_tokens(server, cluster, name, value, copies=1, ps_tasks=None, timeout_s=60):
    """Put ``copies`` tokens ``value`` into queue ``name`` on the given parameter servers
    (default: all).  Own graph and session: usable before, during and after training."""
    from utils.compat import tf
    ps_tasks = range(len(cluster["ps"])) if ps_tasks is None else ps_tasks
    if copies < 1:
        return
    with tf.Graph().as_default():
        tokens = tf.fill([copies], tf.constant(value, tf.int32))
        enqueue = tf.group(*[_queue(cluster, name, i).enqueue_many(tokens) for i in ps_tasks])
        with tf.Session(server.target, config=session_config(server)) as sess:
            sess.run(enqueue, options=tf.RunOptions(timeout_in_ms=int(timeout_s * 1000)))


def take_tokens(server, cluster, name, count, ps_task=0, on_token=None):
    """Wait for and return ``count`` tokens from queue ``name`` on parameter server ``ps_task``
    (polling every ``PS_POLL_MS`` so that Ctrl-C is honoured); ``on_token(tokens so far)``
    is called after each token."""
    from utils.compat import tf
    tokens = []
    with tf.Graph().as_default():
        dequeue = _queue(cluster, name, ps_task).dequeue()
        with tf.Session(server.target, config=session_config(server)) as sess:
            while len(tokens) < count:
                try:
                    tokens.append(int(sess.run(dequeue, options=tf.RunOptions(timeout_in_ms=PS_POLL_MS))))
                except tf.errors.DeadlineExceededError:
                    continue
                if on_token is not None:
                    on_token(tokens)
    return tokens


def close_queues(server, cluster, queues, timeout_s=60):
    """Close the step-barrier queues ``[(device, shared_name)]`` (cancelling pending enqueues):
    workers blocked in a barrier then stop with OutOfRangeError instead of waiting forever."""
    from utils.compat import tf
    if not queues:
        return
    with tf.Graph().as_default():
        closes = []
        for device, name in queues:
            with tf.device(device):
                queue = tf.FIFOQueue(len(cluster["worker"]), [tf.bool], shapes=[[]], shared_name=name)
                closes.append(queue.close(cancel_pending_enqueues=True))
        with tf.Session(server.target, config=session_config(server)) as sess:
            sess.run(closes, options=tf.RunOptions(timeout_in_ms=int(timeout_s * 1000)))


def run_parameter_server(args):
    """The ``--job ps`` process: serve variables until every worker reported it is done.
    Returns None when all workers succeeded; raises RuntimeError otherwise."""
    from tensorpack.utils import logger as log
    cluster = args.cluster_spec
    server = get_server(args)
    workers = len(cluster["worker"])
    log.info(f"parameter server {args.task} serving on {cluster['ps'][args.task]}; "
             f"waiting for {workers} worker(s) to finish")

    statuses = take_tokens(server, cluster, DONE_QUEUE_NAME, workers, ps_task=args.task,
                           on_token=lambda got: log.info(f"{len(got)}/{workers} worker(s) finished"
                                                         + ("" if got[-1] == DONE_OK else " (failed)")))
    failed = sum(s != DONE_OK for s in statuses)
    if failed:
        raise RuntimeError(f"parameter server {args.task}: {failed} of {workers} worker(s) failed")
    log.info(f"parameter server {args.task}: all workers finished; exiting")
    return None


# ----------------------------------------------------------------------------- workers

def _distributed_session_creator(server):
    """tensorpack's ``get_distributed_session_creator`` with ``SESSION_POLL_SECS`` between a
    non-chief worker's checks for initialised variables (TensorFlow's default: 30 s) and
    ``session_config`` (device filters)."""
    from utils.compat import tf
    is_chief = server.server_def.job_name == "worker" and server.server_def.task_index == 0
    init_op = tf.global_variables_initializer()
    manager = tf.train.SessionManager(
        local_init_op=tf.local_variables_initializer(), ready_op=tf.report_uninitialized_variables(),
        ready_for_local_init_op=tf.report_uninitialized_variables(tf.global_variables()),
        graph=tf.get_default_graph(), recovery_wait_secs=SESSION_POLL_SECS)

    config = session_config(server)

    class Creator(tf.train.SessionCreator):
        def create_session(self):
            if is_chief:
                return manager.prepare_session(master=server.target, init_op=init_op, config=config)
            return manager.wait_for_session(master=server.target, config=config)

    return Creator()


def _create_local_global_step():
    """The global step as a *local* variable: each worker counts its own (synchronous) steps,
    as tensorpack's ``MaintainStepCounter`` intends.  tensorpack's
    ``override_to_local_variable()`` cannot make it local: ``get_global_step_var`` opens a
    fresh root variable scope, which drops the custom getter, so the step became a global
    variable on the worker's own device that the chief never initialises (non-chief workers
    then wait forever).  A step shared on a ps would advance once per worker and step, which
    breaks checkpoint names and MinSaver."""
    from utils.compat import tf
    with tf.variable_scope(tf.VariableScope(reuse=False, name="")), tf.name_scope(None):
        return tf.get_variable(tf.GraphKeys.GLOBAL_STEP, shape=[], dtype=tf.int64,
                               initializer=tf.zeros_initializer(), trainable=False,
                               collections=[tf.GraphKeys.LOCAL_VARIABLES, tf.GraphKeys.GLOBAL_STEP])


class _WorkerMixin:
    """What tensorpack's distributed trainers need here besides the compat shims:

    * (iv) a local global step, created before anything else asks for one; on resume it is
      set to the step the starting epoch implies (it is not in the checkpoints);
    * session creation polls every ``SESSION_POLL_SECS`` instead of 30 s;
    * non-chief workers start only after the chief has also run ``session_init`` (pretrained
      weights / checkpoint into the PS variables; tensorpack lets them copy the PS variables
      as soon as they are merely initialised), and start at the chief's epoch (their own log
      folders hold no checkpoint, so after a restart only the chief knows where the run is);
    * the worker reports its end (success or failure) to every parameter server; a failing
      worker first closes the step-barrier queues, so the other workers stop (with an error)
      instead of waiting for it forever."""

    _reported = False
    _chief_epoch = None

    def _setup_input(self, input_signature, input):
        from utils.compat import tf
        step = tf.train.get_global_step()
        if step is None:
            step = _create_local_global_step()
        self._step_value = tf.placeholder(tf.int64, [], name="set_global_step_value")
        self._set_step = step.assign(self._step_value, name="set_global_step")
        return super()._setup_input(input_signature, input)

    def setup_graph(self, *args, **kwargs):
        try:
            return super().setup_graph(*args, **kwargs)
        except BaseException:
            self._report(False)
            raise

    def train(self, callbacks, monitors, session_creator, session_init, steps_per_epoch,
              starting_epoch=1, max_epoch=9999999):
        self._starting_epoch = starting_epoch
        ok = False
        try:
            super().train(callbacks, monitors, session_creator, session_init, steps_per_epoch,
                          starting_epoch, max_epoch)
            ok = True
        finally:
            self._report(ok)

    def initialize(self, session_creator, session_init):
        from tensorpack.tfutils.sesscreate import NewSessionCreator
        from tensorpack.train.trainers import DistributedTrainerBase
        from tensorpack.utils import logger
        if not isinstance(session_creator, NewSessionCreator) or session_creator.user_provided_config:
            raise ValueError("distributed training takes its session config from the tf.train.Server")
        ok = False
        try:
            # DistributedTrainerBase.initialize with our session creator
            super(DistributedTrainerBase, self).initialize(_distributed_session_creator(self.server), session_init)
            ok = True
        finally:
            if self.is_chief:  # token: the chief's starting epoch (>= 1), 0 = failed
                post_tokens(self.server, self._cluster, READY_QUEUE_NAME, self._starting_epoch if ok else 0,
                            copies=len(self._cluster["worker"]) - 1, ps_tasks=[0])
        if not self.is_chief:
            logger.info("waiting for the chief worker to initialise the variables ...")
            self._chief_epoch = take_tokens(self.server, self._cluster, READY_QUEUE_NAME, 1)[0]
            if self._chief_epoch < 1:
                raise RuntimeError("the chief worker failed to initialise the variables")

    def main_loop(self, steps_per_epoch, starting_epoch, max_epoch):
        from tensorpack.utils import logger
        if self._chief_epoch is not None and self._chief_epoch != starting_epoch:
            logger.info(f"starting at the chief's epoch {self._chief_epoch} (not {starting_epoch})")
            starting_epoch = self._chief_epoch
        from utils.compat import tf
        self.sess.run(self._set_step, {self._step_value: (starting_epoch - 1) * steps_per_epoch})
        closed = None
        try:
            super().main_loop(steps_per_epoch, starting_epoch, max_epoch)
        except tf.errors.CancelledError as e:  # our enqueue met a barrier the failed worker had closed
            closed = e
        if closed is not None or self.loop.global_step < max_epoch * steps_per_epoch:  # closed barrier
            raise RuntimeError(f"training stopped at global step {self.loop.global_step} of "
                               f"{max_epoch * steps_per_epoch}: another worker failed") from closed

    def _report(self, ok):
        if self._reported:
            return
        self._reported = True
        try:
            if not ok:  # release the other workers from the step barriers: they stop too
                close_queues(self.server, self._cluster, getattr(self._builder, "sync_queue_names", []))
            post_tokens(self.server, self._cluster, DONE_QUEUE_NAME, DONE_OK if ok else DONE_FAILED)
        except Exception as e:  # never hide the training error behind a reporting error
            from tensorpack.utils import logger
            logger.warn(f"could not report completion to the parameter servers: {e}")


def _trainer_classes():
    """(replicated, parameter-server) worker trainer classes: tensorpack's with ``_WorkerMixin``."""
    from tensorpack.train import DistributedTrainerParameterServer, DistributedTrainerReplicated
    from utils.compat import tf

    class Replicated(_WorkerMixin, DistributedTrainerReplicated):
        def _setup_graph(self, input, get_cost_fn, get_opt_fn):
            # The builder creates the optimizer before the towers, outside any device scope:
            # its variables (learning_rate) would land on this worker's own device, where the
            # chief never initialises them.  Create them on the parameter servers first.
            with tf.device(self._builder.param_server_device):
                get_opt_fn()  # memoized by tensorpack: the builder gets the same optimizer
            return super()._setup_graph(input, get_cost_fn, get_opt_fn)

    class ParameterServer(_WorkerMixin, DistributedTrainerParameterServer):
        pass  # its builder creates the optimizer inside the towers, under the ps device setter

    return Replicated, ParameterServer


def make_distributed_trainer(args, towers):
    """The tensorpack trainer of a ``--job worker`` process (``towers`` towers on it)."""
    if args.job != "worker":
        raise ConfigError(f"--job {args.job}: only workers train (parameter servers run run_parameter_server)")
    from utils import compat
    compat.patch_tensorpack_distributed()
    replicated, parameter_server = _trainer_classes()
    cls = replicated if args.trainer == "distributed_replicated" else parameter_server
    trainer = cls(list(range(towers)), get_server(args))
    trainer._cluster = args.cluster_spec
    return trainer

