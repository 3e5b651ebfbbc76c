"""What a short TensorFlow run pays before its first useful step, and what the two start-up
settings of ``utils/compat.py`` buy back.

    python bench/session_startup.py [--repeats R] [--steps S] [--out FILE]

(a) **Process start-up and exit.** Wall time of a Python process that imports TensorFlow and
    tensorpack and exits, (i) plainly (``import tensorflow, tensorpack``, the same environment
    variables) and (ii) through ``utils.compat`` (cyclic garbage collector off during the import,
    the imported objects frozen, everything frozen again at exit).  Each run also builds a small
    graph before it exits, as every real run does; the two kinds alternate, R runs each.
(b) **The graph optimizer (grappler).** In a fresh process per run, a ResNet50-SE E2Net training
    graph (the test suite's tiny one: width 0.125, 32 px, batch 16; and the demo's: width 0.25,
    96 px, batch 32): seconds from session creation to the end of the first training step, then
    the median of S more steps, with tensorpack's session config (``E2NET_GRAPH_OPTIMIZER=on``,
    the default) and with grappler's meta optimizer off (``off``, as the tests run).
Prints medians over the R runs, their ratios, and the load average before and after; writes
JSON (default ``bench/results/session_startup.json``).
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

from tabulate import tabulate  # noqa: E402
from utils.atomic import write_json  # noqa: E402

SIZES = {"tests": dict(width_multiplier=0.125, image_size=32, batch=16),
         "demo": dict(width_multiplier=0.25, image_size=96, batch=32)}
# the same small graph in both start-up variants: a few conv layers and their gradients
SMALL_GRAPH = ("v1 = tensorflow.compat.v1\n"
               "v1.disable_v2_behavior()\n"
               "x = v1.placeholder(tensorflow.float32, [None, 32, 32, 3])\n"
               "for i in range(8):\n"
               "    x = v1.layers.conv2d(x, 16, 3, padding='same', name=f'c{i}')\n"
               "v1.gradients(v1.reduce_sum(x), v1.trainable_variables())\n")
PLAIN_START = ("import os\n"
               "os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')\n"
               "os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')\n"
               "os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')\n"
               "import tensorflow, tensorpack\n" + SMALL_GRAPH)
COMPAT_START = "import utils.compat\nimport tensorflow, tensorpack\n" + SMALL_GRAPH


def timed_process(code, env=None):
    """Wall seconds of ``python -c code`` from start to exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def session_child(size, steps):
    """In this process: build the graph, then time the first step and ``steps`` more; prints JSON."""
    from utils.compat import tf   # first: TensorFlow's set-up, and the session config it patches
    import numpy as np
    from tensorpack.tfutils.common import get_default_sess_config
    from tensorpack.tfutils.tower import TowerContext
    from models.spec import ModelSpec
    from models.wsol_model import WSOLModel

    shape = SIZES[size]
    spec = ModelSpec(arch="resnet", method="E2Net", num_classes=10, positions=("31", "41", "5"),
                     ose_heads=("3x3", "1x3", "3x1"), use_bn=True,
                     width_multiplier=shape["width_multiplier"], image_size=shape["image_size"])
    model = WSOLModel(spec)
    inputs = [tf.placeholder(s.dtype, s.shape, s.name) for s in model.inputs()]
    with TowerContext("", is_training=True):
        cost = model.build_graph(*inputs)
    train_op = model.optimizer().minimize(cost)
    rng = np.random.RandomState(0)
    n, px = shape["batch"], shape["image_size"]
    feed = {inputs[0]: rng.randint(0, 256, (n, px, px, 3)).astype(np.uint8),
            inputs[1]: rng.randint(0, 10, n).astype(np.int32), inputs[2]: np.zeros((n, 2, 2), np.float32)}
    start = time.perf_counter()
    sess = tf.Session(config=get_default_sess_config())
    sess.run(tf.global_variables_initializer())
    sess.run(train_op, feed)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        sess.run(train_op, feed)
        times.append(time.perf_counter() - t)
    print(json.dumps({"first_step_s": first, "step_s": statistics.median(times)}))


def session_run(size, steps, optimizer):
    env = dict(os.environ, E2NET_GRAPH_OPTIMIZER=optimizer)
    result = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", size, "--steps", str(steps)],
                            cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def median(values):
    return statistics.median(values)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=3, help="runs of each variant (alternating)")
    p.add_argument("--steps", type=int, default=10, help="timed steps after the first, per session run")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results", "session_startup.json"))
    p.add_argument("--child", choices=sorted(SIZES), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return session_child(args.child, args.steps)

    load_start = os.getloadavg()
    process = {"plain": [], "compat": []}
    for _ in range(args.repeats):
        process["plain"].append(timed_process(PLAIN_START))
        process["compat"].append(timed_process(COMPAT_START))
    sessions = {(size, opt): [] for size in SIZES for opt in ("on", "off")}
    for _ in range(args.repeats):
        for size in SIZES:
            for opt in ("on", "off"):
                sessions[(size, opt)].append(session_run(size, args.steps, opt))
    load_end = os.getloadavg()

    plain, compat = median(process["plain"]), median(process["compat"])
    print(f"load average (1, 5, 15 min): start {load_start}, end {load_end}; {args.repeats} runs each, medians\n")
    print(tabulate([["import TensorFlow + tensorpack, small graph, exit", f"{plain:.2f}", f"{compat:.2f}",
                     f"{plain / compat:.2f}"]],
                   headers=["process", "plain s", "utils.compat s", "plain / compat"], tablefmt="github"))
    rows, results = [], {}
    for size in SIZES:
        on = {k: median([r[k] for r in sessions[(size, "on")]]) for k in ("first_step_s", "step_s")}
        off = {k: median([r[k] for r in sessions[(size, "off")]]) for k in ("first_step_s", "step_s")}
        results[size] = {"on": on, "off": off, "runs": {opt: sessions[(size, opt)] for opt in ("on", "off")}}
        rows.append([size, f"{on['first_step_s']:.2f}", f"{off['first_step_s']:.2f}",
                     f"{on['first_step_s'] / off['first_step_s']:.2f}", f"{on['step_s'] * 1000:.0f}",
                     f"{off['step_s'] * 1000:.0f}", f"{off['step_s'] / on['step_s']:.2f}"])
    print()
    print(tabulate(rows, headers=["ResNet50-SE E2Net", "to 1st step s (on)", "(off)", "on / off",
                                  "step ms (on)", "(off)", "off / on"], tablefmt="github"))
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    write_json(args.out, {"process": {"plain_s": process["plain"], "compat_s": process["compat"],
                                      "plain_over_compat": plain / compat},
                          "sessions": results, "sizes": SIZES, "repeats": args.repeats, "steps": args.steps,
                          "loadavg_start": load_start, "loadavg_end": load_end}, indent=1)
    print(f"\nwritten: {args.out}")


if __name__ == "__main__":
    sys.exit(main())
