"""The downstream-augmentation experiment: do image-report pairs a model generates help train another model?

MeDiM's claim (its joint-generation table): adding jointly generated pairs to the training data
of a report generator raises its BLEU-1 by 6.43 % and METEOR by 4.80 % on PathGen. `medim downstream
experiments/downstream/augmentation.yaml` tests that claim on any data: a trained run generates pairs
from nothing (`pairs`), one image->text model is trained on the real pairs and another, with the same
tokenizers, seed and budget, on the real plus the generated pairs (`arms`), both write reports for
the same real test images, and a named report-metric protocol scores them with paired-bootstrap
intervals of the relative change (`comparison`); `run` ties the steps together and `config` reads
the YAML.
"""
