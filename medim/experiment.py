"""Building an experiment's components from its validated config, in dependency order.

data -> tokenizers (trained or loaded, cached) -> layout -> noise -> objective ->
task -> sampler -> backbone. Training, generation and evaluation all start here, so the
same YAML always yields the same components. Checks that need built components
(image size vs tokenizer, vocabulary vs backbone) happen here with clear errors,
before anything is written to a run directory.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch

from medim.backbones.base import Backbone, empty_weights
from medim.config import ExperimentConfig
from medim.data.paired import PairedDataset
from medim.data.token_shards import DEFAULT_SHARD_SIZE, TokenShards, ensure_shards
from medim.errors import ConfigError
from medim.io import cache_root, stable_hash
from medim.noise.base import MaskingSchedule
from medim.objectives.base import Objective
from medim.samplers.autoregressive import AutoregressiveSampler
from medim.samplers.base import Sampler
from medim.tasks.base import MaskedDiffusionTask
from medim.tokenizers.base import ImageTokenizer, TextTokenizer, TokenizerCorpus
from medim.tokenizers.layouts import SequenceLayout

logger = logging.getLogger(__name__)

#: Decoded image bytes tokenization holds at a time (a shard is encoded in chunks of about this size).
IMAGE_READ_BYTES = 256 * 2**20


@dataclass
class Experiment:
    """The built components of one experiment (everything but the backbone's weights)."""

    config: ExperimentConfig
    dataset: PairedDataset | None
    image_tokenizer: ImageTokenizer
    text_tokenizer: TextTokenizer
    layout: SequenceLayout
    noise: MaskingSchedule
    objective: Objective
    task: MaskedDiffusionTask
    sampler: Sampler
    _tokens: dict[str, TokenShards] = field(default_factory=dict)

    def build_backbone(self, *, empty: bool = False) -> Backbone:
        """A freshly initialised backbone sized for the layout (seeded by the experiment seed).

        `empty=True` builds it inside `empty_weights()`: parameters on the meta device and
        no checkpoint read (dry runs, or before loading a full state dict). Every backbone, built-in
        or plugin, is checked against its contract by one forward that costs nothing
        (`medim.backbones.contract`), so a wrong shape stops here, not in training.
        """
        from medim.backbones.contract import check_backbone

        torch.manual_seed(self.config.seed)
        with empty_weights() if empty else nullcontext():
            backbone = self.config.backbone.build(
                vocab_size=self.layout.vocab_size,
                max_seq_len=self.layout.seq_len,
                layout=self.layout,
            )
        rows = backbone.output_weight().shape[0]
        if rows < self.layout.vocab_size:
            raise ConfigError(
                f"backbone {self.config.backbone.name!r} has {rows} vocabulary rows but layout "
                f"{self.config.layout.name!r} needs {self.layout.vocab_size}"
            )
        if self.objective.token_levels and not backbone.accepts_token_levels:
            raise ConfigError(
                f"objective.time_sampling: independent gives every position its own noise level, but backbone "
                f"{self.config.backbone.name!r} takes one per sample; use time_sampling: shared or a backbone "
                f"that accepts [B, L] noise levels (hf_decoder, liquid, llama, hf_checkpoint)"
            )
        if self.objective.needs_causal_backbone and not backbone.is_causal:
            raise ConfigError(
                f"objective {self.config.objective.name!r} predicts each token from the ones before it, but "
                f"backbone {self.config.backbone.name!r} attends both ways; set backbone.bidirectional: false"
            )
        check_backbone(backbone, self.config.backbone.name, self.layout.vocab_size, self.layout.seq_len)
        return backbone

    def tokens(self, split: str, *, progress: bool = False, shard_size: int = DEFAULT_SHARD_SIZE) -> TokenShards:
        """Every pair of a split as layout sequences [N, L], from memory-mapped shards tokenized once.

        The shards live in the cache keyed by the dataset and layout; their manifest
        records the tokenizers' and layout's identity, so a changed tokenizer (weights,
        image preprocessing, params) or layout rebuilds them instead of reusing them.
        """
        if self.dataset is None:
            raise ConfigError(f"experiment {self.config.name!r} was built without its dataset")
        if split not in self._tokens:
            data = self.dataset.split(split)
            identity = {
                "dataset": self.dataset.identity(),
                "split": split,
                "image_tokenizer": self.image_tokenizer.identity(),
                "text_tokenizer": self.text_tokenizer.identity(),
                "layout": self.config.layout.block(),
            }
            key = stable_hash({"dataset": identity["dataset"], "layout": self.config.layout.name})
            directory = cache_root() / "tokens" / key / split

            # A shard's images are read (decoded, for file-backed data) a bounded number at a time: a multiple of
            # 64 images, so tokenizers that encode in fixed batches see the same batches whatever the shard size.
            chunk = max(64, IMAGE_READ_BYTES // (3 * self.dataset.image_size**2) // 64 * 64)

            def make_rows(start: int, stop: int) -> tuple[np.ndarray, int]:
                codes = torch.cat(
                    [
                        self.image_tokenizer.encode(data.images[i : min(i + chunk, stop)])
                        for i in range(start, stop, chunk)
                    ]
                )
                packed = self.layout.pack_text(list(data.reports[start:stop]))
                return self.layout.pack(codes, packed.ids).numpy(), packed.truncated

            shards = ensure_shards(
                directory,
                identity,
                len(data),
                make_rows,
                shard_size=shard_size,
                progress=progress,
                label=f"tokenize {split}",
            )
            if shards.manifest["truncated"]:
                logger.warning(
                    "%d of %d %s reports are longer than the layout's report segment and were cut; "
                    "raise layout.max_text_tokens to keep them whole",
                    shards.manifest["truncated"], len(data), split,
                )  # fmt: skip
            self._tokens[split] = shards
        return self._tokens[split]


def build_experiment(
    config: ExperimentConfig, progress: bool = True, *, data: bool = True, dry_run: bool = False
) -> Experiment:
    """Build (and, for trainable tokenizers, train or load from cache) every component.

    `data=False` skips the dataset when no tokenizer learns from it (generating from a
    released checkpoint); `dry_run=True` also skips loading tokenizer weights: file-backed
    tokenizers only report their shapes (see `ImageTokenizer.prepare_shapes`).
    """
    image_tokenizer: ImageTokenizer = config.tokenizers.image.build()
    text_tokenizer: TextTokenizer = config.tokenizers.text.build()
    tokenizers = (image_tokenizer, text_tokenizer)
    dataset: PairedDataset | None = None
    corpus: TokenizerCorpus | None = None
    if (data and not dry_run) or any(t.needs_corpus() for t in tokenizers):
        dataset = config.data.build()
        train = dataset.split("train", progress)
        corpus = TokenizerCorpus(images=train.images, texts=train.reports, identity=str(dataset.identity()))
        if image_tokenizer.image_size != dataset.image_size:
            raise ConfigError(
                f"tokenizers.image.image_size is {image_tokenizer.image_size} but data "
                f"{config.data.name!r} has {dataset.image_size}-pixel images; make them equal"
            )
    for tokenizer in tokenizers:
        if dry_run and not tokenizer.needs_corpus():
            tokenizer.prepare_shapes()
        else:
            tokenizer.prepare(corpus, cache_root())
    layout: SequenceLayout = config.layout.build(image_tokenizer=image_tokenizer, text_tokenizer=text_tokenizer)
    noise: MaskingSchedule = config.noise.build()
    objective: Objective = config.objective.build(layout=layout, noise=noise)
    task: MaskedDiffusionTask = config.task.build(layout=layout, objective=objective)
    sampler: Sampler = config.sampler.build(mask_id=layout.mask_id, noise=noise)
    check_decoding(objective, sampler, config)
    return Experiment(config, dataset, image_tokenizer, text_tokenizer, layout, noise, objective, task, sampler)


def check_decoding(objective: Objective, sampler: Sampler, config: ExperimentConfig) -> None:
    """A left-to-right objective needs the left-to-right sampler, and masked diffusion a diffusion sampler."""
    left_to_right = isinstance(sampler, AutoregressiveSampler)
    if objective.decodes_left_to_right and not left_to_right:
        raise ConfigError(
            f"objective {config.objective.name!r} trains a model that writes one token at a time; "
            f"use sampler: autoregressive (got {config.sampler.name!r})"
        )
    if left_to_right and not objective.decodes_left_to_right:
        raise ConfigError(
            f"sampler 'autoregressive' decodes next-token models, but objective {config.objective.name!r} "
            f"trains a masked-diffusion denoiser; pick a diffusion sampler (maskgit, ancestral, ...)"
        )
