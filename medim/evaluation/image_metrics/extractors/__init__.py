"""Built-in feature extractors, one per file, each registered with `register_extractor`.

pytorch_fid_inception     pytorch-fid's FID Inception (pool3, 2048-d): FID as MeDiM reports it
torch_fidelity_inception  torch-fidelity's inception-v3-compat: 2048-d features (KID) and logits (IS)
xrv_densenet121           torchxrayvision's chest X-ray DenseNet-121 (1024-d), an optional domain encoder
"""

#: Modules here that register nothing (none): the registry imports every module of this package.
SUPPORT_MODULES: frozenset[str] = frozenset()
