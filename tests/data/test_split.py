"""``split.json``: what a run trained on, held out, tuned on and reported on, for every data layout."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pix2pix_unet.codec import ImageCodec
from pix2pix_unet.config import BuiltinKind, DataConfig, LabelConfig, UNetConfig
from pix2pix_unet.data import build_datasets
from pix2pix_unet.data.labels import build_labelled
from pix2pix_unet.data.nuclei import NucleiSpec, write_nuclei
from pix2pix_unet.data.split import ExampleSubset, read_split, roles_of, split_record, tune_and_report, write_split
from pix2pix_unet.data.synthetic import VAL_INDEX_OFFSET
from pix2pix_unet.io import write_image
from pix2pix_unet.tasks.restore import build_clean
from tests.conftest import write_pairs


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def listed(record: dict, *keys: str) -> list[str]:
    return sorted(v for key in keys for entry in record[key] for v in entry.values())


@pytest.mark.parametrize("count", [2, 3, 4, 7, 20])
def test_tune_and_report_split_the_validation_files_in_two_disjoint_seeded_halves(count):
    tune, report = tune_and_report(count, seed=3)
    assert not set(tune) & set(report) and sorted(tune + report) == list(range(count))
    assert len(tune) == (count + 1) // 2 and len(report) == count // 2  # the larger half tunes; one each at least
    assert tune_and_report(count, seed=3) == (tune, report)
    assert any(tune_and_report(count, seed=s)[0] != tune for s in range(4, 12))  # the seed draws them


def test_one_validation_file_is_both_tune_and_report_file():
    assert tune_and_report(1, seed=0) == ([0], [0])
    with pytest.raises(ValueError):
        tune_and_report(0, seed=0)


def test_a_paired_folder_without_val_records_the_files_held_out_by_the_seed(tmp_path):
    root = write_pairs(tmp_path / "pairs", 10)
    data = DataConfig(path=str(root), crop_size=32, val_fraction=0.3)
    train, val = build_datasets(data, UNetConfig(), seed=5)
    record = split_record(data, 5, train, val, [], list(range(len(val))), "translate")
    assert record["data"] == str(root.resolve()) and record["seed"] == 5 and record["held_out"] == "val_fraction=0.3"
    assert len(record["train"]) == 7 and len(record["val"]) == 3 and record["report"] == record["val"]
    assert record["tune"] == [] and record["tuned"] is None and not record["tuned_on_reported"]
    assert listed(record, "train", "val") == all_files(root)  # every file once, A and B of each pair
    name = Path(record["val"][0]["A"]).name
    assert record["val"][0] == {"A": f"A/{name}", "B": f"B/{name}"}  # relative to the data folder
    # written and read back as JSON
    write_split(tmp_path / "split.json", record)
    assert read_split(tmp_path) == record and read_split(tmp_path / "nowhere") is None


def test_aligned_images_and_train_val_folders(tmp_path):
    write_pairs(tmp_path / "ab" / "train", 4, layout="aligned")
    write_pairs(tmp_path / "ab" / "val", 2, layout="aligned")
    data = DataConfig(path=str(tmp_path / "ab"), crop_size=32)
    train, val = build_datasets(data, UNetConfig(), seed=0)
    record = split_record(data, 0, train, val, [0], [1], "translate", "something")
    assert record["held_out"] == "folders" and record["val"] == [{"AB": "val/000.png"}, {"AB": "val/001.png"}]
    assert record["tune"] == [{"AB": "val/000.png"}] and record["report"] == [{"AB": "val/001.png"}]
    assert listed(record, "train", "val") == all_files(tmp_path / "ab")


def test_label_maps_record_images_labels_and_instances(tmp_path):
    root = write_nuclei(tmp_path / "nuclei", 3, 2, spec=NucleiSpec(size=40))
    data = DataConfig(path=str(root), crop_size=32)
    train, val, _ = build_labelled(data, LabelConfig(), ImageCodec(1), seed=0)
    record = split_record(data, 0, train, val, [0], [1], "segment", "the instance thresholds")
    assert record["val"][0] == {"image": "val/images/00000.tif", "labels": "val/labels/00000.png",
                                "instances": "val/instances/00000.png"}
    assert listed(record, "train", "val") == all_files(root)


def test_restore_records_its_clean_images(tmp_path):
    for i in range(5):
        write_image(tmp_path / "photos" / f"{i}.png", np.full((32, 32, 3), 10 * i, np.uint8))
    data = DataConfig(path=str(tmp_path / "photos"), crop_size=32, val_fraction=0.4)
    train, val = build_clean(data, ImageCodec(3), seed=0)
    record = split_record(data, 0, train, val, [], [0, 1], "restore")
    assert len(record["val"]) == 2 and all(set(e) == {"clean"} for e in record["val"])
    assert listed(record, "train", "val") == all_files(tmp_path / "photos")


@pytest.mark.parametrize("kind", ["photos", "nuclei"])
def test_builtin_data_records_its_indices_and_seed(kind):
    data = DataConfig(path="builtin", crop_size=32, builtin_kind=BuiltinKind(kind), builtin_train=3, builtin_val=2,
                      builtin_size=32)
    codec = ImageCodec(1 if kind == "nuclei" else 3)
    train, val, _ = build_labelled(data, LabelConfig(), codec, seed=7)
    record = split_record(data, 7, train, val, [1], [0], "segment")
    assert (record["data"], record["held_out"], record["builtin_kind"], record["seed"]) == (
        "builtin", "builtin", kind, 7)
    assert record["train"] == [{"index": i} for i in range(3)]
    assert record["val"] == [{"index": VAL_INDEX_OFFSET}, {"index": VAL_INDEX_OFFSET + 1}]
    assert record["tune"] == [{"index": VAL_INDEX_OFFSET + 1}]
    pairs, pairs_val = build_datasets(DataConfig(path="builtin", crop_size=32, builtin_train=2, builtin_val=1,
                                                 builtin_size=32), UNetConfig(), 0)
    assert pairs.example_files() == [{"index": 0}, {"index": 1}] and pairs_val.example_files() == [
        {"index": VAL_INDEX_OFFSET}]


def test_roles_of_names_what_each_file_was_used_for(tmp_path):
    root = write_pairs(tmp_path / "pairs", 6)
    data = DataConfig(path=str(root), crop_size=32, val_fraction=0.5)
    train, val = build_datasets(data, UNetConfig(), seed=0)
    record = json.loads(json.dumps(split_record(data, 0, train, val, [0], [1, 2], "translate", "x")))
    other = write_pairs(tmp_path / "other", 2)
    _, stranger = build_datasets(DataConfig(path=str(other), crop_size=32, val_fraction=0.5), UNetConfig(), 0)
    examples = train.example_files() + val.example_files() + stranger.example_files()
    assert roles_of(record, examples) == ["train"] * 3 + ["tune", "report", "report", None]  # another folder: None
    # a subset keeps the files of its examples
    assert ExampleSubset(val, [2, 0]).example_files() == [val.example_files()[2], val.example_files()[0]]
    assert roles_of({**record, "data": "builtin"}, examples) == [None] * 7
