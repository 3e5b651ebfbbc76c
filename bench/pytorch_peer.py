"""The project's training step against the same step in PyTorch, on the same CPU, fp32 and bf16.

    python bench/pytorch_peer.py [--torch_python bench/.venv-torch/bin/python] [--quick]
                                 [--archs vgg_gap resnet] [--windows R] [--window K] [--out FILE]

PyTorch is the framework of wsolevaluation (Choe et al.), the peer a WSOL user would pick
instead.  It is never a project dependency: it lives in a separate, git-ignored environment
(``bench/.venv-torch``, see bench/README.md), and this script talks to it through a worker
process, so neither TensorFlow nor PyTorch is imported into the other's process.

Configurations (CUB presets, as ``bench/train_throughput.py``'s full224): VGG16-GAP CAM
(conv1_1 ... conv5_3, max-pool after blocks 1-4, ``new`` 3x3 -> 1024 + ReLU, GAP, FC 200) and
ResNet50-SE CAM (SE bottlenecks [3, 4, 6, 3], group3 stride 1, GAP, FC 1000) at 224 px, batch 8.
The PyTorch models are written here to the same layer shapes (channels_last tensors, the
layout oneDNN prefers); a step is forward, softmax cross-entropy + L2 weight decay on the
conv/FC weights (5e-4 VGG, 1e-4 ResNet, as ``0.5 * wd * sum(w^2)`` like TensorFlow's
``l2_loss``), backward and a Nesterov-momentum SGD update.  bf16 in PyTorch is
``torch.autocast("cpu", dtype=torch.bfloat16)`` around forward and loss (fp32 weights).

The project's side is ``bench/train_throughput.py``'s bare loop: the project's graph
(``WSOLModel.build_graph`` + ``WSOLModel.optimizer()``) on one in-memory batch in a plain
session, at fp32 and with the bf16 rewrite (``utils.training.precision``); the project's own
tensorpack path runs at that loop's speed at 224 px (project/bare 0.99-1.04 in bench/README.md).

Timing: both workers stay alive; after a warm-up (oneDNN creates its kernels during the first
steps of each shape and precision: PyTorch's first 4-5 steps here are 10-100x slower) the
driver runs windows of ``K`` steps in turn -- project fp32, PyTorch fp32, project bf16, PyTorch bf16 -- ``R`` times, so all four see
the same load from other processes.  Ratios are medians over windows of adjacent windows
(``project_to_pytorch_fp32`` = project fp32 window i / PyTorch fp32 window i, etc.).  The load
average is printed and recorded at the start and the end.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_TORCH_PYTHON = os.path.join(REPO_ROOT, "bench", ".venv-torch", "bin", "python")
SETTINGS = {"full224": dict(image_size=224, width=1.0, batch=8, warmup=4, window=1, windows=6),
            "quick": dict(image_size=32, width=0.125, batch=4, warmup=8, window=2, windows=3)}
CLASSES = {"vgg_gap": 200, "resnet": 1000}          # CUB presets, as released
WEIGHT_DECAY = {"vgg_gap": 5e-4, "resnet": 1e-4}
LR = 1e-4
PRECISIONS = ("fp32", "bf16")


# --------------------------------------------------------------------------- PyTorch worker

def torch_models(torch, arch, width, classes):
    """The PyTorch twin of the project's CAM model of ``arch`` (layer shapes as models/)."""
    nn = torch.nn

    def ch(c):
        return max(1, int(round(c * width)))

    if arch == "vgg_gap":
        layers, cin = [], 3
        for block, widths in enumerate(((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512)), 1):
            for w in widths:
                layers += [nn.Conv2d(cin, ch(w), 3, padding=1), nn.ReLU(inplace=True)]
                cin = ch(w)
            if block <= 4:
                layers.append(nn.MaxPool2d(2))
        layers += [nn.Conv2d(cin, ch(1024), 3, padding=1), nn.ReLU(inplace=True),
                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(ch(1024), classes)]
        return nn.Sequential(*layers)

    class SEBottleneck(nn.Module):
        def __init__(self, cin, w, stride):
            super().__init__()
            out = w * 4
            self.body = nn.Sequential(
                nn.Conv2d(cin, w, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                nn.Conv2d(w, w, 3, stride, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
                nn.Conv2d(w, out, 1, bias=False), nn.BatchNorm2d(out))
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(out, max(1, w // 4)),
                                    nn.ReLU(inplace=True), nn.Linear(max(1, w // 4), out), nn.Sigmoid())
            self.shortcut = (nn.Identity() if cin == out and stride == 1 else
                             nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)))

        def forward(self, x):
            y = self.body(x)
            y = y * self.se(y)[:, :, None, None]
            return torch.relu(y + self.shortcut(x))

    layers = [nn.Conv2d(3, ch(64), 7, 2, 3, bias=False), nn.BatchNorm2d(ch(64)), nn.ReLU(inplace=True),
              nn.MaxPool2d(3, 2, 1)]
    cin = ch(64)
    for count, w, stride in ((3, 64, 1), (4, 128, 2), (6, 256, 2), (3, 512, 1)):
        for k in range(count):
            layers.append(SEBottleneck(cin, ch(w), stride if k == 0 else 1))
            cin = ch(w) * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


def torch_worker(arch, setting):
    """Serve ``run <precision> <steps>`` lines on stdin with one JSON list of step seconds each."""
    import torch
    torch.manual_seed(0)
    s = SETTINGS[setting]
    model = torch_models(torch, arch, s["width"], CLASSES[arch]).to(memory_format=torch.channels_last)
    weights = [p for name, p in model.named_parameters() if p.dim() > 1]
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, nesterov=True)
    images = torch.rand(s["batch"], 3, s["image_size"], s["image_size"]).to(memory_format=torch.channels_last)
    labels = torch.arange(s["batch"]) % CLASSES[arch]
    decay = WEIGHT_DECAY[arch]

    def step(name):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16"):
            loss = torch.nn.functional.cross_entropy(model(images), labels)
        loss = loss + 0.5 * decay * sum((w.float() ** 2).sum() for w in weights)
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    serve(step, f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def serve(step, banner):
    """The worker protocol: a ready line, then ``run <precision> <steps>`` -> step seconds."""
    print(json.dumps({"ready": banner}), flush=True)
    for line in sys.stdin:
        _, name, steps = line.split()
        durations = []
        for _ in range(int(steps)):
            start = time.perf_counter()
            loss = step(name)
            durations.append(time.perf_counter() - start)
        print(json.dumps({"durations": durations, "loss": loss}), flush=True)


# --------------------------------------------------------------------------- project worker

def project_worker(arch, setting):
    """The project's graph in ``bench/train_throughput.py``'s bare loop, at fp32 and bf16."""
    import importlib.util
    sys.path.insert(0, REPO_ROOT)
    spec = importlib.util.spec_from_file_location("train_throughput", os.path.join(REPO_ROOT, "bench",
                                                                                  "train_throughput.py"))
    train_throughput = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(train_throughput)
    import numpy as np
    from utils.config import model_spec, parse_args

    s = SETTINGS[setting]
    args = parse_args(["--dataset_name", "CUB", "--arch_name", arch, "--method_name", "CAM",
                       "--final_size", str(s["image_size"]), "--width_multiplier", str(s["width"]),
                       "--base_lr", str(LR), "--data_format", "NHWC",
                       "--log_dir", os.path.join("/tmp", "pytorch_peer_unused")]
                      + (["--use_pretrained_model"] if s["width"] == 1.0 else []))   # the released x0.1 rule
    rng = np.random.default_rng(0)
    batch = [rng.integers(0, 256, (s["batch"], s["image_size"], s["image_size"], 3), np.uint8),
             (np.arange(s["batch"]) % CLASSES[arch]).astype(np.int32), np.zeros((s["batch"], 2, 2), np.float32)]
    loops = {name: train_throughput.BareLoop(model_spec(args), batch, "/cpu:0", name) for name in PRECISIONS}

    def step(name):
        loop = loops[name]
        return float(loop.sess.run([loop.cost, loop.step])[0])

    import tensorflow
    serve(step, f"tensorflow {tensorflow.__version__}")


# --------------------------------------------------------------------------- driver

class Worker:
    def __init__(self, command):
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.banner = self._reply()["ready"]

    def _reply(self):
        while True:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"worker {self.process.args} ended (exit {self.process.wait()})")
            if line.startswith("{"):
                return json.loads(line)

    def run(self, name, steps):
        self.process.stdin.write(f"run {name} {steps}\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=60)


def measure(arch, setting, torch_python, window, windows):
    s = SETTINGS[setting]
    me = os.path.abspath(__file__)
    project = Worker([sys.executable, me, "--worker", "project", "--arch", arch, "--setting", setting])
    peer = Worker([torch_python, me, "--worker", "torch", "--arch", arch, "--setting", setting])
    workers = {"project": project, "pytorch": peer}
    for worker in workers.values():
        for name in PRECISIONS:
            worker.run(name, s["warmup"])
    rates = {(who, name): [] for who in workers for name in PRECISIONS}
    losses = {}
    for _ in range(windows):
        for name in PRECISIONS:
            for who, worker in workers.items():
                reply = worker.run(name, window)
                rates[(who, name)].append(s["batch"] * window / sum(reply["durations"]))
                losses[(who, name)] = reply["loss"]
    for worker in workers.values():
        worker.close()

    def paired(a, b):
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    return {"arch": arch, "method": "CAM", "image_size": s["image_size"], "width_multiplier": s["width"],
            "batch": s["batch"], "num_classes": CLASSES[arch], "project": project.banner, "pytorch": peer.banner,
            **{f"images_per_s_{who}_{name}": statistics.median(rates[(who, name)])
               for who in workers for name in PRECISIONS},
            **{f"samples_{who}_{name}": rates[(who, name)] for who in workers for name in PRECISIONS},
            **{f"last_loss_{who}_{name}": losses[(who, name)] for who in workers for name in PRECISIONS},
            "project_to_pytorch_fp32": paired(("project", "fp32"), ("pytorch", "fp32")),
            "project_to_pytorch_bf16": paired(("project", "bf16"), ("pytorch", "bf16")),
            "bf16_to_fp32_project": paired(("project", "bf16"), ("project", "fp32")),
            "bf16_to_fp32_pytorch": paired(("pytorch", "bf16"), ("pytorch", "fp32")),
            "loadavg": os.getloadavg()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch_python", default=DEFAULT_TORCH_PYTHON,
                        help="python of the separate PyTorch environment (never the project's)")
    parser.add_argument("--quick", action="store_true", help="32 px, width 0.125, batch 4, 3 windows of 2 steps")
    parser.add_argument("--archs", nargs="+", default=["vgg_gap", "resnet"], choices=("vgg_gap", "resnet"))
    parser.add_argument("--window", type=int, default=None)
    parser.add_argument("--windows", type=int, default=None)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "bench", "results", "pytorch_peer.json"))
    parser.add_argument("--worker", choices=("project", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--arch", help=argparse.SUPPRESS)
    parser.add_argument("--setting", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "torch":
        return torch_worker(args.arch, args.setting)
    if args.worker == "project":
        return project_worker(args.arch, args.setting)
    if not os.path.isfile(args.torch_python):
        print(f"pytorch_peer.py: error: {args.torch_python}: no such python; make the separate PyTorch "
              f"environment first (bench/README.md, 'PyTorch peer')", file=sys.stderr)
        return 2
    setting = "quick" if args.quick else "full224"
    s = SETTINGS[setting]
    start_load = os.getloadavg()
    print(f"load average at the start (1, 5, 15 min): {' '.join(f'{v:.2f}' for v in start_load)} "
          f"on {os.cpu_count()} cores", flush=True)
    records = []
    for arch in args.archs:
        record = measure(arch, setting, args.torch_python, args.window or s["window"], args.windows or s["windows"])
        records.append(record)
        print(f"{arch:8s} CAM {s['image_size']}px batch {s['batch']}: img/s project fp32 "
              f"{record['images_per_s_project_fp32']:.2f} bf16 {record['images_per_s_project_bf16']:.2f} | "
              f"PyTorch fp32 {record['images_per_s_pytorch_fp32']:.2f} bf16 {record['images_per_s_pytorch_bf16']:.2f}"
              f" | project/PyTorch fp32 {record['project_to_pytorch_fp32']:.3f} bf16 "
              f"{record['project_to_pytorch_bf16']:.3f} | bf16/fp32 project {record['bf16_to_fp32_project']:.3f} "
              f"PyTorch {record['bf16_to_fp32_pytorch']:.3f} | load {record['loadavg'][0]:.2f}", flush=True)
    end_load = os.getloadavg()
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in end_load)}")
    sys.path.insert(0, REPO_ROOT)
    from utils.atomic import write_json   # stdlib only: the parent process stays free of TensorFlow and PyTorch
    write_json(args.out, {"setting": setting, "loadavg_start": start_load, "loadavg_end": end_load,
                          "cpu_count": os.cpu_count(), "configs": records}, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
