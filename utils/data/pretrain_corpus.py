"""The pretraining corpus: a many-class synthetic classification set playing ImageNet's role
for the project's own model zoo (``python -m utils.pretrain``).

Every image shows ONE whole object on a cluttered background drawn exactly as SYNTH's
(``utils.data.synthetic.background`` and ``draw_distractors``: textured field, lines, muted
headless ellipses, bars and rings).  A class is a combination of

* a silhouette (``SHAPES``: hexagon, cross, crescent, ring, arrow, ell, tee, hourglass),
* a texture (``TEXTURES``: plain, stripes, checker, spots) and
* a hue (``hues`` of them, evenly spread over the colour circle),

painted over the WHOLE object (texture and colour fill the silhouette), so the class evidence
is spread over the object rather than concentrated in one part.  The object's scale
(``min_scale`` .. ``max_scale`` of the image side), aspect (stretch 0.75-1.33), position and
orientation (0-360 degrees) are random; the texture's period and angle too.

**Disjoint from SYNTH's WSOL classes**: a SYNTH class is defined by its head's shape (disc,
triangle, square, diamond, star) and colour; no pretraining silhouette is one of those head
shapes (nor SYNTH's elliptical body), so no SYNTH class's head colour/shape combination defines
a pretraining class.  Colours alone are shared, as natural images share colours with CUB.

Layout (``<data_dir>/SYNTH_PRETRAIN`` with train.py's ``--dataset_name SYNTH_PRETRAIN``)::

    images/<class dir>/<split>_<index>.jpg   JPEG quality 90 (BGR as written by cv2)
    train.txt, val.txt                       label lists (utils/data/labels.py); box = the object's
    words.txt                                ``<class index> <class dir>``
    params.json                              generation parameters (written last: a complete set)

Each image is drawn from its own generator seeded by ``(seed, split, index)``; the same
parameters give the same files whatever the number of worker processes.
"""
import argparse
import itertools
import json
import os
import shutil
import sys
import time

import cv2
import numpy as np

from utils.atomic import write_image, write_json, write_text
from utils.data.labels import LabelEntry, write_label_list
from utils.data.synthetic import (HEAD_SHAPES, JPEG_QUALITY, background, draw_distractors, hsv_to_bgr, map_images,
                                  mask_box)
from utils.errors import UserError, exit_on_user_error

CORPUS_VERSION = 1
DATASET_NAME = "SYNTH_PRETRAIN"
SHAPES = ("hexagon", "cross", "crescent", "ring", "arrow", "ell", "tee", "hourglass")
TEXTURES = ("plain", "stripes", "checker", "spots")
DEFAULT_PARAMS = {"hues": 4, "num_train_per_class": 140, "num_val_per_class": 20, "size": 96,
                  "min_scale": 0.3, "max_scale": 0.6, "seed": 0}
SPLITS = ("train", "val")
OBJECT_SATURATION = (170, 255)
OBJECT_VALUE = (170, 250)
HUE_SPREAD = 5                 # standard deviation of an object's hue around its class hue
assert not set(SHAPES) & set(HEAD_SHAPES + ("ellipse",))   # disjoint from SYNTH's class shapes


class CorpusError(UserError, ValueError):
    """A corpus parameter out of range or an output folder that cannot be written."""


def resolve_params(**params):
    unknown = set(params) - set(DEFAULT_PARAMS)
    if unknown:
        raise TypeError(f"unknown pretraining corpus parameters: {sorted(unknown)}")
    resolved = dict(DEFAULT_PARAMS, **params)
    if resolved["hues"] < 1 or not 0 < resolved["min_scale"] <= resolved["max_scale"] <= 0.9:
        raise CorpusError(f"need hues >= 1 and 0 < min_scale <= max_scale <= 0.9, got {resolved}")
    return resolved


def classes(hues):
    """[(shape, texture, hue)] of every class, in class-index order (shape slowest)."""
    return [(shape, texture, int(round(180.0 * h / hues)) % 180)
            for shape, texture, h in itertools.product(SHAPES, TEXTURES, range(hues))]


def class_dir_name(index, hues):
    shape, texture, hue = classes(hues)[index]
    return f"{index:03d}.{shape}_{texture}_h{hue:03d}"


def sample_rng(seed, split, index):
    return np.random.default_rng([seed, 100 + SPLITS.index(split), index])


def _polygons(shape):
    """The silhouette as polygons (outer, then holes) in a unit frame (extent about [-1, 1])."""
    if shape == "hexagon":
        t = np.arange(6) * np.pi / 3
        return [np.stack([np.cos(t), np.sin(t)], 1)], []
    if shape == "cross":
        a = 0.33
        return [np.array([[-a, -1], [a, -1], [a, -a], [1, -a], [1, a], [a, a], [a, 1], [-a, 1], [-a, a],
                          [-1, a], [-1, -a], [-a, -a]])], []
    if shape == "crescent":
        t = np.linspace(-np.pi / 2, np.pi / 2, 24)
        outer = np.stack([np.cos(t), np.sin(t)], 1)
        inner = np.stack([0.45 * np.cos(t[::-1]), np.sin(t[::-1])], 1)
        return [np.concatenate([outer, inner])], []
    if shape == "ring":
        t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        circle = np.stack([np.cos(t), np.sin(t)], 1)
        return [circle], [0.5 * circle]
    if shape == "arrow":
        return [np.array([[-1, -0.25], [0.2, -0.25], [0.2, -0.65], [1, 0], [0.2, 0.65], [0.2, 0.25],
                          [-1, 0.25]])], []
    if shape == "ell":
        return [np.array([[-0.7, -1], [-0.2, -1], [-0.2, 0.5], [0.7, 0.5], [0.7, 1], [-0.7, 1]])], []
    if shape == "tee":
        return [np.array([[-1, -0.9], [1, -0.9], [1, -0.4], [0.25, -0.4], [0.25, 1], [-0.25, 1],
                          [-0.25, -0.4], [-1, -0.4]])], []
    # hourglass
    return [np.array([[-0.8, -1], [0.8, -1], [0.15, 0], [0.8, 1], [-0.8, 1], [-0.15, 0]])], []


def object_mask(rng, shape, size, min_scale, max_scale):
    """uint8 [S,S] mask (1 = object) of a silhouette at a random scale, aspect, angle and position
    (kept inside the image)."""
    outer, holes = _polygons(shape)
    radius = rng.uniform(min_scale, max_scale) * size / 2
    stretch = np.exp(rng.uniform(np.log(0.75), np.log(1.33)))
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale = radius * np.array([stretch, 1 / stretch])
    placed = [(p * scale) @ rotation.T for p in outer + holes]
    low, high = np.min(np.concatenate(placed), 0), np.max(np.concatenate(placed), 0)
    offset = np.array([rng.uniform(1 - low[i], size - 2 - high[i]) if high[i] - low[i] < size - 3
                       else size / 2 for i in range(2)])
    mask = np.zeros((size, size), np.uint8)
    points = [np.round(p + offset).astype(np.int32) for p in placed]
    cv2.fillPoly(mask, points[:len(outer)], 1)
    if holes:
        cv2.fillPoly(mask, points[len(outer):], 0)
    return mask


def texture_field(rng, texture, size):
    """Multiplicative texture in [0.45, 1.15] (float32 [S,S,1]) with random period and angle."""
    if texture == "plain":
        return np.ones((size, size, 1), np.float32)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(0.08, 0.16) * size
    u = xs * np.cos(angle) + ys * np.sin(angle)
    v = -xs * np.sin(angle) + ys * np.cos(angle)
    if texture == "stripes":
        on = np.sin(u * 2 * np.pi / period) > 0
    elif texture == "checker":
        on = (np.floor(u / period) + np.floor(v / period)) % 2 == 0
    else:  # spots: a lattice of discs
        cu, cv = (u / period) % 1 - 0.5, (v / period) % 1 - 0.5
        on = cu ** 2 + cv ** 2 < 0.09
    return np.where(on, 0.45, 1.15).astype(np.float32)[..., None]


def render(rng, label, hues, size, min_scale=0.3, max_scale=0.6):
    """(BGR uint8 [S,S,3] image, box [4] of the object) of one image of class ``label``."""
    shape, texture, hue = classes(hues)[label]
    image = background(rng, size)
    draw_distractors(rng, image, size)
    mask = object_mask(rng, shape, size, min_scale, max_scale)
    colour = np.array(hsv_to_bgr(int(round(hue + rng.normal(0, HUE_SPREAD))) % 180,
                                 int(rng.integers(*OBJECT_SATURATION)), int(rng.integers(*OBJECT_VALUE))), np.float32)
    painted = colour * texture_field(rng, texture, size) + rng.normal(0, 5, (size, size, 3))
    image = np.where(mask[..., None] > 0, painted, image)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), mask_box(mask)


def _write_image(task):
    out, split, index, params = task
    num_classes = len(classes(params["hues"]))
    label = index % num_classes
    image, box = render(sample_rng(params["seed"], split, index), label, params["hues"], params["size"],
                        params["min_scale"], params["max_scale"])
    relative_path = f"{class_dir_name(label, params['hues'])}/{split}_{index:06d}.jpg"
    write_image(os.path.join(out, "images", relative_path), image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
                sync=False)
    return LabelEntry(relative_path, label, box[None])


def generate(out, workers=None, **params):
    """Write the corpus to ``out`` (replacing earlier images); returns the resolved parameters."""
    start = time.time()
    params = resolve_params(**params)
    num_classes = len(classes(params["hues"]))
    params_file = os.path.join(out, "params.json")
    if os.path.exists(params_file):
        os.remove(params_file)
    shutil.rmtree(os.path.join(out, "images"), ignore_errors=True)
    for label in range(num_classes):
        os.makedirs(os.path.join(out, "images", class_dir_name(label, params["hues"])))
    counts = {split: params[f"num_{split}_per_class"] * num_classes for split in SPLITS}
    tasks = [(out, split, index, params) for split in SPLITS for index in range(counts[split])]
    entries = map_images(_write_image, tasks, workers)
    write_label_list(os.path.join(out, "train.txt"), entries[:counts["train"]])
    write_label_list(os.path.join(out, "val.txt"), entries[counts["train"]:])
    write_text(os.path.join(out, "words.txt"),
               "".join(f"{label} {class_dir_name(label, params['hues'])}\n" for label in range(num_classes)))
    record = dict(params, corpus_version=CORPUS_VERSION, num_classes=num_classes,
                  generation_seconds=round(time.time() - start, 1))
    write_json(params_file, record, indent=2, sort_keys=True)   # last: marks a complete set
    return record


def read_params(out):
    """The params.json of a complete corpus in ``out``, or None."""
    try:
        with open(os.path.join(out, "params.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ensure(out, workers=None, **params):
    """Generate the corpus unless ``out`` holds a complete one with the same parameters and
    version; returns ``(params.json record, generated?)``."""
    wanted = resolve_params(**params)
    cached = read_params(out)
    complete = all(os.path.exists(os.path.join(out, name)) for name in ("images", "train.txt", "val.txt", "words.txt"))
    if complete and cached and cached.get("corpus_version") == CORPUS_VERSION and \
            all(cached.get(k) == v for k, v in wanted.items()):
        return cached, False
    return generate(out, workers=workers, **wanted), True


def add_arguments(parser):
    """The corpus parameters as ``--corpus_<name>`` options (shared with utils.pretrain)."""
    for name, default in DEFAULT_PARAMS.items():
        parser.add_argument(f"--corpus_{name}", type=type(default), default=default,
                            help=f"pretraining corpus {name.replace('_', ' ')}")


def params_from(args):
    return {name: getattr(args, f"corpus_{name}") for name in DEFAULT_PARAMS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--out", default=os.path.join("dataset", DATASET_NAME), help="output directory")
    add_arguments(parser)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    args = parser.parse_args(argv)
    try:
        record, generated = ensure(args.out, workers=args.workers, **params_from(args))
    except OSError as error:
        raise CorpusError(f"cannot write the corpus to {args.out}: {error.strerror or error}") from None
    print(f"{args.out}: {record['num_classes']} classes x ({record['num_train_per_class']} train + "
          f"{record['num_val_per_class']} val), {record['size']} px, "
          f"{'generated' if generated else 'up to date'} ({record['generation_seconds']} s to generate)")
    return 0


if __name__ == "__main__":
    sys.exit(exit_on_user_error("python -m utils.data.pretrain_corpus", main))
