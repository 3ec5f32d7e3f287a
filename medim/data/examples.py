"""Tiny datasets in the real layouts, written from a seed: for `medim check` and the tests.

Each writer lays out a few pairs exactly as the real data is distributed (MIMIC-CXR-JPG's
folders and gzipped CSVs with MIMIC-CXR's report files, R2Gen's annotation.json for
MIMIC-CXR and IU X-ray, PathGen's JSON or CSV with its tiles, MeDiM's paired folder, a
Hugging Face dataset saved to disk or as parquet files) and returns the dataset params
that read it. Images are small non-square pictures (8-bit grayscale JPEGs for X-rays, RGB
PNGs for tiles), so preprocessing pads and resizes them.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from medim.data.scanned import SPLITS, split_by_hash

#: The 14 observation columns of mimic-cxr-2.0.0-chexpert.csv, in the file's order.
CHEXPERT_COLUMNS = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Enlarged Cardiomediastinum",
    "Fracture",
    "Lung Lesion",
    "Lung Opacity",
    "No Finding",
    "Pleural Effusion",
    "Pleural Other",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
)

METADATA_COLUMNS = (
    "dicom_id",
    "subject_id",
    "study_id",
    "PerformedProcedureStepDescription",
    "ViewPosition",
    "Rows",
    "Columns",
    "StudyDate",
    "StudyTime",
    "ProcedureCodeSequence_CodeMeaning",
    "ViewCodeSequence_CodeMeaning",
    "PatientOrientationCodeSequence_CodeMeaning",
)

_FINDINGS = (
    "The lungs are clear. The cardiomediastinal silhouette is normal.",
    "There is a small left pleural effusion. The heart size is normal.",
    "Mild cardiomegaly. No pneumothorax.",
    "A right upper lobe opacity is new. No effusion.",
    "Support lines are unchanged in position.",
)
_IMPRESSIONS = (
    "No acute cardiopulmonary process.",
    "Small left pleural effusion.",
    "Mild cardiomegaly.",
    "Right upper lobe pneumonia.",
    "Lines in standard position.",
)


def picture(seed: int, width: int = 40, height: int = 32, mode: str = "L") -> Image.Image:
    """A small smooth picture with a seed-dependent bright blob (mode L or RGB)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    cy, cx = rng.uniform(0.25, 0.75) * height, rng.uniform(0.25, 0.75) * width
    base = 40 + 120 * x / max(width - 1, 1)
    blob = 90 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (0.05 * width * height))
    gray = np.clip(base + blob + rng.normal(0, 4, (height, width)), 0, 255).astype(np.uint8)
    if mode == "L":
        return Image.fromarray(gray)
    tint = rng.integers(0, 60, 3)
    return Image.fromarray(np.clip(gray[..., None] + tint - 30, 0, 255).astype(np.uint8))


def mimic_report(index: int, sections: Iterable[str] = ("findings", "impression")) -> str:
    """A report laid out like MIMIC-CXR's, with the given sections (findings, impression)."""
    lines = [
        "                                 FINAL REPORT",
        " EXAMINATION:  CHEST (PA AND LAT)",
        " ",
        " INDICATION:  ___ year old with cough.",
        " ",
        " COMPARISON:  None.",
        " ",
    ]
    wanted = set(sections)
    if "findings" in wanted:
        lines += [" FINDINGS:", " ", " " + _FINDINGS[index % len(_FINDINGS)], " "]
    if "impression" in wanted:
        lines += [" IMPRESSION:", " ", " " + _IMPRESSIONS[index % len(_IMPRESSIONS)], ""]
    return "\n".join(lines)


@dataclass
class MimicStudy:
    """One study of the MIMIC example: subject, study, split and its images as (dicom_id, ViewPosition)."""

    subject_id: int
    study_id: int
    split: str
    images: list[tuple[str, str]]
    chexpert: dict[str, float] = field(default_factory=dict)


def mimic_studies() -> list[MimicStudy]:
    """Six studies over four subjects: three train, one validate, two test; PA, AP and LATERAL views."""
    studies = []
    layout = [
        (10000032, "train", ["PA", "LATERAL"]),
        (10000032, "train", ["AP"]),
        (10000764, "train", ["PA", "AP"]),
        (10000898, "validate", ["PA", "LATERAL"]),
        (10001122, "test", ["AP"]),
        (10001122, "test", ["PA"]),
    ]
    for i, (subject, split, views) in enumerate(layout):
        study = 50000000 + 1111 * (i + 1)
        images = [(f"{i:02d}{j}a1b2c3-d4e5f607-18293a4b-5c6d7e8f-90a1b2c3", view) for j, view in enumerate(views)]
        labels = {"No Finding": 1.0} if i % 3 == 0 else {"Pleural Effusion": 1.0, "Cardiomegaly": -1.0}
        studies.append(MimicStudy(subject, study, split, images, labels))
    return studies


def mimic_paths(study: MimicStudy) -> tuple[str, str]:
    """(the study's image folder, its report file), relative to the dataset root."""
    subject = str(study.subject_id)
    folder = f"files/p{subject[:2]}/p{subject}/s{study.study_id}"
    return folder, f"{folder}.txt"


def write_mimic_cxr(
    root: Path, *, studies: list[MimicStudy] | None = None, gzipped: bool = True, chexpert: bool = True
) -> dict[str, Any]:
    """MIMIC-CXR-JPG's layout with MIMIC-CXR's report files in the same `files/` tree; the `mimic_cxr` params."""
    root = Path(root)
    studies = mimic_studies() if studies is None else studies
    split_rows, metadata_rows, chexpert_rows = [], [], []
    for i, study in enumerate(studies):
        folder, report = mimic_paths(study)
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / report).write_text(mimic_report(i), encoding="utf-8")
        for j, (dicom, view) in enumerate(study.images):
            picture(100 * i + j, 40 + 4 * j, 32).save(root / folder / f"{dicom}.jpg", quality=90)
            split_rows.append([dicom, study.study_id, study.subject_id, study.split])
            metadata_rows.append(
                [dicom, study.subject_id, study.study_id, "CHEST (PA AND LAT)", view, 32, 40 + 4 * j]
                + ["21800506", "213014.531", "CHEST (PA AND LAT)", "postero-anterior", "Erect"]
            )
        chexpert_rows.append([study.subject_id, study.study_id, *[study.chexpert.get(c, "") for c in CHEXPERT_COLUMNS]])
    suffix = ".csv.gz" if gzipped else ".csv"
    write_csv(root / f"mimic-cxr-2.0.0-split{suffix}", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    write_csv(root / f"mimic-cxr-2.0.0-metadata{suffix}", list(METADATA_COLUMNS), metadata_rows)
    if chexpert:
        header = ["subject_id", "study_id", *CHEXPERT_COLUMNS]
        write_csv(root / f"mimic-cxr-2.0.0-chexpert{suffix}", header, chexpert_rows)
    return {"root": str(root)}


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    """A CSV file, gzipped when its name ends in .gz (as MIMIC ships them)."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    data = text.getvalue().encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def write_r2gen_annotation(root: Path, variant: str = "iu_xray") -> dict[str, Any]:
    """R2Gen's preprocessed form: `annotation.json` beside `images/`; IU X-ray (two views per study, PNG) or
    MIMIC-CXR (one image per entry, JPEG, under images/pXX/...). The `r2gen_annotation` params."""
    root = Path(root)
    annotation: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    counts = {"train": 3, "val": 1, "test": 2}
    index = 0
    for split, count in counts.items():
        for _ in range(count):
            report = f"{_FINDINGS[index % len(_FINDINGS)]} {_IMPRESSIONS[index % len(_IMPRESSIONS)]}"
            if variant == "iu_xray":
                study = f"CXR{1000 + index}_IM-{2000 + index}"
                paths = [f"{study}/0.png", f"{study}/1.png"]
                entry = {"id": study, "report": report, "image_path": paths, "split": split}
            elif variant == "mimic_cxr":
                subject, study_id = 10000000 + index, 50000000 + index
                paths = [f"p{str(subject)[:2]}/p{subject}/s{study_id}/{index:02d}aa-bb.jpg"]
                entry = {
                    "id": f"{index:02d}aa-bb",
                    "study_id": study_id,
                    "subject_id": subject,
                    "report": report,
                    "image_path": paths,
                    "split": split,
                }
            else:
                raise ValueError(f"variant must be iu_xray or mimic_cxr, got {variant!r}")
            for j, relative_path in enumerate(paths):
                target = root / "images" / relative_path
                target.parent.mkdir(parents=True, exist_ok=True)
                picture(10 * index + j, 36, 30).save(target)
            annotation[split].append(entry)
            index += 1
    (root / "annotation.json").write_text(json.dumps(annotation, indent=1), encoding="utf-8")
    return {"annotation": str(root / "annotation.json"), "image_root": str(root / "images")}


def names_per_split(
    make: Any, counts: dict[str, int], val_fraction: float, test_fraction: float, limit: int = 100_000
) -> dict[str, list[str]]:
    """`counts[split]` names `make(i)` that the hash split sends to each split (the first found, i = 0, 1, ...)."""
    found: dict[str, list[str]] = {split: [] for split in counts}
    for i in range(limit):
        name = make(i)
        split = split_by_hash(name, val_fraction, test_fraction)
        if len(found[split]) < counts[split]:
            found[split].append(name)
        if all(len(found[s]) == counts[s] for s in counts):
            return found
    raise ValueError(f"no {counts} names within {limit} tries")


def pathgen_entries(val_fraction: float = 0.05, test_fraction: float = 0.05) -> list[dict[str, Any]]:
    """PathGen-1.6M entries: two tiles of each of four slides whose WSI ids hash into train (2), val, test."""
    slides = names_per_split(
        lambda i: f"TCGA-{i % 97:02d}-{1000 + i}-01Z-00-DX1", {"train": 2, "val": 1, "test": 1}, val_fraction,
        test_fraction,
    )  # fmt: skip
    entries = []
    for split in ("train", "val", "test"):
        for slide in slides[split]:
            for k in range(2):
                caption = f"Tile {k} of {slide}: sheets of atypical cells with {'necrosis' if k else 'no necrosis'}."
                entries.append({"WSI_id": slide, "position": [672 * k, 1344], "caption": caption})
    return entries


def write_pathgen(root: Path, fmt: str = "json") -> dict[str, Any]:
    """PathGen's annotation (a JSON list, or a CSV with the same columns) and its tiles `{WSI_id}_{x}_{y}.png`."""
    root = Path(root)
    entries = pathgen_entries()
    (root / "tiles").mkdir(parents=True, exist_ok=True)
    for i, entry in enumerate(entries):
        x, y = entry["position"]
        picture(500 + i, 34, 34, mode="RGB").save(root / "tiles" / f"{entry['WSI_id']}_{x}_{y}.png")
    if fmt == "json":
        annotation = root / "pathgen.json"
        annotation.write_text(json.dumps(entries), encoding="utf-8")
    elif fmt == "csv":
        annotation = write_csv(
            root / "pathgen.csv",
            ["WSI_id", "position", "caption"],
            [[e["WSI_id"], json.dumps(e["position"]), e["caption"]] for e in entries],
        )
    else:
        raise ValueError(f"fmt must be json or csv, got {fmt!r}")
    return {"annotation": str(annotation), "image_root": str(root / "tiles")}


def write_paired_folder(root: Path, *, split_folders: bool = True, labels: bool = False) -> dict[str, Any]:
    """MeDiM's layout: each image beside a same-name .txt report, in train/ val/ test/ (or one folder split by
    a hash of the file name), with an optional labels.json (file stem -> finding labels)."""
    root = Path(root)
    counts = {"train": 3, "val": 1, "test": 1}
    if split_folders:
        names = {split: [f"{split}_{i:03d}" for i in range(n)] for split, n in counts.items()}
    else:
        names = names_per_split(lambda i: f"case_{i:04d}.png", counts, 0.05, 0.05)
        names = {split: [n.removesuffix(".png") for n in found] for split, found in names.items()}
    label_map = {}
    index = 0
    for split, stems in names.items():
        folder = root / split if split_folders else root
        folder.mkdir(parents=True, exist_ok=True)
        for stem in stems:
            picture(900 + index, 30, 38).save(folder / f"{stem}.png")
            (folder / f"{stem}.txt").write_text(_FINDINGS[index % len(_FINDINGS)] + "\n", encoding="utf-8")
            label_map[stem] = ["effusion_left"] if index % 2 else []
            index += 1
    if labels:
        (root / "labels.json").write_text(json.dumps(label_map, indent=1), encoding="utf-8")
    return {"root": str(root)}


def write_hf_dataset(root: Path, form: str = "saved") -> dict[str, Any]:
    """A Hugging Face dataset (train, validation, test; an `image` Image column and a `text` column), saved with
    `save_to_disk` (form saved) or as parquet files `train-00000-of-00001.parquet`, ... (form parquet)."""
    import datasets  # the `data` extra

    from medim.data.hf_dataset import quiet_library

    root = Path(root)
    counts = {"train": 4, "validation": 2, "test": 2}
    splits = {}
    index = 0
    for split, count in counts.items():
        images = [picture(700 + index + i, 36, 28) for i in range(count)]
        texts = [_FINDINGS[(index + i) % len(_FINDINGS)] for i in range(count)]
        index += count
        features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
        splits[split] = datasets.Dataset.from_dict({"image": images, "text": texts}, features=features)
    if form not in ("saved", "parquet"):
        raise ValueError(f"form must be saved or parquet, got {form!r}")
    with quiet_library(datasets):
        if form == "saved":
            datasets.DatasetDict(splits).save_to_disk(str(root))
        else:
            root.mkdir(parents=True, exist_ok=True)
            for split, dataset in splits.items():
                dataset.to_parquet(str(root / f"{split}-00000-of-00001.parquet"))
    return {"path": str(root)}


#: Open-i reports for the fixtures: (split, sections, MeSH major terms, number of images). One has no FINDINGS,
#: one has three images, one has the de-identification token XXXX, one has neither FINDINGS nor IMPRESSION.
_OPENI_REPORTS = (
    (
        "train",
        {
            "findings": "The heart is normal in size. The mediastinum is unremarkable. The lungs are clear.",
            "impression": "No acute disease.",
        },
        ("normal",),
        2,
    ),
    (
        "train",
        {
            "findings": "There is a small left pleural effusion. Heart size is enlarged. No pneumothorax.",
            "impression": "Cardiomegaly with small left pleural effusion.",
        },
        ("Cardiomegaly/mild", "Pleural Effusion/left/small"),
        2,
    ),
    ("train", {"findings": "", "impression": "Stable right upper lobe nodule."}, ("Nodule/lung/upper lobe/right",), 1),
    (
        "train",
        {
            "findings": "There are no XXXX of a pleural effusion. Cardiac silhouette within normal limits.",
            "impression": "Normal chest x-XXXX.",
        },
        ("normal",),
        3,
    ),
    (
        "val",
        {
            "findings": "Left basilar opacity may represent atelectasis.",
            "impression": "Left basilar atelectasis; pneumonia cannot be excluded.",
        },
        ("Opacity/lung/base/left", "Pulmonary Atelectasis/base/left"),
        2,
    ),
    (
        "test",
        {
            "findings": "Right chest tube in place. Small right apical pneumothorax.",
            "impression": "Small right pneumothorax.",
        },
        ("Tube, Inserted/right", "Pneumothorax/apex/right/small"),
        2,
    ),
    ("test", {"findings": "", "impression": ""}, ("No Indexing",), 1),
)


def openi_xml(number: int, sections: dict[str, str], mesh: Iterable[str], image_ids: Iterable[str]) -> str:
    """One report as NLM's ecgen-radiology XML writes it (an eCitation; empty sections are empty elements)."""
    from xml.sax.saxutils import escape

    abstract = "".join(
        f'\n            <AbstractText Label="{label}">{escape(text)}</AbstractText>'
        if text
        else f'\n            <AbstractText Label="{label}"/>'
        for label, text in (
            ("COMPARISON", "None."),
            ("INDICATION", "Chest pain"),
            ("FINDINGS", sections.get("findings", "")),
            ("IMPRESSION", sections.get("impression", "")),
        )
    )
    terms = "".join(f"\n      <major>{escape(term)}</major>" for term in mesh)
    images = "".join(
        f'\n   <parentImage id="{image_id}">\n      <figureId>F{i + 1}</figureId>'
        '\n      <caption>Xray Chest PA and Lateral</caption>\n      <panel type="single">'
        f"\n         <url>/hadoop/storage/radiology/extract/{image_id}.jpg</url>"
        "\n         <imgModality>7</imgModality>\n      </panel>\n   </parentImage>"
        for i, image_id in enumerate(image_ids)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<eCitation>\n   <meta type="rr"/>\n   <uId id="CXR{number}"/>\n'
        f'   <pmcId id="{number}"/>\n   <docSource>CXR</docSource>\n   <IUXRId id="{number}"/>\n'
        '   <licenseType>open-access</licenseType>\n   <MedlineCitation Owner="Indiana University" '
        'Status="supplied by publisher">\n      <Article PubModel="Electronic">\n         <ArticleTitle>Indiana '
        f"University Chest X-ray Collection</ArticleTitle>\n         <Abstract>{abstract}\n         </Abstract>\n"
        "      </Article>\n   </MedlineCitation>\n   <MeSH>"
        f"{terms}\n      <automatic>Lung</automatic>\n   </MeSH>{images}\n</eCitation>\n"
    )


def write_openi(root: Path, form: str = "tgz", val_fraction: float = 0.1, test_fraction: float = 0.2) -> dict[str, Any]:
    """IU X-ray as NLM distributes it: `NLMCXR_reports.tgz` (form tgz) or its extracted `ecgen-radiology/` folder
    (form folder) of Open-i XML reports, and `NLMCXR_png/<image id>.png` (8-bit grayscale). Report numbers are
    chosen so each lands in its listed split. The `iu_xray` params."""
    import shutil
    import tarfile

    root = Path(root)
    counts = {split: sum(entry[0] == split for entry in _OPENI_REPORTS) for split in SPLITS}
    numbers = names_per_split(lambda i: f"iu_xray/{i + 1}", counts, val_fraction, test_fraction)
    folder, images = root / "ecgen-radiology", root / "NLMCXR_png"
    folder.mkdir(parents=True, exist_ok=True)
    images.mkdir(parents=True, exist_ok=True)
    taken = {split: iter(names) for split, names in numbers.items()}
    for split, sections, mesh, image_count in _OPENI_REPORTS:
        number = int(next(taken[split]).rsplit("/", 1)[1])
        image_ids = [f"CXR{number}_IM-{1000 + number}-{1001 + k}" for k in range(image_count)]
        for k, image_id in enumerate(image_ids):
            picture(number * 10 + k, 40, 36).save(images / f"{image_id}.png")
        (folder / f"{number}.xml").write_text(openi_xml(number, sections, mesh, image_ids), encoding="utf-8")
    if form == "folder":
        return {"reports": str(folder), "images": str(images)}
    if form != "tgz":
        raise ValueError(f"form must be tgz or folder, got {form!r}")
    archive = root / "NLMCXR_reports.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="ecgen-radiology")
    shutil.rmtree(folder)  # what is read is the archive
    return {"reports": str(archive), "images": str(images)}
