"""The ``--cluster`` spec of multi-machine training, parsed and checked (no TensorFlow).

``SPEC`` is a JSON object ``{"ps": ["host:port", ...], "worker": ["host:port", ...]}``, given
inline or as the path of a file holding it; a TF_CONFIG-style file
``{"cluster": {...}, "task": {"type": "worker", "index": 1}}`` is accepted too, and its task
fills ``--job`` / ``--task`` when they are not on the command line.  ``utils.config.resolve``
calls ``resolve_cluster``; the trainers and servers are in ``utils.training.distributed``.
"""
import json
import os

from utils.errors import ConfigError

JOBS = ("ps", "worker")


def load_cluster_spec(spec):
    """(cluster, task type or None, task index or None) from ``--cluster``: inline JSON or a
    JSON file, plain ``{"ps": [...], "worker": [...]}`` or TF_CONFIG-style."""
    text = spec.strip()
    if not text.startswith("{"):
        if not os.path.isfile(spec):
            raise ConfigError(f"--cluster: {spec} is neither a JSON object nor an existing file")
        with open(spec) as f:
            text = f.read()
    try:
        content = json.loads(text)
    except ValueError as e:
        raise ConfigError(f"--cluster: invalid JSON ({e})") from None
    if not isinstance(content, dict):
        raise ConfigError("--cluster: expected a JSON object")
    task_type = task_index = None
    if "cluster" in content:
        task = content.get("task") or {}
        task_type, task_index = task.get("type"), task.get("index")
        content = content["cluster"]
    if not isinstance(content, dict):
        raise ConfigError("--cluster: 'cluster' must be a JSON object")
    extra = set(content) - set(JOBS)
    if extra:
        raise ConfigError(f"--cluster: only the jobs 'ps' and 'worker' are supported (worker 0 is the chief), "
                          f"got {sorted(extra)}")
    cluster = {}
    for job in JOBS:
        hosts = content.get(job)
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise ConfigError(f"--cluster: '{job}' must be a non-empty list of 'host:port' strings")
        cluster[job] = list(hosts)
    return cluster, task_type, task_index


def resolve_cluster(args):
    """Validate the distributed flags (called by ``utils.config.resolve``): sets
    ``args.cluster_spec`` (the cluster dict) and fills ``args.job`` / ``args.task`` from a
    TF_CONFIG-style file when they were not given on the command line."""
    if args.cluster is None:
        raise ConfigError(f"--trainer {args.trainer} needs --cluster")
    cluster, task_type, task_index = load_cluster_spec(args.cluster)
    if args.job is None:
        args.job = task_type
    if args.job is None:
        raise ConfigError(f"--trainer {args.trainer} needs --job (or a TF_CONFIG-style --cluster file with a task)")
    if args.job not in JOBS:
        raise ConfigError(f"--cluster: task type '{args.job}' is not one of {JOBS}")
    if args.task is None:
        args.task = task_index if task_index is not None else 0
    if not isinstance(args.task, int) or not 0 <= args.task < len(cluster[args.job]):
        raise ConfigError(f"--task {args.task}: the cluster has {len(cluster[args.job])} '{args.job}' task(s)")
    args.cluster_spec = cluster
    return args
