"""Answering demo requests with the served model, without a web page (so it is tested without a browser).

`DemoService.answer` takes the requests waiting together: each is checked (a bad one
gets its message and nothing else happens to it), those with equal settings are
generated as one batch, each sample from its own seed, and every answer carries its
denoising states. No exception escapes: a failure becomes the answer's message and
is logged, so one bad request never takes the server down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from medim.demo.frames import DenoisingRecorder, SampleStates
from medim.demo.model import DemoModel, LoadedModel
from medim.demo.requests import DemoRequest, DemoResult, PreparedRequest, generation_request, prepare
from medim.errors import DataError, MedimError
from medim.precision import generation_autocast

logger = logging.getLogger(__name__)

#: Hears of each new denoising state: (index of the request among those answered, its states so far).
StateListener = Callable[[int, SampleStates], None]


class DemoService:
    """Answers requests with `model`, keeping `frames` intermediate states per generation (plus the first)."""

    def __init__(self, model: DemoModel, frames: int = 12) -> None:
        self.model, self.frames = model, frames

    def answer(self, requests: list[DemoRequest], on_state: StateListener | None = None) -> list[DemoResult]:
        """One result per request, in order (module docstring)."""
        try:
            loaded = self.model.get()
        except MedimError as exc:
            return [DemoResult(error=str(exc)) for _ in requests]
        results: list[DemoResult | None] = [None] * len(requests)
        groups: dict[tuple, list[tuple[int, PreparedRequest]]] = {}
        for index, request in enumerate(requests):
            try:
                prepared = prepare(request, loaded.experiment)
            except MedimError as exc:
                results[index] = DemoResult(error=str(exc))
                continue
            groups.setdefault(prepared.batch_key, []).append((index, prepared))
        for group in groups.values():
            indices = [index for index, _ in group]
            try:
                answers = self._generate(loaded, [p for _, p in group], indices, on_state)
            except MedimError as exc:
                answers = [DemoResult(error=str(exc)) for _ in group]
            except Exception as exc:  # noqa: BLE001 - the server must keep running; the log has the traceback
                logger.exception("demo generation failed")
                message = f"generation failed ({type(exc).__name__}: {exc}); the server log has the details"
                answers = [DemoResult(error=message) for _ in group]
            for index, result in zip(indices, answers):
                results[index] = result
        return [r if r is not None else DemoResult(error="no answer") for r in results]

    def _generate(
        self,
        loaded: LoadedModel,
        batch: list[PreparedRequest],
        indices: list[int],
        on_state: StateListener | None,
    ) -> list[DemoResult]:
        """Generate one batch of requests with equal settings."""
        started = time.perf_counter()
        experiment = loaded.experiment
        decoding = batch[0].request.decoding
        sampler = loaded.samplers.get(decoding.sampler)
        if sampler is None:
            raise DataError(
                f"sampler {decoding.sampler!r} cannot decode this model; choose one of {', '.join(loaded.samplers)}"
            )
        request = generation_request(batch)
        task = experiment.task.task_for(request.generated())
        prompt = task.prompt(request, loaded.device)
        listener = None if on_state is None else (lambda row, states: on_state(indices[row], states))
        recorder = DenoisingRecorder(
            experiment.layout, prompt.tokens, ~prompt.known, frames=self.frames, on_state=listener
        )
        with generation_autocast(loaded.device, experiment.config.eval.autocast):
            tokens = task.infill(  # what `task.generate` does, with the prompt the recorder starts from
                loaded.backbone,
                sampler,
                prompt,
                num_steps=decoding.steps,
                cfg_scale=decoding.cfg_scale,
                seed=[p.request.decoding.seed for p in batch],
                observe=recorder,
            )
            generated = experiment.task.decode_outputs(request, tokens)
        seconds = time.perf_counter() - started
        parser = loaded.finding_labels
        results = []
        for row, prepared in enumerate(batch):
            report = None if generated.reports is None else generated.reports[row]
            states = recorder.samples[row]
            results.append(
                DemoResult(
                    image=None if generated.images is None else generated.images[row],
                    report=report,
                    given_image=prepared.image,
                    findings=None if parser is None or report is None else parser.parse_report(report),
                    true_findings=None if prepared.image is None else loaded.true_labels(prepared.image),
                    image_states=states.images,
                    report_states=states.reports,
                    notices=prepared.notices,
                    seconds=seconds,
                )
            )
        return results
