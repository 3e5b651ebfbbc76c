"""Decoding once into memory: the same batches as the decoding path, files read once."""
import os

import numpy as np

from tests.test_data import all_datapoints, make_image_set
from utils.data import dataflow as dataflow_module
from utils.data.dataflow import get_eval_dataflow, get_train_dataflow, use_memory_cache
from utils.data.labels import read_label_list

FINAL = 64


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            np.testing.assert_array_equal(u, v)


def _delete_images(image_root):
    for directory, _, names in os.walk(image_root):
        for name in names:
            os.remove(os.path.join(directory, name))


def test_cached_eval_batches_equal_the_decoded_ones_and_files_are_read_once(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    decoded = get_eval_dataflow(label_file, image_root, FINAL, batch_size=3, workers=0)
    cached = get_eval_dataflow(label_file, image_root, FINAL, batch_size=3, workers=2, cache_images=True)
    decoded.reset_state()
    cached.reset_state()
    reference = all_datapoints(decoded)
    _assert_same(all_datapoints(cached), reference)
    _delete_images(image_root)  # a second pass needs no file
    _assert_same(all_datapoints(cached), reference)
    assert cached.bad_images == [] and len(cached.image_sizes) == 7


def test_cached_train_batches_equal_the_decoded_ones_every_epoch(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    epochs = {}
    for cache in (False, True):
        flow = get_train_dataflow(label_file, image_root, FINAL, batch_size=2, workers=0, seed=4, cache_images=cache)
        flow.reset_state()
        epochs[cache] = [all_datapoints(flow) for _ in range(3)]
    for plain, cached in zip(epochs[False], epochs[True]):
        assert len(cached) == 6
        _assert_same(cached, plain)
    # the augmentation is still drawn afresh each epoch: the epochs differ
    assert any(not np.array_equal(a[0], b[0]) for a, b in zip(epochs[True][0], epochs[True][1]))


def test_cached_bad_image_is_skipped_every_epoch(tmp_path):
    label_file, image_root = make_image_set(tmp_path)
    broken = read_label_list(label_file)[2].path
    with open(os.path.join(image_root, broken), "wb") as f:
        f.write(b"not an image")
    flow = get_train_dataflow(label_file, image_root, FINAL, batch_size=1, workers=0, seed=0, cache_images=True)
    flow.reset_state()
    assert [len(all_datapoints(flow)) for _ in range(2)] == [6, 6]
    assert [path for path, _ in flow.bad_images] == [os.path.join(image_root, broken)] * 2


def test_auto_caches_only_lists_that_fit_the_budget(tmp_path, monkeypatch):
    label_file, image_root = make_image_set(tmp_path)
    entries = read_label_list(label_file)
    assert use_memory_cache("auto", entries, image_root) is True
    assert use_memory_cache(False, entries, image_root) is False
    first_image_bytes = 100 * 200 * 3  # IMAGES[0] is 100 x 200
    monkeypatch.setattr(dataflow_module, "MEMORY_CACHE_BYTES", first_image_bytes * len(entries) - 1)
    assert use_memory_cache("auto", entries, image_root) is False
    assert use_memory_cache(True, entries, image_root) is True
