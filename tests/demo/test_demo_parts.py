"""The demo's parts against direct computations: checked inputs, drawn states, the page's request and findings."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medim.demo.frames import MASKED_TILE, MASKED_TOKEN, image_state, report_state
from medim.demo.inputs import model_picture, painted_region
from medim.demo.model import DemoModel
from medim.demo.requests import DemoResult, Mode
from medim.errors import DataError


def test_a_painted_corner_becomes_the_same_corner_of_the_model_picture() -> None:
    layer = np.zeros((128, 128, 4), dtype=np.uint8)
    layer[:32, :32, 3] = 255
    region = painted_region([layer], (128, 128), 64)
    expected = np.zeros((64, 64), dtype=bool)
    expected[:16, :16] = True
    assert np.array_equal(region, expected)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ([np.zeros((128, 128, 4), dtype=np.uint8)], "nothing is painted"),
        ([np.full((100, 128, 4), 255, dtype=np.uint8)], "a painted layer is 128x100 pixels but the picture is 128x128"),
        ([np.full((128, 128, 3), 255, dtype=np.uint8)], "is not an RGBA picture"),
    ],
)
def test_a_painting_that_selects_nothing_usable_is_refused(layers: list, message: str) -> None:
    with pytest.raises(DataError, match=message):
        painted_region(layers, (128, 128), 64)


def test_a_stroke_thinner_than_a_model_pixel_is_refused() -> None:
    layer = np.zeros((256, 256, 4), dtype=np.uint8)
    layer[1, 1, 3] = 255  # one picture pixel; a model pixel is 4x4 of them and nearest-neighbour misses it
    with pytest.raises(DataError, match="too thin"):
        painted_region([layer], (256, 256), 64)


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGB", "RGBA"])
def test_eight_bit_pictures_of_any_mode_become_the_model_input(demo_model: DemoModel, mode: str) -> None:
    tokenizer = demo_model.get().experiment.image_tokenizer
    picture = Image.new("RGB", (90, 80), (90, 100, 110)).convert(mode)
    array = model_picture(picture, tokenizer)
    assert array.shape == (64, 64, 3) and array.dtype == np.uint8
    assert np.array_equal(array, tokenizer.preprocess(picture))


def sequence(demo_model: DemoModel, report: str, index: int = 0) -> torch.Tensor:
    """A whole sequence [L]: an example's image codes and `report`."""
    loaded = demo_model.get()
    layout = loaded.experiment.layout
    codes = layout.image_tokenizer.encode(loaded.examples[index].image[None])
    return layout.pack(codes, layout.pack_text([report]).ids)[0]


def test_masked_codes_are_drawn_as_tiles_over_their_patches_and_the_rest_as_decoded(demo_model: DemoModel) -> None:
    layout = demo_model.get().experiment.layout
    tokens = sequence(demo_model, "The heart is enlarged.")
    masked = tokens.clone()
    masked[layout.image_positions[[0, 9]]] = layout.mask_id  # patches (row 0, col 0) and (row 1, col 1), 8 px each
    drawn = image_state(layout, masked)
    expected = layout.image_tokenizer.decode(layout.image_codes(tokens[None]))[0].copy()
    expected[0:8, 0:8] = MASKED_TILE
    expected[8:16, 8:16] = MASKED_TILE
    assert np.array_equal(drawn, expected)
    assert np.array_equal(
        image_state(layout, tokens), layout.image_tokenizer.decode(layout.image_codes(tokens[None]))[0]
    )


def test_masked_report_tokens_are_written_as_blocks_between_the_revealed_words(demo_model: DemoModel) -> None:
    layout = demo_model.get().experiment.layout
    tokenizer = layout.text_tokenizer
    tokens = sequence(demo_model, "The heart is enlarged. No effusion.")
    text = layout.text_positions
    ids = tokens[text].tolist()
    end = ids.index(tokenizer.eos_id)
    masked = tokens.clone()
    masked[text[[1, 2]]] = layout.mask_id
    masked[text[end + 2 :]] = layout.mask_id  # padding still masked after the revealed end: not shown
    expected = f"{tokenizer.decode([ids[:1]])[0]} {MASKED_TOKEN * 2} {tokenizer.decode([ids[3:end]])[0]}"
    assert report_state(layout, masked) == expected
    assert report_state(layout, tokens) == layout.texts(tokens[None])[0] == "The heart is enlarged. No effusion."
    everything = tokens.clone()
    everything[text] = layout.mask_id
    assert report_state(layout, everything) == MASKED_TOKEN * len(text)


gradio = pytest.importorskip("gradio", reason='the demo extra is not installed (pip install -e ".[demo]")')


def test_the_page_values_make_the_request_of_their_tab() -> None:
    from medim.demo.app import demo_request

    picture = Image.new("RGB", (64, 64))
    paint = Image.new("RGBA", (64, 64))
    request = demo_request(
        Mode.REDRAW_REGION, ({"background": picture, "layers": [paint], "composite": None}, "A report."),
        "maskgit", 12.0, 1.5, 3.0,
    )  # fmt: skip
    assert request.picture is picture and request.text == "A report." and len(request.painted) == 1
    assert request.painted[0].shape == (64, 64, 4)
    assert (request.decoding.sampler, request.decoding.steps, request.decoding.cfg_scale, request.decoding.seed) == (
        "maskgit", 12, 1.5, 3,
    )  # fmt: skip
    assert demo_request(Mode.FINISH_REPORT, (picture, "The"), "maskgit", 4, 0, 0).text == "The"
    with pytest.raises(DataError, match="the seed must be a whole number"):
        demo_request(Mode.PAIR, ("",), "maskgit", 4, 0, 1.5)
    with pytest.raises(DataError, match="no sampler is available"):
        demo_request(Mode.PAIR, ("",), None, 4, 0, 1)


def test_the_findings_table_marks_what_the_report_states_beside_the_true_labels() -> None:
    from medim.demo.app import findings_table

    table = findings_table(
        DemoResult(report="...", findings=frozenset({"cardiomegaly", "nodule"}), true_findings=frozenset({"nodule"}))
    )
    assert "| cardiomegaly | ✔ |  |" in table and "| nodule | ✔ | ✔ |" in table and "true label" in table
    alone = findings_table(DemoResult(report="...", findings=frozenset({"nodule"})))
    assert "| nodule | ✔ |" in alone and "true label" not in alone
    assert "no report parser" in findings_table(DemoResult(report="..."))
