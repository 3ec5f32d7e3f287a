"""pathgen: PathGen-1.6M's JSON list (and the CSV form) with tiles `{WSI_id}_{x}_{y}.png`, split by slide; bad items."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from medim.data.examples import picture
from medim.errors import DataError, RegistryError
from medim.registry import DATASETS

#: TCGA slide ids and the split a hash of each id sends it to (val_fraction = test_fraction = 0.05): golden values,
#: so a change of the hash (which would move slides between splits) fails here.
SLIDES = {
    "TCGA-BH-8766-01Z-00-DX1.21636369-8b52-4b4a-97b7-50923ceb3ffd": "train",
    "TCGA-05-8687-01Z-00-DX1.9b08923d-10c6-4fd9-94b2-b8fda02f34a6": "train",
    "TCGA-E2-3467-01Z-00-DX1.79f248b0-8cb4-40d7-9622-56758a7d43b5": "train",
    "TCGA-AR-5375-01Z-00-DX1.a20ab57c-360c-4979-a7cf-94d7b6bcb64f": "val",
    "TCGA-38-8704-01Z-00-DX1.31162427-3bfd-4d33-8d00-38ec42650644": "test",
}
#: Two tiles per slide, at level-0 pixel positions of 672x672 tiles.
POSITIONS = ([13440, 8064], [14112, 8064])


def entries(slides=SLIDES) -> list[dict]:
    """PathGen-1.6M entries: {"WSI_id", "position": [x, y], "caption"}, slide by slide."""
    return [
        {
            "WSI_id": slide,
            "position": list(xy),
            "caption": f"Slide {n} tile {k}: nests of tumour cells in a fibrous stroma.",
        }
        for n, slide in enumerate(slides)
        for k, xy in enumerate(POSITIONS)
    ]


def tile_name(entry: dict) -> str:
    x, y = entry["position"]
    return f"{entry['WSI_id']}_{int(x)}_{int(y)}.png"


def write(root: Path, listed: list, *, name: str = "PathGen-1.6M.json", size: int = 24) -> Path:
    """The JSON list, and an RGB PNG tile under tiles/ for each entry that names one."""
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(listed):
        if isinstance(entry, dict) and "WSI_id" in entry and "position" in entry:
            picture(300 + i, size, size, mode="RGB").save(root / "tiles" / tile_name(entry))
    path = root / name
    path.write_text(json.dumps(listed), encoding="utf-8")
    return path


def build(annotation: Path | None, root: Path, **params):
    source = {"annotation": str(annotation)} if annotation is not None else {}
    block = {"name": "pathgen", **source, "image_root": str(root / "tiles"), "image_size": 16, **params}
    return DATASETS.build(block, where="data")


def sources(dataset, split: str) -> list[str]:
    images = dataset.split(split).images
    return [images.source(i) for i in range(len(images))]


def test_json_list_is_split_by_slide(tmp_path: Path) -> None:
    listed = entries()
    dataset = build(write(tmp_path, listed, size=16), tmp_path)
    for split in ("train", "val", "test"):
        expected = [e for e in listed if SLIDES[e["WSI_id"]] == split]  # every tile of a slide in its slide's split
        data = dataset.split(split)
        assert sources(dataset, split) == [tile_name(e) for e in expected]
        assert data.reports == [e["caption"] for e in expected]
        assert data.labels is None and data.domains == ["pathology"] * len(expected)
    train = dataset.split("train")
    assert len(train) == 6 and train.images[:].shape == (6, 16, 16, 3)
    # a square tile at image_size is served pixel for pixel as the PNG holds it
    assert np.array_equal(train.images[1], np.asarray(picture(301, 16, 16, mode="RGB")))
    assert dataset.finding_labels() is None


def test_slides_keep_their_split_when_slides_are_added(tmp_path: Path) -> None:
    before = {s: sources(build(write(tmp_path / "a", entries()), tmp_path / "a"), s) for s in ("train", "val", "test")}
    more = dict(SLIDES) | {f"TCGA-ZZ-{1000 + i}-01Z-00-DX1": "?" for i in range(40)}
    after_dataset = build(write(tmp_path / "b", entries(more)), tmp_path / "b")
    for split, names in before.items():
        after = sources(after_dataset, split)
        assert [n for n in after if any(n.startswith(slide) for slide in SLIDES)] == names
    assert sum(len(after_dataset.split(s)) for s in ("train", "val", "test")) == 2 * len(more)


def test_string_positions_prefix_and_a_custom_file_name(tmp_path: Path) -> None:
    listed = [{**e, "position": [str(v) for v in e["position"]]} for e in entries()]  # ["13440", "8064"]
    annotation = write(tmp_path, listed)
    train = build(annotation, tmp_path, report_prefix="A pathology tile.").split("train")
    assert train.images.source(0) == tile_name(entries()[0])
    assert train.reports[0] == "A pathology tile. " + entries()[0]["caption"]
    for tile in (tmp_path / "tiles").glob("*.png"):  # one folder per slide, JPEG tiles
        slide, x, y = tile.stem.rsplit("_", 2)
        (tmp_path / "tiles" / slide).mkdir(exist_ok=True)
        picture(1, 20, 20, mode="RGB").save(tmp_path / "tiles" / slide / f"{x}-{y}.jpg")
    custom = build(annotation, tmp_path, filename="{WSI_id}/{x}-{y}.jpg")
    assert sources(custom, "val") == [
        f"{next(s for s, v in SLIDES.items() if v == 'val')}/{x}-{y}.jpg" for x, y in POSITIONS
    ]
    with pytest.raises(RegistryError, match=r"filename may use \{WSI_id\}, \{x\} and \{y\}, got \['slide'\]"):
        build(annotation, tmp_path, filename="{slide}.png")


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_csv_forms_read_like_the_json(tmp_path: Path) -> None:
    listed = entries()
    json_dataset = build(write(tmp_path, listed), tmp_path)
    position = write_csv(
        tmp_path / "pathgen.csv",
        ["WSI_id", "position", "caption"],
        [[e["WSI_id"], json.dumps(e["position"]), e["caption"]] for e in listed],
    )
    columns = write_csv(
        tmp_path / "pathgen_xy.csv",
        ["WSI_id", "x", "y", "caption"],
        [[e["WSI_id"], *e["position"], e["caption"]] for e in listed],
    )
    for annotation in (position, columns):
        dataset = build(annotation, tmp_path)
        for split in ("train", "val", "test"):
            assert sources(dataset, split) == sources(json_dataset, split)
            assert dataset.split(split).reports == json_dataset.split(split).reports
    broken = write_csv(tmp_path / "broken.csv", ["WSI_id", "caption"], [[listed[0]["WSI_id"], "x"]])
    with pytest.raises(
        DataError,
        match=r"broken\.csv needs the columns WSI_id, position \(or x and y\), caption; "
        r"it has \['WSI_id', 'caption'\]",
    ):
        build(broken, tmp_path).split("train")


def test_fixed_split_files(tmp_path: Path) -> None:
    listed = entries()
    write(tmp_path, listed)
    files = {}
    for split, chosen in (("train", listed[:4]), ("val", listed[4:6]), ("test", listed[6:])):
        files[split] = str(tmp_path / f"{split}.json")
        Path(files[split]).write_text(json.dumps(chosen), encoding="utf-8")
    dataset = build(None, tmp_path, split_files=files)
    assert sources(dataset, "train") == [tile_name(e) for e in listed[:4]]  # as listed, whatever the hash says
    assert sources(dataset, "test") == [tile_name(e) for e in listed[6:]]
    with pytest.raises(RegistryError, match="give either annotation .* or split_files"):
        build(tmp_path / "PathGen-1.6M.json", tmp_path, split_files=files)
    with pytest.raises(RegistryError, match=r"split_files needs exactly the keys train, val, test, got \['train'\]"):
        build(None, tmp_path, split_files={"train": files["train"]})


def test_bad_entries_are_skipped_with_their_reason(tmp_path: Path) -> None:
    train_slide = next(iter(SLIDES))
    listed = entries() + [
        {"WSI_id": train_slide, "position": [0, 672], "caption": "   "},  # an empty caption
        {"WSI_id": train_slide, "position": [0, 1344], "caption": None},  # no caption at all
        {"WSI_id": train_slide, "caption": "no position"},
        {"WSI_id": train_slide, "position": [0, 2016], "caption": "Its tile is gone."},
        {"WSI_id": train_slide, "position": [0, 2688], "caption": "Its tile is not a PNG."},
    ]
    annotation = write(tmp_path, listed)
    (tmp_path / "tiles" / f"{train_slide}_0_2016.png").unlink()
    (tmp_path / "tiles" / f"{train_slide}_0_2688.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    train = build(annotation, tmp_path).split("train")
    assert len(train) == 6
    assert [(s.source, s.reason) for s in train.skipped] == [
        ("PathGen-1.6M.json[10] (caption)", "empty report"),
        ("PathGen-1.6M.json[11] (caption)", "empty report"),
        ("PathGen-1.6M.json[12]", 'entry without a "WSI_id" and a "position": [x, y]'),
        (f"{train_slide}_0_2016.png", "missing image file"),
        (f"{train_slide}_0_2688.png", "not an image PIL can read"),
    ]
    assert train.summary("train").startswith("train: 6 pairs; skipped 5: 2 empty report (PathGen-1.6M.json[10]")
    with pytest.raises(
        DataError,
        match=r"split 'train': PathGen-1\.6M\.json\[10\] \(caption\): empty report \("
        r"data\.on_error is fail",
    ):
        build(annotation, tmp_path, on_error="fail").split("train")
    assert len(build(annotation, tmp_path, on_error="fail").split("val")) == 2  # a clean split is unaffected


def test_malformed_annotations_are_clear_errors_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "tiles").mkdir()
    cases = {
        "empty.json": ("", r"PathGen annotation .*empty\.json is not valid JSON \(Expecting value"),
        "cut.json": ('[{"WSI_id": "TCGA-1", "position": [0, ', r"cut\.json is not valid JSON"),
        "object.json": ('{"WSI_id": "TCGA-1"}', r'object\.json holds a dict; expected a list of \{"WSI_id"'),
        "nothing.json": ("[]", r"split 'train' lists no items in .*nothing\.json \(slides whose WSI_id hashes into "
                         r"train: val_fraction 0\.05, test_fraction 0\.05\)"),
    }  # fmt: skip
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(DataError, match=message):
            build(tmp_path / name, tmp_path).split("train")
    (tmp_path / "latin1.json").write_bytes('[{"caption": "tumeur \u00e0 cellules"}]'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.json is not UTF-8 text"):
        build(tmp_path / "latin1.json", tmp_path).split("train")
    with pytest.raises(DataError, match=r"PathGen annotation '.*absent\.json' does not exist"):
        build(tmp_path / "absent.json", tmp_path).split("train")


def test_a_split_with_no_slide_is_an_error_saying_why(tmp_path: Path) -> None:
    annotation = write(tmp_path, entries())
    with pytest.raises(DataError, match=r"split 'test' lists no items .*test_fraction 0\.0\)"):
        build(annotation, tmp_path, test_fraction=0.0).split("test")
    with pytest.raises(RegistryError, match="val_fraction \\+ test_fraction must be below 1"):
        build(annotation, tmp_path, val_fraction=0.5, test_fraction=0.5)


def test_max_samples_is_a_fixed_subset_in_the_original_order(tmp_path: Path) -> None:
    annotation = write(tmp_path, entries())
    full = sources(build(annotation, tmp_path), "train")
    four = sources(build(annotation, tmp_path, max_samples=4), "train")
    assert len(full) == 6 and len(four) == 4
    assert four == sources(build(annotation, tmp_path, max_samples=4), "train")  # deterministic
    assert four == [s for s in full if s in four]  # in the annotation's order
    assert set(sources(build(annotation, tmp_path, max_samples=2), "train")) <= set(four)  # first N of one shuffle
    assert sources(build(annotation, tmp_path, max_samples=100), "train") == full
    (tmp_path / "tiles" / four[0]).unlink()
    refilled = sources(build(annotation, tmp_path, max_samples=4), "train")
    assert len(refilled) == 4 and four[0] not in refilled and set(four[1:]) <= set(refilled)


def test_identity_follows_the_captions_and_the_tiles(tmp_path: Path) -> None:
    listed = entries()
    annotation = write(tmp_path, listed)
    first = build(annotation, tmp_path).identity()
    assert build(annotation, tmp_path, on_error="fail").identity() == first
    assert build(annotation, tmp_path, report_prefix="Tile.").identity() != first
    listed[-1]["caption"] = "A new caption for the last test tile."
    annotation.write_text(json.dumps(listed), encoding="utf-8")
    changed = build(annotation, tmp_path).identity()
    assert changed["items"]["test"] != first["items"]["test"] and changed["items"]["train"] == first["items"]["train"]
