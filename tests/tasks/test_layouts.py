"""The layout model: new label maps whose classes, object counts and object sizes follow the real maps'."""

import numpy as np
import pytest

from pix2pix_unet.data.nuclei import make_nuclei
from pix2pix_unet.data.synthetic import SyntheticSpec, make_sample
from pix2pix_unet.data.labels import instances_from_labels
from pix2pix_unet.synthesis.layouts import LayoutModel


def objects(labels: list[np.ndarray], instances: list[np.ndarray]) -> dict[int, list[int]]:
    """Object areas per class."""
    areas: dict[int, list[int]] = {}
    for lab, inst in zip(labels, instances):
        for i in np.unique(inst[inst > 0]):
            mask = inst == i
            areas.setdefault(int(np.bincount(lab[mask]).argmax()), []).append(int(mask.sum()))
    return areas


def builtin_maps(n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    samples = [make_sample(i, 3, SyntheticSpec(size=64)) for i in range(n)]
    return [s["labels"].numpy() for s in samples], [s["instances"].numpy() for s in samples]


def test_classes_counts_and_object_sizes_match_the_real_maps():
    labels, instances = builtin_maps(8)
    model = LayoutModel.fit(labels, instances)
    rng = np.random.default_rng(0)
    drawn = [model.sample(rng) for _ in range(60)]
    real, new = objects(labels, instances), objects([d[0] for d in drawn], [d[1] for d in drawn])
    assert set(new) == set(real)  # the same object classes
    assert {int(c) for d in drawn for c in np.unique(d[0])} == {int(c) for m in labels for c in np.unique(m)}
    for cls_id in real:  # object sizes per class: mean and median within a factor of 1.5
        for stat in (np.mean, np.median):
            ratio = stat(new[cls_id]) / stat(real[cls_id])
            assert 1 / 1.5 < ratio < 1.5, (cls_id, stat.__name__, ratio)
    count_ratio = np.mean([len(np.unique(d[1])) - 1 for d in drawn]) / np.mean([len(np.unique(i)) - 1
                                                                                for i in instances])
    assert 0.75 < count_ratio < 1.25
    # new layouts, not copies
    assert not any(np.array_equal(d[0], m) for d in drawn for m in labels)


def test_same_class_objects_keep_the_real_maps_rule_for_touching():
    labels, instances = builtin_maps(6)
    model = LayoutModel.fit(labels, instances)
    assert model.same_class_gap  # the built-in data parts touching objects of one class by a background line
    rng = np.random.default_rng(1)
    for _ in range(20):
        lab, inst = model.sample(rng)
        # no connected component of the class map joins two objects
        components = instances_from_labels(lab)
        for c in np.unique(components[components > 0]):
            assert len(np.unique(inst[components == c])) == 1
        assert np.array_equal(lab > 0, inst > 0)


def test_nuclei_touch_as_often_as_the_real_ones():
    pairs = [make_nuclei(i, 0) for i in range(6)]
    instances = [p[1].astype(np.int64) for p in pairs]
    labels = [(i > 0).astype(np.int64) for i in instances]
    model = LayoutModel.fit(labels, instances)
    assert not model.same_class_gap and model.classes == [1]
    refit = LayoutModel.fit(*zip(*[model.sample(np.random.default_rng(s)) for s in range(30)]))
    assert abs(refit.touch_fraction - model.touch_fraction) < 0.25


def test_maps_without_objects_are_refused():
    with pytest.raises(ValueError, match="hold no object"):
        LayoutModel.fit([np.zeros((8, 8), np.int64)])
