"""iu_semireal: real Open-i reports paired with phantoms that show what each report states, where it says."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from medim.data.cxr_labeler import positive_observations, stated_clauses
from medim.data.examples import write_openi
from medim.data.iu_semireal import scene
from medim.data.openi import installed_archive
from medim.data.phantom_cxr_signs import draw_phantom
from medim.registry import DATASETS


def scene_of(text: str, key: str = "1") -> frozenset[str]:
    return scene(positive_observations(text), stated_clauses(text), key)


def test_the_scene_follows_the_report_sides_and_zones() -> None:
    assert scene_of("Small left pleural effusion. No pneumothorax.") == {"effusion_left"}
    assert scene_of("Bilateral pleural effusions.") == {"effusion_left", "effusion_right"}
    assert scene_of("Right upper lobe nodule. Mild cardiomegaly.") == {"nodule_right_upper", "cardiomegaly"}
    assert scene_of("Left basilar atelectasis.") == {"atelectasis_left"}
    assert scene_of("Right lower lobe pneumonia.") == {"consolidation_right"}  # pneumonia shows as consolidation
    assert scene_of("Widened mediastinum. Pulmonary edema. Left chest tube.") == {
        "wide_mediastinum",
        "edema",
        "support_device",
    }
    assert scene_of("The lungs are clear. No effusion.") == frozenset()  # No Finding draws nothing
    assert scene_of("Possible left effusion.") == frozenset()  # a hedge is not drawn


def test_an_unnamed_side_is_fixed_by_the_report_id() -> None:
    sides = {next(iter(scene_of("Small pleural effusion.", key=str(i)))) for i in range(40)}
    assert sides == {"effusion_left", "effusion_right"}  # both occur across reports
    assert scene_of("Small pleural effusion.", "7") == scene_of("Small pleural effusion.", "7")


def test_pairs_from_the_fixture_reports(tmp_path: Path) -> None:
    params = {"name": "iu_semireal", "reports": write_openi(tmp_path / "iu")["reports"], "image_size": 32}
    dataset = DATASETS.build(params)
    reports = DATASETS.build({"name": "iu_xray", "reports": params["reports"]}).report_split("train")
    train = dataset.split("train")
    assert train.reports == reports.reports and train.labels == reports.labels
    assert train.images[:].shape == (len(reports), 32, 32, 3)
    assert (train.images[1] == dataset.split("train").images[1]).all()  # drawn the same every time
    effusion = train.labels.index(frozenset({"Cardiomegaly", "Pleural Effusion"}))
    seed = dataset.split("train").images.seeds[effusion]
    expected = draw_phantom(frozenset({"cardiomegaly", "effusion_left"}), np.random.default_rng(seed), 32)
    assert (train.images[effusion] == expected).all()  # "small left pleural effusion" drawn on the left
    assert dataset.finding_labels().names[0] == "No Finding"
    other_seed = DATASETS.build({**params, "seed": 1})
    assert other_seed.identity() != dataset.identity()
    assert not (other_seed.split("train").images[0] == train.images[0]).all()


@pytest.mark.skipif(installed_archive() is None, reason="torchxrayvision is not installed (pip install --no-deps)")
def test_every_real_report_gets_a_phantom() -> None:
    dataset = DATASETS.build({"name": "iu_semireal", "image_size": 32, "max_samples": 50})
    test = dataset.split("test")
    assert len(test) == 50 and test.images[:].shape == (50, 32, 32, 3)
    assert sum(bool(labels - {"No Finding"}) for labels in test.labels) > 10  # real findings are drawn
