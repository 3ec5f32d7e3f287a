"""The demo's request handlers without a browser: fixed seeds, the denoising states, batching, bad inputs."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from medim.demo.batching import RequestBatcher
from medim.demo.frames import MASKED_TILE, MASKED_TOKEN
from medim.demo.model import DemoModel
from medim.demo.requests import Decoding, DemoRequest, DemoResult, Mode, generation_request, prepare
from medim.demo.service import DemoService

DECODING = Decoding("maskgit", steps=4, cfg_scale=1.5, seed=7)


def example(model: DemoModel, index: int = 0) -> tuple[str, Image.Image]:
    chosen = model.get().examples[index]
    return chosen.report, Image.fromarray(chosen.image)


def corner(size: int, side: int) -> np.ndarray:
    """An RGBA layer of a `size` picture painted in its top-left `side` x `side` corner."""
    layer = np.zeros((size, size, 4), dtype=np.uint8)
    layer[:side, :side] = 255
    return layer


def request_for(model: DemoModel, mode: Mode, decoding: Decoding = DECODING, index: int = 0) -> DemoRequest:
    report, picture = example(model, index)
    return {
        Mode.REPORT_TO_IMAGE: DemoRequest(mode, decoding, text=report),
        Mode.IMAGE_TO_REPORT: DemoRequest(mode, decoding, picture=picture),
        Mode.PAIR: DemoRequest(mode, decoding, text="The heart"),
        Mode.FINISH_REPORT: DemoRequest(mode, decoding, text="The heart", picture=picture),
        Mode.REDRAW_REGION: DemoRequest(
            mode, decoding, picture=picture, painted=(corner(picture.size[0], 16 + 8 * index),)
        ),
    }[mode]


def same(a: DemoResult, b: DemoResult) -> bool:
    images = (a.image is None and b.image is None) or np.array_equal(a.image, b.image)
    states = len(a.image_states) == len(b.image_states) and all(
        np.array_equal(x, y) for x, y in zip(a.image_states, b.image_states)
    )
    return images and states and a.report == b.report and a.report_states == b.report_states


@pytest.mark.parametrize("mode", list(Mode))
def test_a_fixed_seed_gives_the_same_answer(demo_model: DemoModel, mode: Mode) -> None:
    service = DemoService(demo_model, frames=4)
    first, again = (service.answer([request_for(demo_model, mode)])[0] for _ in range(2))
    assert first.error is None and same(first, again)
    other = service.answer([request_for(demo_model, mode, replace(DECODING, seed=8))])[0]
    assert not same(first, other)


@pytest.mark.parametrize("mode", list(Mode))
def test_the_denoising_states_start_masked_and_end_at_the_answer(demo_model: DemoModel, mode: Mode) -> None:
    result = DemoService(demo_model, frames=4).answer([request_for(demo_model, mode)])[0]
    assert result.error is None
    draws, writes = result.image is not None, result.report is not None
    assert draws == (mode in (Mode.REPORT_TO_IMAGE, Mode.PAIR, Mode.REDRAW_REGION))
    assert writes == (mode is not Mode.REPORT_TO_IMAGE)
    if draws:
        first, last = result.image_states[0], result.image_states[-1]
        assert len(result.image_states) >= 3 and np.array_equal(last, result.image)
        tiled = (first == MASKED_TILE).all(-1)
        if mode is Mode.REDRAW_REGION:  # only the painted corner's patches are masked; the rest is the given image
            assert tiled[:16, :16].all() and not tiled[40:, 40:].any()
        else:
            assert tiled.all()
        assert not (last == MASKED_TILE).all(-1).any()
    if writes:
        first, last = result.report_states[0], result.report_states[-1]
        assert len(result.report_states) >= 3 and last == result.report and MASKED_TOKEN not in last
        assert (
            first.startswith("The heart " + MASKED_TOKEN)
            if mode in (Mode.FINISH_REPORT, Mode.PAIR)
            else (set(first) == {MASKED_TOKEN})
        )


@pytest.mark.parametrize("mode", list(Mode))
def test_an_answer_is_what_the_task_generates_for_the_same_request(demo_model: DemoModel, mode: Mode) -> None:
    """The demo decodes as `medim generate` does (the task's `generate`), with the states recorded on the side."""
    loaded = demo_model.get()
    request = request_for(demo_model, mode)
    result = DemoService(demo_model, frames=4).answer([request])[0]
    prepared = prepare(request, loaded.experiment)
    expected = loaded.experiment.task.generate(
        loaded.backbone,
        loaded.samplers[DECODING.sampler],
        generation_request([prepared]),
        num_steps=DECODING.steps,
        cfg_scale=DECODING.cfg_scale,
        seed=[DECODING.seed],
    )
    assert result.error is None
    assert (result.image is None) == (expected.images is None)
    assert result.image is None or np.array_equal(result.image, expected.images[0])
    assert result.report == (None if expected.reports is None else expected.reports[0])


def test_the_true_labels_are_shown_for_an_example_image(demo_model: DemoModel) -> None:
    labelled = next(i for i, e in enumerate(demo_model.get().examples) if e.labels)
    result = DemoService(demo_model).answer([request_for(demo_model, Mode.IMAGE_TO_REPORT, index=labelled)])[0]
    assert result.true_findings == demo_model.get().examples[labelled].labels
    assert result.findings == demo_model.get().finding_labels.parse_report(result.report)
    upload = DemoRequest(Mode.IMAGE_TO_REPORT, DECODING, picture=Image.new("L", (70, 70), 90))
    assert DemoService(demo_model).answer([upload])[0].true_findings is None  # not an example: no true labels


@pytest.mark.parametrize(
    "sampler", ["maskgit", "ancestral", "first_hitting", "medim", "medim_release", "remask", "threshold"]
)
def test_requests_answered_together_get_what_each_gets_alone(demo_model: DemoModel, sampler: str) -> None:
    service = DemoService(demo_model, frames=4)
    decoding = replace(DECODING, sampler=sampler)
    requests = [
        request_for(demo_model, Mode.IMAGE_TO_REPORT, replace(decoding, seed=3), index=0),
        request_for(demo_model, Mode.IMAGE_TO_REPORT, replace(decoding, seed=4), index=1),
        request_for(demo_model, Mode.REPORT_TO_IMAGE, replace(decoding, seed=5)),
        request_for(demo_model, Mode.REDRAW_REGION, replace(decoding, seed=6), index=2),
        request_for(demo_model, Mode.REDRAW_REGION, replace(decoding, seed=7), index=3),
    ]
    together = service.answer(requests)
    alone = [service.answer([request])[0] for request in requests]
    assert all(a.error is None and same(a, b) for a, b in zip(together, alone))


class GatedService(DemoService):
    """Holds its first call until released, so that requests sent meanwhile wait in the queue."""

    def __init__(self, model: DemoModel) -> None:
        super().__init__(model, frames=4)
        self.busy, self.release = threading.Event(), threading.Event()

    def answer(self, requests, on_state=None):
        if not self.busy.is_set():
            self.busy.set()
            self.release.wait(60)
        return super().answer(requests, on_state)


def test_two_queued_requests_are_generated_as_one_batch_with_each_result_as_alone(demo_model: DemoModel) -> None:
    service = GatedService(demo_model)
    batcher = RequestBatcher(service, max_batch=8, gather_seconds=0)
    first = batcher.submit(request_for(demo_model, Mode.PAIR))
    assert service.busy.wait(60)
    queued = [
        batcher.submit(request_for(demo_model, Mode.IMAGE_TO_REPORT, replace(DECODING, seed=seed), index=seed))
        for seed in (1, 2)
    ]
    service.release.set()
    updates = list(queued[0].updates())
    results = [first.wait(), queued[0].result, *(job.wait() for job in queued[1:])]
    assert batcher.batch_sizes == [1, 2]  # the two that waited were answered by one call
    alone = [DemoService(demo_model, frames=4).answer([job.request])[0] for job in queued]
    assert all(same(r, a) for r, a in zip(results[1:], alone)) and results[0].error is None
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    assert updates[-1].report == results[1].report  # the last update shows the finished report


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"text": "   "}, "the report is empty"),
        ({"mode": Mode.IMAGE_TO_REPORT, "picture": None}, "no image"),
        ({"mode": Mode.IMAGE_TO_REPORT, "picture": Image.new("I;16", (64, 64))}, "pixel mode 'I;16'"),
        ({"mode": Mode.IMAGE_TO_REPORT, "picture": Image.new("RGB", (64, 20))}, "crop it to (nearly) square"),
        ({"mode": Mode.IMAGE_TO_REPORT, "picture": Image.new("RGB", (8, 8))}, "give at least 16x16"),
        ({"mode": Mode.REDRAW_REGION, "picture": Image.new("RGB", (64, 64)), "painted": ()}, "nothing is painted"),
        ({"mode": Mode.FINISH_REPORT, "picture": Image.new("RGB", (64, 64)), "text": ""}, "start of the report"),
        ({"decoding": replace(DECODING, sampler="nope")}, "sampler 'nope' cannot decode this model"),
        ({"decoding": replace(DECODING, steps=0)}, "steps must be at least 1"),
        ({"decoding": replace(DECODING, cfg_scale=float("nan"))}, "guidance must be a weight >= 0"),
    ],
)
def test_a_bad_input_gets_its_message_and_the_others_their_answers(
    demo_model: DemoModel, change: dict, message: str
) -> None:
    bad = replace(DemoRequest(Mode.REPORT_TO_IMAGE, DECODING, text="The heart is enlarged."), **change)
    good = request_for(demo_model, Mode.REPORT_TO_IMAGE)
    answered = DemoService(demo_model).answer([bad, good])
    assert message in answered[0].error and answered[0].image is None and answered[0].report is None
    assert answered[1].error is None and answered[1].image is not None


def test_a_too_long_report_is_answered_with_a_notice(demo_model: DemoModel) -> None:
    long = " ".join(["The heart is enlarged."] * 30)
    result = DemoService(demo_model).answer([DemoRequest(Mode.REPORT_TO_IMAGE, DECODING, text=long)])[0]
    assert result.error is None and "the model reads its first" in result.notices[0]
