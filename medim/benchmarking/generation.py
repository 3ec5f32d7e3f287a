"""The generation arms of `medim bench`: medim's samplers, MeDiM's released sampling recipe, and left-to-right
decoding with a KV cache, each writing images given reports and reports given images at the same dims.

released   MeDiM's sampling as released: one sample at a time, the conditional and unconditional
           forwards run one after the other, float32 logits at every position over the whole
           vocabulary, float32 weights under float16 autocast (on a GPU), its per-step arccos reveal
           counts with Gumbel-perturbed confidences; the same number of steps as medim's samplers.
medim      each sampler through medim's loop: many samples per forward, both guidance branches in
           one batched forward, logits only at the generated positions over their modality's ids.
autoregressive  a causal model of the same dims decoding one token per forward with a KV cache
           (as Liquid generates its 1,024 image tokens), guidance branches batched.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext

import torch
from torch import Tensor

from medim.backbones.base import Backbone
from medim.benchmarking.plain import PlainModel
from medim.config.modalities import FIXED, IMAGE, TEXT
from medim.experiment import Experiment
from medim.registry import SAMPLERS
from medim.samplers.maskgit import per_step_counts
from medim.tasks.left_to_right import decode_left_to_right
from medim.tasks.request import GenerationPrompt

#: The two directions measured: (name, generated modality code, the given one).
DIRECTIONS = (("report_to_image", IMAGE, TEXT), ("image_to_report", TEXT, IMAGE))


def synthetic_sequences(experiment: Experiment, count: int, generator: torch.Generator) -> Tensor:
    """[count, L] sequences of valid random image codes and report ids (speed does not depend on their content)."""
    layout = experiment.layout
    codes = torch.randint(
        0, layout.image_tokenizer.codebook_size, (count, len(layout.image_positions)), generator=generator
    )
    lo, hi = layout.vocab_range(TEXT)
    text = torch.randint(max(lo, 1), hi, (count, len(layout.text_positions)), generator=generator)
    return layout.pack(codes, text)


def prompt_for(experiment: Experiment, x0: Tensor, given: int) -> GenerationPrompt:
    """The prompt that gives modality `given` of `x0` and asks for the other."""
    layout = experiment.layout
    prompt = GenerationPrompt(layout, x0.shape[0], x0.device)
    known = torch.isin(layout.position_modality, torch.tensor([FIXED, given])).to(x0.device)
    prompt.tokens = torch.where(known, x0, layout.mask_id)
    prompt.known = known.expand_as(x0).clone()
    return prompt


def medim_sampler(
    experiment: Experiment, backbone: Backbone, sampler_name: str, steps: int, cfg_scale: float
) -> Callable[[Tensor, int], Tensor]:
    """Generate with medim's loop and sampler `sampler_name`: (x0, given modality) -> sequences."""
    sampler = SAMPLERS.build({"name": sampler_name}, mask_id=experiment.layout.mask_id, noise=experiment.noise)

    def generate(x0: Tensor, given: int) -> Tensor:
        name = "text" if given == IMAGE else "image"
        task = experiment.task.task_for(frozenset({name}))
        prompt = prompt_for(experiment, x0, given)
        return task.infill(backbone, sampler, prompt, num_steps=steps, cfg_scale=cfg_scale, seed=0)

    return generate


def autoregressive_decoder(experiment: Experiment, backbone: Backbone, cfg_scale: float) -> Callable:
    """Generate left to right with a KV cache on a causal `backbone`: (x0, given modality) -> sequences."""
    layout = experiment.layout
    sampler = SAMPLERS.build({"name": "autoregressive"}, mask_id=layout.mask_id, noise=experiment.noise)

    def generate(x0: Tensor, given: int) -> Tensor:
        prompt = prompt_for(experiment, x0, given)
        generated = ~prompt.known
        conditioning = (layout.position_modality.to(x0.device) == given).expand_as(generated)
        return decode_left_to_right(
            backbone,
            layout,
            sampler,
            prompt.tokens,
            noised=generated,
            generate=generated,
            conditioning=conditioning,
            cfg_scale=cfg_scale,
            seeds=0,
        )

    return generate


def released_sampler(
    experiment: Experiment, plain: PlainModel, steps: int, cfg_scale: float, autocast: str
) -> Callable[[Tensor, int], Tensor]:
    """MeDiM's released sampling recipe (module docstring): (x0, given modality) -> sequences."""
    layout = experiment.layout
    device = plain.model.embed_tokens.weight.device
    half = torch.autocast(device.type, dtype=torch.float16) if autocast == "float16" else nullcontext()

    @torch.no_grad()
    def one(x: Tensor, generated: int) -> Tensor:
        targets = (layout.position_modality == generated).nonzero()[:, 0].to(device)
        condition = (layout.position_modality == 1 - generated).to(device)
        allowed = layout.vocab_masks[generated].to(device)
        rows = layout.logit_positions(targets.cpu()).to(device)
        x = x.clone()
        x[:, targets] = layout.mask_id
        counts = per_step_counts("arccos", len(targets), min(steps, len(targets)))
        for i, count in enumerate(counts):
            t = 1.0 - i / len(counts)
            padding = layout.attention_mask(x)
            with half:
                cond = plain.logits(x, padding)
                uncond = plain.logits(x.masked_fill(condition, layout.mask_id), padding)
            w = cfg_scale * (1.0 - t)
            logits = (uncond + (1.0 + w) * (cond - uncond))[0, rows].masked_fill(~allowed, float("-inf"))
            log_probs = logits.log_softmax(-1)
            gumbel = -torch.log(-torch.log(torch.rand(log_probs.shape, device=device).clamp(1e-20, 1.0)))
            draw = (log_probs + gumbel).argmax(-1)
            picked = log_probs.gather(1, draw[:, None])[:, 0]
            noise = -torch.log(-torch.log(torch.rand(len(targets), device=device).clamp(1e-20, 1.0)))
            masked = x[0, targets] == layout.mask_id
            score = (picked + 10.0 * t * noise).masked_fill(~masked, -math.inf)
            reveal = score.topk(min(count, int(masked.sum()))).indices
            x[0, targets[reveal]] = draw[reveal]
        return x

    def generate(x0: Tensor, given: int) -> Tensor:
        return torch.cat([one(x0[b : b + 1], 1 - given) for b in range(x0.shape[0])])

    return generate
