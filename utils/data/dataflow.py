"""tensorpack dataflows from a label list to batched graph inputs.

Where a data set's list and images are: ``utils/data/paths.py``.

Augmentation and boxes
----------------------
As released (details and the box maths in ``utils/data/transforms.py``, which has no TensorFlow
dependency): resize to ``(final_size + 32)`` squared ignoring the aspect ratio; training
takes a random ``final_size`` crop and a random horizontal flip, evaluation the centre
crop; GT boxes are scaled, shifted, truncated to integers and not clipped.  The training
source draws the augmentation parameters in the main process and the workers map in
order, so a ``seed`` fixes the batches exactly, whatever the number of workers.

Datapoints
----------
* train: ``[image uint8 [S,S,3] BGR, label int32, box float32 [2,2]]`` where box is
  ``[[x1, y1], [x2, y2]]`` of the image's first GT box (zeros when it has none);
* train with ``mask_dir`` (the fully supervised FSL baseline): the same plus ``mask``
  float32 ``[S,S]``, the object mask cropped and flipped like the image;
* eval: the same as train plus ``index`` int32, the position of the image in the label list.

Both are batched with ``BatchData`` (train drops the remainder, eval keeps it).

Parallel decoding
-----------------
``workers`` > 1 decodes in a pool (processes for training, threads for evaluation) whose
results come back in input order (``OrderedPoolMapData``); 0 or 1 decodes in the calling
process.  tensorpack's ``MultiProcessMapDataZMQ(strict=True)`` was not used: on this
platform it intermittently lost requests and hung for ever on small lists.

Decoding once into memory
-------------------------
``cache_images=True`` decodes every image once, in the calling process, and keeps the decoded
images (or the reason an image is bad) in memory for later epochs; the augmentation still
runs, with fresh parameters, on every pass, and the batches are those of the uncached path.
``cache_images='auto'`` does so when the list is small: its decoded images (estimated from
the first one) fit in ``MEMORY_CACHE_BYTES``.  A cached dataflow maps in-process (no pool).

Bad images
----------
A missing, empty or undecodable image never reaches the augmentation: the decoder hands
a marker to the main process, where ``on_bad_image='skip'`` logs a warning with the
running count and drops it (the returned dataflow lists them in ``bad_images``), and
``on_bad_image='error'`` raises ``DataError`` naming the file.  Evaluation always skips
and reports.  A missing label list or image directory raises ``DataError`` naming the
path and the preparation command to run.
"""
from utils import compat  # noqa: F401  (first: sets up the TensorFlow/tensorpack shims)

import collections  # noqa: E402
import logging  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor  # noqa: E402
from functools import partial  # noqa: E402

import numpy as np  # noqa: E402
from tensorpack.dataflow import BatchData, DataFlow, MapData, ProxyDataFlow, RNGDataFlow  # noqa: E402
from tensorpack.utils.utils import get_rng  # noqa: E402

from utils.data.labels import OutOfImageBoxes  # noqa: E402
from utils.data.masks import load_mask, mask_file, mask_in_crop, object_pixels  # noqa: E402
from utils.data.metadata import is_metadata_split, read_entries  # noqa: E402
from utils.data.paths import lists_beside, prepare_hint  # noqa: E402
from utils.errors import UserError
from utils.data.transforms import (RESIZE_MARGIN, decode_image, eval_boxes, is_bad_image_marker,  # noqa: E402
                              map_eval_image, map_train_image)

logger = logging.getLogger(__name__)

ON_BAD_IMAGE_CHOICES = ("skip", "error")
POOL_BUFFER_SIZE = 64  # datapoints in flight in a decoding pool
POOL_CHUNK_SIZE = 8  # datapoints per pool task
MEMORY_CACHE_BYTES = 512 * 2 ** 20  # cache_images='auto': decoded lists up to this size


class DataError(UserError, RuntimeError):
    """Input data that is missing or unusable (one line: the path and what to do)."""


def load_entries(label_file, image_root, num_classes=None):
    """Check that the list, the image root and the first image's folder exist and are not
    empty (and, given ``num_classes``, that every class index is below it); return the
    entries (a label list file's or a wsolevaluation metadata folder's, ``utils.data.metadata``)."""
    images_missing = not os.path.isdir(image_root) or not os.listdir(image_root)
    # the preparation command is advised only when the data set itself is missing
    advice = f"; run {prepare_hint(image_root)}" if images_missing else ""
    if not is_metadata_split(label_file) and not os.path.isfile(label_file):
        others = lists_beside(label_file)
        if others and not images_missing:
            raise DataError(f"label list {label_file} is missing (the lists beside it: {', '.join(others)})")
        raise DataError(f"label list {label_file} is missing{advice or _relative_note(label_file)}")
    if images_missing:
        raise DataError(f"image directory {image_root} is missing or empty{advice}")
    entries = read_entries(label_file, num_classes=num_classes) if os.path.getsize(label_file) or \
        is_metadata_split(label_file) else []
    if not entries:
        raise DataError(f"label list {label_file} lists no image (an empty list: fix or regenerate it)")
    first_dir = os.path.dirname(os.path.join(image_root, entries[0].path))
    if not os.path.isdir(first_dir):  # e.g. ILSVRC train extracted but not val
        raise DataError(f"image directory {first_dir} (of {label_file}) is missing; "
                        f"run {prepare_hint(image_root)}")
    return entries


def _relative_note(path):
    return "" if os.path.isabs(path) else f" ({path} is relative to the working directory {os.getcwd()})"


def resolve_workers(workers):
    """Number of decoding workers: ``None`` means all usable cores."""
    if workers is not None:
        return workers
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _first_box(entry):
    return entry.boxes[0] if len(entry.boxes) else None


# ----------------------------------------------------------------------------- dataflows

class TrainSource(RNGDataFlow):
    """Shuffled label-list entries with their augmentation parameters drawn here:
    ``[path, label, first box|None, crop_x, crop_y, flip]`` (+ the entry's mask file when
    ``mask_dir`` is given), one pass per iteration."""

    def __init__(self, entries, image_root, seed=None, mask_dir=None):
        self.entries = entries
        self.image_root = image_root
        self.seed = seed
        self.mask_dir = mask_dir

    def reset_state(self):
        self.rng = np.random.RandomState(self.seed) if self.seed is not None else get_rng(self)

    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        for position in self.rng.permutation(len(self.entries)):
            entry = self.entries[position]
            crop_x, crop_y = (int(v) for v in self.rng.randint(0, RESIZE_MARGIN + 1, size=2))
            flip = bool(self.rng.rand() < 0.5)
            datapoint = [os.path.join(self.image_root, entry.path), entry.label, _first_box(entry),
                         crop_x, crop_y, flip]
            yield datapoint if self.mask_dir is None else datapoint + [mask_file(self.mask_dir, entry.path)]


class EvalSource(DataFlow):
    """Label-list entries in list order: ``[index, path, label, first box|None]``."""

    def __init__(self, entries, image_root):
        self.entries = entries
        self.image_root = image_root

    def __len__(self):
        return len(self.entries)

    def __iter__(self):
        for index, entry in enumerate(self.entries):
            yield [index, os.path.join(self.image_root, entry.path), entry.label, _first_box(entry)]


def _map_chunk(map_func, chunk):
    return [map_func(datapoint) for datapoint in chunk]


class OrderedPoolMapData(ProxyDataFlow):
    """Maps datapoints in a ``concurrent.futures`` pool and yields the results in input
    order.  Datapoints travel in chunks of ``chunk_size`` (less per-task overhead), with at
    most ``buffer_size`` datapoints in flight.  An exception in the map function (or a
    crashed worker process) is raised here instead of hanging."""

    def __init__(self, ds, make_pool, map_func, buffer_size=POOL_BUFFER_SIZE, chunk_size=POOL_CHUNK_SIZE):
        super().__init__(ds)
        self.make_pool = make_pool
        self.map_func = map_func
        self.max_chunks_in_flight = max(1, buffer_size // chunk_size)
        self.chunk_size = chunk_size
        self._pool = None

    def reset_state(self):
        """Create the pool and start its workers now, in the thread that resets the
        dataflow (typically before a training session starts its threads)."""
        super().reset_state()
        self._pool = self.make_pool()
        self._pool.submit(int).result()

    def _chunks(self):
        chunk = []
        for datapoint in self.ds:
            chunk.append(datapoint)
            if len(chunk) == self.chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def __iter__(self):
        pending = collections.deque()
        for chunk in self._chunks():
            pending.append(self._pool.submit(_map_chunk, self.map_func, chunk))
            if len(pending) >= self.max_chunks_in_flight:
                yield from pending.popleft().result()
        while pending:
            yield from pending.popleft().result()


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle


def process_pool(workers):
    """A factory of ``workers`` forked decoding processes (fork: nothing is re-imported) that
    ignore Ctrl-C (the terminal sends it to the whole process group)."""
    return partial(ProcessPoolExecutor, workers, mp_context=multiprocessing.get_context("fork"),
                   initializer=_ignore_sigint)


def thread_pool(workers):
    """A factory of ``workers`` decoding threads (OpenCV releases the GIL)."""
    return partial(ThreadPoolExecutor, workers)


class BadImageFilter(ProxyDataFlow):
    """Main-process stage after the decoders: drops bad-image markers (logging each with
    the running count, or raising ``DataError`` when ``on_bad_image='error'``), keeps the
    original size of each evaluated image, and strips that size from the datapoint."""

    def __init__(self, ds, on_bad_image="skip", index_component=None, box_check=None):
        super().__init__(ds)
        if on_bad_image not in ON_BAD_IMAGE_CHOICES:
            raise ValueError(f"on_bad_image must be one of {ON_BAD_IMAGE_CHOICES}, got {on_bad_image!r}")
        self.on_bad_image = on_bad_image
        self.index_component = index_component
        self.box_check = box_check  # (entries, OutOfImageBoxes) of an eval list, or None
        self._last_box_message = None
        self.bad_images = []   # (path, reason), in the order met
        self.image_sizes = {}  # list index -> (height, width), eval only

    def __iter__(self):
        if self.box_check is not None:
            self.box_check[1].reset()
        seen = 0
        for datapoint in self.ds:
            seen += 1
            if is_bad_image_marker(datapoint):
                self._report(datapoint[1], datapoint[2])
                self._check_pass_end(seen)
                continue
            *datapoint, orig_hw = datapoint
            if self.index_component is not None:
                index = int(datapoint[self.index_component])
                self.image_sizes[index] = tuple(int(v) for v in orig_hw)
                if self.box_check is not None:
                    self.box_check[1].add(self.box_check[0][index], self.image_sizes[index])
            self._check_pass_end(seen)   # before the last yield: a consumer may stop after it
            yield datapoint

    def _check_pass_end(self, seen):
        """Log the boxes past their image once a pass has met every list entry (once per
        distinct message, not at every validation)."""
        if self.box_check is None or seen != len(self.box_check[0]):
            return
        message = self.box_check[1].message()
        if message and message != self._last_box_message:
            logger.warning(message)
            self._last_box_message = message

    def _report(self, path, reason):
        if self.on_bad_image == "error":
            raise DataError(f"bad image {path}: {reason} (use on_bad_image='skip' to skip such images)")
        self.bad_images.append((path, reason))
        logger.warning("skipping bad image %s: %s (%d skipped so far)", path, reason, len(self.bad_images))


class LabelListBatches(BatchData):
    """``BatchData`` over a ``BadImageFilter``, exposing what the filter collected."""

    def __init__(self, ds, batch_size, remainder, entries, final_size):
        super().__init__(ds, batch_size, remainder=remainder)
        self.entries = entries
        self.final_size = final_size

    @property
    def bad_images(self):
        """``[(path, reason)]`` of the images skipped so far."""
        return self.ds.bad_images

    @property
    def boxes_outside_image(self):
        """``OutOfImageBoxes`` of the list (eval only; None for training)."""
        return self.ds.box_check[1] if self.ds.box_check is not None else None

    @property
    def image_sizes(self):
        """``{list index: (height, width)}`` of the images evaluated so far (eval only)."""
        return self.ds.image_sizes

    def gt_boxes_in_crop(self, index):
        """All GT boxes ``[n,4]`` of list entry ``index`` in the evaluation crop frame
        (available once the image has been produced by this dataflow)."""
        return eval_boxes(self.entries[index].boxes, self.image_sizes[index], self.final_size)


class MemoryDecoder:
    """``decode_image`` that decodes each path once and then answers from memory (the
    decoded image, or ``(None, reason)`` for a bad file).  Not shared between processes."""

    def __init__(self):
        self._decoded = {}

    def __call__(self, path):
        if path not in self._decoded:
            self._decoded[path] = decode_image(path)
        return self._decoded[path]

    def __len__(self):
        return len(self._decoded)


def use_memory_cache(cache_images, entries, image_root):
    """Whether to decode once into memory: ``cache_images`` True/False, or ``'auto'``: when
    the list's decoded images (the first image's size times the list length) fit in
    ``MEMORY_CACHE_BYTES``."""
    if cache_images != "auto":
        return bool(cache_images)
    first, _ = decode_image(os.path.join(image_root, entries[0].path))
    return first is not None and first.nbytes * len(entries) <= MEMORY_CACHE_BYTES


def _decoded(source, mapper, workers, make_pool, cached):
    """The source mapped in-process (``workers`` <= 1, or from a ``MemoryDecoder`` when
    ``cached``) or in an order-preserving pool."""
    if cached:
        return MapData(source, partial(mapper, decode=MemoryDecoder()))
    if workers <= 1:
        return MapData(source, mapper)
    return OrderedPoolMapData(source, make_pool(workers), mapper)


def map_train_image_and_mask(datapoint, final_size, decode=decode_image):
    """``map_train_image`` of ``[path, label, box|None, crop_x, crop_y, flip, mask file]``, with
    the object mask (float32 ``[S, S]``, 1 object, 0 background) cropped and flipped like the
    image before ``orig_hw``.  A missing or broken mask raises ``MaskError`` naming the file."""
    *image_datapoint, mask_path = datapoint
    mapped = map_train_image(image_datapoint, final_size, decode)
    if is_bad_image_marker(mapped):
        return mapped
    *outputs, orig_hw = mapped
    crop_x, crop_y, flip = image_datapoint[3:]
    mask = mask_in_crop(load_mask(mask_path, orig_hw), final_size, (crop_x, crop_y), flip)
    return outputs + [np.ascontiguousarray(object_pixels(mask), np.float32), orig_hw]


def get_train_dataflow(label_file, image_root, final_size=224, batch_size=32, workers=None,
                       on_bad_image="skip", seed=None, num_classes=None, cache_images=False, mask_dir=None):
    """Shuffled, augmented training batches ``[images, labels, boxes]`` (one pass over the
    list per iteration, remainder dropped); with ``mask_dir`` also ``masks`` (float32
    ``[S, S]`` object masks ``<mask_dir>/<image path>.png``, cropped and flipped like the images).

    ``workers``: decoding processes; ``None`` = all cores, 0 or 1 = in the calling process.
    ``seed`` fixes the order and the augmentation (the same batches for any ``workers``).
    ``on_bad_image``: ``'skip'`` (log, count in ``bad_images``) or ``'error'`` (raise).
    ``num_classes``: refuse a list with a class index outside ``[0, num_classes)``.
    A list with fewer images than ``batch_size`` is refused (``DataError``).
    ``cache_images``: decode once into memory (True, False or ``'auto'``; module docstring).
    """
    entries = load_entries(label_file, image_root, num_classes)
    source = TrainSource(entries, image_root, seed, mask_dir)
    mapper = partial(map_train_image if mask_dir is None else map_train_image_and_mask, final_size=final_size)
    decoded = _decoded(source, mapper, resolve_workers(workers), process_pool,
                       use_memory_cache(cache_images, entries, image_root))
    filtered = BadImageFilter(decoded, on_bad_image)
    if len(entries) < batch_size:
        raise DataError(f"label list {label_file} has {len(entries)} images, fewer than one batch of "
                        f"{batch_size}; lower --batch_size (per tower) or add images")
    return LabelListBatches(filtered, batch_size, False, entries, final_size)


def get_eval_dataflow(label_file, image_root, final_size=224, batch_size=32, workers=None,
                      number_of_val=None, num_classes=None, cache_images=False):
    """Centre-cropped evaluation batches ``[images, labels, boxes, indices]`` in list order
    (remainder kept); bad images are logged, skipped and listed in ``bad_images``.

    ``workers``: decoding threads; ``None`` = all cores, 0 or 1 = in the calling process.
    ``number_of_val``: evaluate only the first N list entries.
    ``num_classes``: refuse a list with a class index outside ``[0, num_classes)``.
    Boxes extending past their image are counted (``boxes_outside_image``, logged at the
    end of each pass); a list where most of them do is refused (``utils.data.labels``).
    ``cache_images``: decode once into memory for repeated passes (True, False or ``'auto'``).
    """
    entries = load_entries(label_file, image_root, num_classes)[:number_of_val]
    boxless = [entry.path for entry in entries if len(entry.boxes) == 0]
    if boxless:
        raise DataError(f"{label_file}: {len(boxless)} of the {len(entries)} evaluated images have no box (first: "
                        f"{boxless[0]}); localization needs a GT box for every image: add them or evaluate "
                        f"another list")
    source = EvalSource(entries, image_root)
    mapper = partial(map_eval_image, final_size=final_size)
    decoded = _decoded(source, mapper, resolve_workers(workers), thread_pool,
                       use_memory_cache(cache_images, entries, image_root))
    box_check = (entries, OutOfImageBoxes(label_file, sum(len(e.boxes) for e in entries)))
    return LabelListBatches(BadImageFilter(decoded, "skip", index_component=3, box_check=box_check),
                            batch_size, True, entries, final_size)
