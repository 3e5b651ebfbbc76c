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

tensorpack 0.11's distributed trainers need fixes on TensorFlow 2.x (section "tensorpack fixes"):
builder subclasses where tensorpack allows it (the replicated builder's gradient pairing, the
step barrier of a single worker), module patches where it does not (the TF1 namespace of
tensorpack's ``import tensorflow as tf`` modules, nested ``override_to_local_variable``).  They
are applied by ``make_distributed_trainer`` (and, for Horovod, by ``utils.training.trainers``);
single-process training never sees them.  The cluster spec itself is parsed and checked in
``utils.training.cluster`` (TensorFlow-free, used by ``utils.config``).
"""
from utils import compat  # noqa: F401  (first: TensorFlow set-up)
import importlib
import types

from tensorpack.graph_builder import utils as gb_utils
from tensorpack.graph_builder.distributed import DistributedParameterServerBuilder, DistributedReplicatedBuilder
from tensorpack.graph_builder.training import DataParallelBuilder
from tensorpack.graph_builder.utils import allreduce_grads_naive, override_to_local_variable, split_grad_list
from tensorpack.tfutils import common as tp_common
from tensorpack.tfutils.common import get_global_step_var
from tensorpack.tfutils.sesscreate import NewSessionCreator
from tensorpack.train import DistributedTrainerParameterServer, DistributedTrainerReplicated
from tensorpack.train.trainers import DistributedTrainerBase
from tensorpack.utils import logger
from tensorpack.utils.argtools import memoized

from utils.compat import TF2, tf
from utils.errors import ConfigError

DONE_QUEUE_NAME = "e2net_workers_done"   # on every ps: one token per worker when it is finished
READY_QUEUE_NAME = "e2net_chief_ready"   # on ps 0: the chief's "variables initialised" tokens
DONE_OK, DONE_FAILED = 0, 1
PS_POLL_MS = 1000                        # blocking waits wake up this often (so Ctrl-C is honoured)
SESSION_POLL_SECS = 1                    # non-chief workers check this often for initialised variables

_server = None                           # one tf.train.Server per process


# ----------------------------------------------------------------------------- tensorpack fixes
#
# What tensorpack 0.11's distributed trainers (and HorovodTrainer) need on TensorFlow 2.x.
# Numbered as in the docstrings: (i) and (ii) are module patches (tensorpack reads these names
# from its module globals), (iii) and (v) builder subclasses, (iv) ``_WorkerMixin`` below.

# tensorpack modules that ``import tensorflow as tf`` and then call TF1-only functions
# (``tf.train.replica_device_setter``, ``tf.train.SessionManager``, ``tf.global_variables``,
# ``tf.contrib.training.GreedyLoadBalancingStrategy`` ...) on the distributed / Horovod path.
TENSORPACK_DISTRIBUTED_MODULES = ("tensorpack.graph_builder.distributed", "tensorpack.tfutils.distributed",
                                  "tensorpack.train.trainers")
TENSORPACK_HOROVOD_MODULES = ("tensorpack.train.trainers",)


class GreedyLoadBalancingStrategy:
    """Stand-in for TF1's ``tf.contrib.training.GreedyLoadBalancingStrategy`` (removed with
    tf.contrib): a ``ps_strategy`` for ``replica_device_setter`` that puts each variable on
    the parameter server with the smallest load so far (load of a variable: ``load_fn(op)``)."""

    def __init__(self, num_tasks, load_fn):
        self._load_fn = load_fn
        self._loads = [0] * num_tasks

    def __call__(self, op):
        task = min(range(len(self._loads)), key=self._loads.__getitem__)
        self._loads[task] += self._load_fn(op)
        return task


def byte_size_load_fn(op):
    """Load of a variable-creating op for ``GreedyLoadBalancingStrategy``: the variable's size
    in bytes (from the op's ``shape`` / ``dtype`` attributes; 0 when not fully known)."""
    try:
        shape = tf.TensorShape(op.get_attr("shape"))
        dtype = tf.as_dtype(op.get_attr("dtype"))
    except (ValueError, TypeError):
        if not op.outputs:
            return 0
        shape, dtype = op.outputs[0].shape, op.outputs[0].dtype
    if not shape.is_fully_defined():
        return 0
    return shape.num_elements() * dtype.base_dtype.size


class _TF1Namespace(types.ModuleType):
    """A module object that is ``tf.compat.v1`` plus extra attributes (``contrib``): what
    tensorpack's ``import tensorflow as tf`` modules expect to see under the name ``tf``."""

    def __init__(self, base, **extra):
        super().__init__(base.__name__, getattr(base, "__doc__", None))
        self.__dict__.update(extra)
        self._base = base

    def __getattr__(self, name):
        return getattr(self._base, name)


def tf1_namespace():
    """``tf.compat.v1`` with ``contrib.training.{GreedyLoadBalancingStrategy, byte_size_load_fn}``
    (on TensorFlow 1.15: ``tensorflow`` itself, which has the real tf.contrib)."""
    if not TF2:
        return tf
    training = types.SimpleNamespace(GreedyLoadBalancingStrategy=GreedyLoadBalancingStrategy,
                                     byte_size_load_fn=byte_size_load_fn)
    return _TF1Namespace(tf, contrib=types.SimpleNamespace(training=training))


def use_tf1_in_tensorpack_modules(module_names):
    """(i) Rebind the global ``tf`` of the given tensorpack modules to ``tf1_namespace()``.
    These modules call TF1-only functions through ``import tensorflow as tf``; everything they
    use exists in tf.compat.v1, so other code paths in them are unaffected.  Idempotent."""
    namespace = None
    for name in module_names:
        module = importlib.import_module(name)
        if not isinstance(getattr(module, "tf", None), _TF1Namespace) and TF2:
            namespace = namespace or tf1_namespace()
            module.tf = namespace


def _replace_global_by_local(kwargs):
    """(ii) tensorpack 0.11's ``override_to_local_variable`` custom getter removes
    GLOBAL_VARIABLES from a variable's collections with ``set.remove``; when two such scopes
    are nested the inner one finds it already gone and raises ``KeyError: 'variables'``.
    Replacement: the same rewrite (collections -> LOCAL_VARIABLES instead of GLOBAL_VARIABLES)
    with a tolerant removal (and no unbound name when ``collections`` is not passed)."""
    collections = set(kwargs.get("collections") or [tf.GraphKeys.GLOBAL_VARIABLES])
    collections.discard(tf.GraphKeys.GLOBAL_VARIABLES)
    collections.add(tf.GraphKeys.LOCAL_VARIABLES)
    kwargs["collections"] = list(collections)


def patch_tensorpack_distributed():
    """The module patches (i) and (ii) for tensorpack's distributed trainers.  Idempotent;
    called by ``make_distributed_trainer``."""
    use_tf1_in_tensorpack_modules(TENSORPACK_DISTRIBUTED_MODULES)
    gb_utils._replace_global_by_local = _replace_global_by_local


class _SyncBarrier:
    """(v) tensorpack 0.11's ``DistributedBuilderBase._add_sync_queues_and_barrier`` attaches
    the control dependencies (the step's train op) only to the enqueue ops for the *other*
    workers.  With a single worker there are none, so the returned barrier (which is the
    trainer's ``train_op``) depends on nothing: training silently does nothing, and with
    several towers the StagingArea input is never refilled and the second step hangs.
    Here: the same barrier, plus a no-op carrying the dependencies (as in the
    tensorflow/benchmarks code it follows); it also records the queues it creates."""

    def _add_sync_queues_and_barrier(self, name, dependencies):
        """An op that completes once every worker has finished ``dependencies`` for this step.
        The queues' (device, shared_name) go to ``self.sync_queue_names`` (so that a failing
        worker can close them and release the others)."""
        self._sync_queue_counter += 1
        device = self.sync_queue_devices[self._sync_queue_counter % len(self.sync_queue_devices)]
        names = [f"{name}{i}" for i in range(self.num_worker)]
        self.__dict__.setdefault("sync_queue_names", []).extend((device, n) for n in names)
        with tf.device(device):
            queues = [tf.FIFOQueue(self.num_worker, [tf.bool], shapes=[[]], shared_name=n) for n in names]
            token = tf.constant(False)
            with tf.control_dependencies(dependencies):
                ops = [tf.no_op()]  # the fix: the barrier depends on ``dependencies`` even alone
                ops += [q.enqueue(token) for i, q in enumerate(queues) if i != self.task_index]
            ops.append(queues[self.task_index].dequeue_many(len(queues) - 1))
            return tf.group(*ops, name=name)


class ReplicatedBuilder(_SyncBarrier, DistributedReplicatedBuilder):
    """(iii) tensorpack 0.11's ``DistributedReplicatedBuilder.build`` averages the towers'
    gradients and then pairs the *unaveraged* per-tower lists with the variables
    (``zip(all_grads, ...)``), which fails with "Shapes must be equal rank" even with one
    tower.  Here: the same build with the averaged gradients paired with the variables of
    tower 0 (they are then mapped to the PS shadow variables as before); and (v)."""

    def build(self, get_grad_fn, get_opt_fn):
        """Returns (train_op, op syncing local variables from the PS, op syncing the chief's
        local MODEL_VARIABLES to the PS or None) — see tensorpack's original docstring."""
        with override_to_local_variable():
            get_global_step_var()
        get_opt_fn = memoized(get_opt_fn)
        get_opt_fn()  # the optimizer (learning_rate) first, outside the towers: a global variable

        grad_list = DataParallelBuilder.build_on_towers(
            self.towers, get_grad_fn, devices=self.raw_devices, use_vs=[True] * len(self.towers))
        DataParallelBuilder._check_grad_list(grad_list)

        all_grads, all_vars = split_grad_list(grad_list)
        averaged = allreduce_grads_naive(all_grads, devices=self.raw_devices)
        avg_grads = list(zip(averaged, all_vars[0]))  # the fix: averaged gradients, tower-0 variables
        with tf.device(self.param_server_device):
            ps_var_grads = self._apply_shadow_vars(avg_grads)
            var_update_ops = self._apply_gradients_and_copy(get_opt_fn(), grad_list, ps_var_grads)
            self._shadow_vars = [v for _, v in ps_var_grads]
            self._shadow_model_vars = self._shadow_model_variables(self._shadow_vars)

        main_fetch = tf.group(*var_update_ops, name="main_fetches")
        train_op = self._add_sync_queues_and_barrier("post_copy_barrier", [main_fetch])
        with tf.name_scope("initial_sync_variables"):
            initial_sync_op = self._get_initial_sync_op()
        model_sync_op = None
        if self._shadow_model_vars and self.is_chief:
            with tf.name_scope("sync_model_variables"):
                model_sync_op = self._get_sync_model_vars_op()
        return train_op, initial_sync_op, model_sync_op


class ParameterServerBuilder(_SyncBarrier, DistributedParameterServerBuilder):
    """tensorpack's ``DistributedParameterServerBuilder`` with the step barrier (v)."""


# ----------------------------------------------------------------------------- server

def get_server(args):
    """This process's ``tf.train.Server`` (created once), with tensorpack's default session
    config (soft placement; GPUs hidden on parameter servers)."""
    global _server
    if _server is None:
        config = tp_common.get_default_sess_config()
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
    job, task = server.server_def.job_name, server.server_def.task_index
    config = tp_common.get_default_sess_config()
    config.device_filters[:] = [f"/job:ps/task:{task}"] if job == "ps" else ["/job:ps", f"/job:worker/task:{task}"]
    return config


def _queue(cluster, name, ps_task):
    """The token queue ``name`` on parameter server ``ps_task`` (the same definition on every
    process, so all of them address one shared queue)."""
    with tf.device(f"/job:ps/task:{ps_task}/cpu:0"):
        return tf.FIFOQueue(2 * len(cluster["worker"]), [tf.int32], shapes=[[]], shared_name=name,
                            name=f"{name}_{ps_task}")


def post_tokens(server, cluster, name, value, copies=1, ps_tasks=None, timeout_s=60):
    """Put ``copies`` tokens ``value`` into queue ``name`` on the given parameter servers
    (default: all).  Own graph and session: usable before, during and after training."""
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
    cluster = args.cluster_spec
    server = get_server(args)
    workers = len(cluster["worker"])
    logger.info(f"parameter server {args.task} serving on {cluster['ps'][args.task]}; "
             f"waiting for {workers} worker(s) to finish")

    statuses = take_tokens(server, cluster, DONE_QUEUE_NAME, workers, ps_task=args.task,
                           on_token=lambda got: logger.info(f"{len(got)}/{workers} worker(s) finished"
                                                         + ("" if got[-1] == DONE_OK else " (failed)")))
    failed = sum(s != DONE_OK for s in statuses)
    if failed:
        raise RuntimeError(f"parameter server {args.task}: {failed} of {workers} worker(s) failed")
    logger.info(f"parameter server {args.task}: all workers finished; exiting")
    return None


# ----------------------------------------------------------------------------- workers

def _distributed_session_creator(server):
    """tensorpack's ``get_distributed_session_creator`` with ``SESSION_POLL_SECS`` between a
    non-chief worker's checks for initialised variables (TensorFlow's default: 30 s) and
    ``session_config`` (device filters)."""
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
    with tf.variable_scope(tf.VariableScope(reuse=False, name="")), tf.name_scope(None):
        return tf.get_variable(tf.GraphKeys.GLOBAL_STEP, shape=[], dtype=tf.int64,
                               initializer=tf.zeros_initializer(), trainable=False,
                               collections=[tf.GraphKeys.LOCAL_VARIABLES, tf.GraphKeys.GLOBAL_STEP])


class _WorkerMixin:
    """What tensorpack's distributed trainers need here besides the fixes above:

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
        if self._chief_epoch is not None and self._chief_epoch != starting_epoch:
            logger.info(f"starting at the chief's epoch {self._chief_epoch} (not {starting_epoch})")
            starting_epoch = self._chief_epoch
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
            logger.warn(f"could not report completion to the parameter servers: {e}")


class ReplicatedTrainer(_WorkerMixin, DistributedTrainerReplicated):
    """tensorpack's ``DistributedTrainerReplicated`` with ``_WorkerMixin`` and ``ReplicatedBuilder``."""

    def __init__(self, gpus, server):
        super().__init__(gpus, server)
        self._builder = ReplicatedBuilder(gpus, server)

    def _setup_graph(self, input, get_cost_fn, get_opt_fn):
        # The builder creates the optimizer before the towers, outside any device scope:
        # its variables (learning_rate) would land on this worker's own device, where the
        # chief never initialises them.  Create them on the parameter servers first.
        with tf.device(self._builder.param_server_device):
            get_opt_fn()  # memoized by tensorpack: the builder gets the same optimizer
        return super()._setup_graph(input, get_cost_fn, get_opt_fn)


class ParameterServerTrainer(_WorkerMixin, DistributedTrainerParameterServer):
    """tensorpack's ``DistributedTrainerParameterServer`` with ``_WorkerMixin`` and
    ``ParameterServerBuilder`` (which creates the optimizer inside the towers, under the ps
    device setter)."""

    def __init__(self, gpus, server, caching_device="cpu"):
        super().__init__(gpus, server, caching_device)
        self._builder = ParameterServerBuilder(gpus, server, caching_device)


TRAINERS = {"distributed_replicated": ReplicatedTrainer, "distributed_ps": ParameterServerTrainer}


def make_distributed_trainer(args, towers):
    """The tensorpack trainer of a ``--job worker`` process (``towers`` towers on it)."""
    if args.job != "worker":
        raise ConfigError(f"--job {args.job}: only workers train (parameter servers run run_parameter_server)")
    patch_tensorpack_distributed()
    trainer = TRAINERS[args.trainer](list(range(towers)), get_server(args))
    trainer._cluster = args.cluster_spec
    return trainer

