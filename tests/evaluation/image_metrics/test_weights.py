"""Weights come only from local files: a missing, absent or wrong file is an error naming the file and key."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medim.evaluation.image_metrics import ImageMetricsConfig, ImageMetricsSetupError, WeightsError, image_metrics
from medim.evaluation.image_metrics.extractors.pytorch_fid_inception import PytorchFidInception
from medim.evaluation.image_metrics.extractors.torch_fidelity_inception import TorchFidelityInception

#: Tests that build a network need the image-metrics extra; the checks before any network is built do not.
needs_extra = pytest.mark.skipif(
    importlib.util.find_spec("pytorch_fid") is None or importlib.util.find_spec("torch_fidelity") is None,
    reason="needs the image-metrics extra",
)

IMAGES = np.zeros((4, 32, 32, 3), dtype=np.uint8)


def test_unset_weights_name_the_file_and_the_config_key() -> None:
    with pytest.raises(WeightsError) as caught:
        image_metrics(IMAGES, IMAGES, ImageMetricsConfig())
    message = str(caught.value)
    assert "eval.image_metrics.inception_weights is not set" in message
    assert "pt_inception-2015-12-05-6726825d.pth" in message
    assert "eval.image_metrics.fidelity_weights is not set" in message
    assert "weights-inception-2015-12-05-6726825d.pth" in message
    assert "never downloads" in message


def test_absent_file_names_the_path_the_expected_file_and_the_key(tmp_path: Path) -> None:
    missing = tmp_path / "models" / "inception.pth"
    config = ImageMetricsConfig(metrics=("fid",), inception_weights=str(missing))
    with pytest.raises(WeightsError, match=r"inception_weights = '.*models/inception.pth': no such file; expected "
                                           r"pt_inception-2015-12-05-6726825d.pth"):  # fmt: skip
        image_metrics(IMAGES, IMAGES, config)
    assert len(config.problems()) == 1


@needs_extra
def test_a_file_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match="is not a PyTorch state dict like pt_inception-2015-12-05-6726825d.pth"):
        PytorchFidInception(PytorchFidInception.Params(weights=str(junk)), where="eval.image_metrics.inception_weights")


@needs_extra
@pytest.mark.parametrize("extractor", [PytorchFidInception, TorchFidelityInception])
def test_a_state_dict_of_another_network_is_refused(extractor, tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Linear(3, 2).state_dict(), other)
    expected = f"does not fit the network that {extractor.weights_file} belongs to: .*Missing"
    with pytest.raises(WeightsError, match=expected):
        extractor(extractor.Params(weights=str(other)))


@needs_extra
def test_nothing_is_downloaded_whatever_torch_home_holds(
    fid_weights: Path, fidelity_weights: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty $TORCH_HOME would make either library download; the local files must be all they read."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))

    def no_download(*args, **kwargs):
        raise AssertionError(f"a download was attempted: {args}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    PytorchFidInception(PytorchFidInception.Params(weights=str(fid_weights)))
    TorchFidelityInception(TorchFidelityInception.Params(weights=str(fidelity_weights)))
    assert not (tmp_path / "empty-torch-home").exists()


def test_a_missing_package_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "weights.pth").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)  # import now fails as if not installed
    with pytest.raises(ImageMetricsSetupError, match=r"pytorch-fid .*pip install 'medim\[image-metrics\]'"):
        PytorchFidInception(PytorchFidInception.Params(weights=str(tmp_path / "weights.pth")))
