"""Sampler checks (`medim.samplers.base.Sampler`): driven through the real generation loop, `denoise`.

The tiny backbone generates three sequences of the environment's layout in 4 steps with guidance
w = 1.5: a whole pair; a report given its image; an image given the opening of its report. Every
step the sampler takes is recorded, so its outputs are checked as well as the loop's result:
every generated position must end with a token of its own modality (the loop refuses a sampler
that leaves masks after its last step, s = 0), given (frozen) positions must stay as they are,
a sampler that does not declare `revises_tokens` must never change a revealed token, and a
sample must come out the same alone as beside others (each draws from its own seed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medim.config.modalities import IMAGE, TEXT
from medim.conformance.checks import Blocked, Check, ContractError, Once, Subject, require, shape
from medim.registry import ComponentParams
from medim.samplers.autoregressive import AutoregressiveSampler
from medim.samplers.base import Sampler, SamplerCapabilities, SamplerOutput, StepContext
from medim.tasks.generation import denoise
from medim.tasks.left_to_right import decode_left_to_right

STEPS = 4
CFG_SCALE = 1.5
SEEDS = [11, 12, 13]
#: Report positions given in the third sequence (an image drawn for a report's opening).
OPENING = 3
#: The loop's error for a sampler that leaves masks (medim.tasks.generation.denoise).
LEFT_MASKED = re.compile(r"left (\d+) generated positions masked")


class _Recorder:
    """The sampler, with every `step` it takes recorded as (context, output)."""

    def __init__(self, sampler: Sampler) -> None:
        self._sampler = sampler
        self.steps: list[tuple[StepContext, SamplerOutput]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sampler, name)

    def step(self, context: StepContext) -> SamplerOutput:
        output = self._sampler.step(context)
        self.steps.append((context, output))
        return output


@dataclass(frozen=True)
class Generation:
    """One recorded run of the loop: its sequences (None when it refused the result), the steps, the loop's error."""

    tokens: Tensor | None
    steps: list[tuple[StepContext, SamplerOutput]]
    left_masked: int


class SamplerSubject(Subject):
    """A sampler for the environment's mask id and schedule, with the prompts and runs its checks share."""

    noun = "sampler"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch = Once("generating a batch", lambda: self.generate(list(range(len(SEEDS)))))
        self._backbone = Once("the tiny backbone", lambda: self.env.backbone(causal=self.left_to_right))

    def construct(self, params: ComponentParams) -> Sampler:
        return self.entry.cls(params, mask_id=self.env.layout.mask_id, noise=self.env.noise)

    @property
    def left_to_right(self) -> bool:
        """True for the sampler of autoregressive models, which the left-to-right loop drives with a causal backbone."""
        return isinstance(self.component, AutoregressiveSampler)

    @property
    def batch(self) -> Generation:
        """The three prompts generated together."""
        return self._batch.get()

    @property
    def finished(self) -> Tensor:
        """The batch's sequences; Blocked when the loop refused them."""
        if self.batch.tokens is None:
            raise Blocked("needs a finished generation, which the loop refused: generated positions were left masked")
        return self.batch.tokens

    def prompt(self) -> tuple[Tensor, Tensor, Tensor]:
        """(given sequences [3, L], target positions [P], which targets each sequence generates [3, P])."""
        layout = self.env.layout
        targets = (layout.position_modality >= 0).nonzero()[:, 0]
        modality = layout.position_modality[targets]
        opening = torch.zeros_like(modality, dtype=torch.bool)
        opening[(modality == TEXT).nonzero()[:OPENING, 0]] = True
        generate = torch.stack(
            [torch.ones_like(opening), modality == TEXT, (modality == IMAGE) | ~opening & (modality == TEXT)]
        )
        return self.env.sequences(len(SEEDS)), targets, generate

    def generate(self, rows: list[int]) -> Generation:
        """Generate the prompts `rows`, each from its own seed, recording the sampler's steps."""
        given, targets, generate = self.prompt()
        given, generate = given[rows], generate[rows]
        conditioning = torch.zeros_like(given, dtype=torch.bool)
        conditioning[:, targets] = ~generate
        if self.left_to_right:
            return self._generate_left_to_right(given, targets, generate, conditioning, rows)
        recorder = _Recorder(self.component)
        try:
            tokens = denoise(
                self._backbone.get(),
                self.env.layout,
                recorder,  # type: ignore[arg-type]
                given,
                targets=targets,
                num_steps=STEPS,
                generate=generate,
                conditioning=conditioning,
                cfg_scale=CFG_SCALE,
                seeds=[SEEDS[row] for row in rows],
                schedule=self.env.noise,
            )
        except RuntimeError as exc:
            left = LEFT_MASKED.search(str(exc))
            if left is None:
                raise
            return Generation(None, recorder.steps, int(left.group(1)))
        return Generation(tokens, recorder.steps, 0)

    def _generate_left_to_right(
        self, given: Tensor, targets: Tensor, generate: Tensor, conditioning: Tensor, rows: list[int]
    ) -> Generation:
        """The same prompts through the left-to-right loop (no steps to record)."""
        noised = torch.zeros_like(given, dtype=torch.bool)
        noised[:, targets] = True
        generated = torch.zeros_like(noised)
        generated[:, targets] = generate
        tokens = decode_left_to_right(
            self._backbone.get(),
            self.env.layout,
            self.component,
            given.masked_fill(generated, self.env.layout.mask_id),
            noised=noised,
            generate=generated,
            conditioning=conditioning,
            cfg_scale=CFG_SCALE,
            seeds=[SEEDS[row] for row in rows],
        )
        return Generation(tokens, [], 0)


def _builds(subject: SamplerSubject) -> str:
    sampler = subject.component
    require(
        isinstance(sampler, Sampler),
        f"{subject.label}: must be a medim.samplers.base.Sampler, got {type(sampler).__name__}",
    )
    capabilities = sampler.capabilities()
    require(
        isinstance(capabilities, SamplerCapabilities),
        f"{subject.label}: capabilities() must return SamplerCapabilities (Sampler.capabilities), "
        f"got {type(capabilities).__name__}",
    )
    kind = subject.env.noise.noise_kind
    require(
        kind in sampler.supported_noise,
        f"{subject.label}: must support the absorbing-mask process every medim schedule is, supported_noise "
        f"containing {kind!r} (Sampler.supported_noise), got {sampler.supported_noise}",
    )
    declared = [name for name, value in vars(capabilities).items() if value]
    return f"capabilities: {', '.join(declared) or 'none declared'}"


def _fills(subject: SamplerSubject) -> str:
    batch, layout = subject.batch, subject.env.layout
    if batch.left_masked:
        raise ContractError(
            f"{subject.label}: must fill every generated position by its last step, s = 0 (Sampler.step), "
            f"got {batch.left_masked} generated positions still masked after the last step"
        )
    given, targets, generate = subject.prompt()
    tokens = subject.finished[:, targets]
    if subject.component.capabilities().raw_logits:  # draws over the whole vocabulary at unguided steps (MeDiM)
        bad = generate & ((tokens == layout.mask_id) | (tokens < 0) | (tokens >= layout.vocab_size))
        require(
            not bool(bad.any()),
            f"{subject.label}: every generated position must end with a vocabulary id, never the mask "
            f"(Sampler.step; raw unguided draws may take another modality's ids), got {int(bad.sum())} that are not",
        )
        return f"{int(generate.sum())} generated positions, each a vocabulary id (raw unguided draws: any modality)"
    allowed = layout.allowed_vocab(targets).expand(len(tokens), -1, -1)
    valid = allowed.gather(2, tokens.clamp(0, layout.vocab_size - 1)[..., None])[..., 0]
    bad = generate & ~valid
    require(
        not bool(bad.any()),
        f"{subject.label}: every generated position must end with a token of its own modality, never the mask "
        f"(Sampler.step), got {int(bad.sum())} that are not ({int((tokens[bad] == layout.mask_id).sum())} masks)",
    )
    return f"{int(generate.sum())} generated positions, each a token of its modality"


def _given(subject: SamplerSubject) -> str:
    batch = subject.batch
    changed = 0
    for context, output in batch.steps:
        if context.frozen is not None and output.prev_sample.shape == context.xt.shape:
            changed += int(((output.prev_sample != context.xt) & context.frozen).sum())
    require(
        changed == 0,
        f"{subject.label}: step must leave the given (frozen) positions as they are (StepContext.frozen), "
        f"got {changed} changed over {len(batch.steps)} steps",
    )
    given, targets, generate = subject.prompt()
    kept = torch.ones_like(given, dtype=torch.bool)
    kept[:, targets] = ~generate
    differ = int(((subject.finished != given) & kept).sum())
    require(
        differ == 0,
        f"{subject.label}: the given positions must come out of generation unchanged (denoise), got {differ} changed",
    )
    return f"{int(kept.sum())} given positions untouched, in every step and in the result"


def _outputs(subject: SamplerSubject) -> str:
    batch = subject.batch
    remembers = subject.component.capabilities().remembers_confidence
    for context, output in batch.steps:
        fields = {"prev_sample": output.prev_sample, "pred_original_sample": output.pred_original_sample}
        if remembers:
            fields["confidence"] = output.confidence
        for name, value in fields.items():
            require(
                isinstance(value, Tensor) and value.shape == context.xt.shape,
                f"{subject.label}: step must return {name} [B, P] = {shape(context.xt)} (SamplerOutput"
                f"{'; it declares remembers_confidence' if name == 'confidence' else ''}), got "
                f"{shape(value) if isinstance(value, Tensor) else value!r}",
            )
    require(bool(batch.steps), f"{subject.label}: the loop must call step at least once (Sampler.step), got no call")
    return f"{len(batch.steps)} steps, each returning [B, P] outputs"


def _keeps_revealed(subject: SamplerSubject) -> str:
    changed = 0
    mask_id = subject.env.layout.mask_id
    for context, output in subject.batch.steps:
        revealed = context.xt != mask_id
        changed += int(((output.prev_sample != context.xt) & revealed).sum())
    require(
        changed == 0,
        f"{subject.label}: does not declare revises_tokens, so step must never change a revealed token "
        f"(SamplerCapabilities.revises_tokens), got {changed} revealed tokens changed",
    )
    return "revealed tokens are never changed (revises_tokens not declared)"


def _batch_invariant(subject: SamplerSubject) -> str:
    alone = subject.generate([1])
    require(
        alone.tokens is not None,
        f"{subject.label}: must fill every generated position by its last step, s = 0 (Sampler.step), "
        f"got {alone.left_masked} masked when generating one sample alone",
    )
    in_batch = subject.finished[1:2]
    differ = int((alone.tokens != in_batch).sum())
    require(
        differ == 0,
        f"{subject.label}: a sample must be the same generated alone as beside others with the same seed "
        f"(draw through the per-sample streams StepContext.rng; Sampler.step), got {differ} tokens that differ",
    )
    return "a sample alone equals the same seed in a batch of three"


def _keeps_tokens(subject: SamplerSubject) -> bool:
    return not subject.component.capabilities().revises_tokens and not subject.left_to_right


def _steps(subject: SamplerSubject) -> bool:
    return not subject.left_to_right


SUBJECT = SamplerSubject
CHECKS: tuple[Check[SamplerSubject], ...] = (
    Check("builds", _builds),
    Check("fills every generated position", _fills),
    Check("given positions stay as given", _given),
    Check("step returns [B, P] outputs", _outputs, _steps),
    Check("revealed tokens stay", _keeps_revealed, _keeps_tokens),
    Check("a sample is the same alone as in a batch", _batch_invariant),
)
