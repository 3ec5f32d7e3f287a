"""Peak resident memory of opening a MeDiM-style released checkpoint, lean (now) and whole (before), as JSON.

    python benchmarks/release_load.py --params 1e9 --out benchmarks/results/release_load_cpu.json

Fabricates, in a temporary folder, a release with the key names and structure of MeDiM's
(`tests/helpers/release.py`: a modified GemmaForCausalLM saved by accelerate, lm_head dropped as
tied, `adaLN_modulation` and `time_embedder` tensors) at about `--params` float32 parameters: a
Gemma of hidden 2048, MLP 8192, with as many layers as reach the size and the `medim_paper`
layout's 40196 vocabulary rows; as `model.safetensors` and as `pytorch_model.bin`. Each file is
read once beforehand, so every measurement finds it in the page cache. Then, in a fresh
subprocess each (so no measurement inherits another's memory), it opens the release as
`medim.runs.open_release` does (read the release, the layer count from its keys, `paper/medim`
with the dry run's published tokenizer shapes and a config-only Liquid folder, the backbone on the
meta device, `load_release`) for float32 and bfloat16 weights, with the code of this working tree
("new") and with `medim/backbones/medim_release.py` as of `--old-ref` ("old": the whole state
dict read first). Each child reports the peak resident memory (VmHWM, which counts mapped file
pages as well) right after loading and after touching every weight page once (as a first forward
would: weights still backed by the file's mapping only become resident then), its resident memory
before reading (interpreter, torch, medim), the seconds the load and the first touch took and a float64 checksum of the
weights (old and new must agree). The fabricated files are deleted at the end (unless `--keep`).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import safetensors
import torch
from safetensors.torch import save_file
from transformers import GemmaConfig, GemmaForCausalLM

from medim.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
#: The last commit whose `read_release` read the whole state dict (before the lean load).
DEFAULT_OLD_REF = "001ff25"
VOCAB_ROWS = 40196  # the medim_paper layout: Llama-2 text + <boi>/<eoi>/<eos> + mask + 8192 image codes
TIME_FREQUENCIES = 256  # the sinusoid width of MeDiM's timestep embedder


# -- the fabricated release ----------------------------------------------------------------------


def gemma_config(hidden: int, intermediate: int, heads: int, layers: int) -> GemmaConfig:
    """The Gemma the release was cut from (as Liquid's config.json, at the benchmark's size)."""
    return GemmaConfig(
        vocab_size=VOCAB_ROWS,
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        head_dim=hidden // heads,
        max_position_embeddings=2048,
    )


def release_shapes(config: GemmaConfig) -> dict[str, tuple[int, ...]]:
    """Key -> shape of MeDiM's modified GemmaForCausalLM state dict (lm_head dropped as tied)."""
    with torch.device("meta"):
        model = GemmaForCausalLM(config)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    hidden = config.hidden_size
    for i in range(config.num_hidden_layers):
        shapes[f"model.layers.{i}.adaLN_modulation.weight"] = (6 * hidden, hidden)
        shapes[f"model.layers.{i}.adaLN_modulation.bias"] = (6 * hidden,)
    shapes["model.time_embedder.mlp.0.weight"] = (hidden, TIME_FREQUENCIES)
    shapes["model.time_embedder.mlp.0.bias"] = (hidden,)
    shapes["model.time_embedder.mlp.2.weight"] = (hidden, hidden)
    shapes["model.time_embedder.mlp.2.bias"] = (hidden,)
    return shapes


def layers_for(params: float, hidden: int, intermediate: int, heads: int) -> int:
    """The layer count whose release comes closest to `params` parameters."""
    one = sum(_numel(s) for s in release_shapes(gemma_config(hidden, intermediate, heads, 1)).values())
    two = sum(_numel(s) for s in release_shapes(gemma_config(hidden, intermediate, heads, 2)).values())
    per_layer, fixed = two - one, 2 * one - two
    return max(1, round((params - fixed) / per_layer))


def fabricate(folder: Path, config: GemmaConfig, formats: list[str]) -> dict[str, Path]:
    """Liquid's config.json in `folder/liquid`, the release in `folder/<format>`; returns format -> release dir."""
    config.save_pretrained(folder / "liquid")
    generator = torch.Generator().manual_seed(0)
    state = {
        key: torch.empty(shape).normal_(0.0, 0.02, generator=generator) for key, shape in release_shapes(config).items()
    }
    releases = {}
    for name in formats:
        releases[name] = folder / name
        releases[name].mkdir()
        if name == "safetensors":
            save_file(state, str(releases[name] / "model.safetensors"), metadata={"format": "pt"})
        else:
            torch.save(state, releases[name] / "pytorch_model.bin")
    return releases


def warm_page_cache(path: Path) -> None:
    """Flush the freshly written file and read it once, so every child reads it from the page cache alike."""
    os.sync()
    with path.open("rb", buffering=0) as f:
        while f.read(64 * 2**20):
            pass


def _numel(shape: tuple[int, ...]) -> int:
    return int(torch.Size(shape).numel())


# -- one measurement (in a child process) --------------------------------------------------------


def status_bytes(field: str) -> int:
    """A field of /proc/self/status (VmRSS, VmHWM, ...) in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def release_module(impl: str, old_source: Path | None) -> Any:
    """medim's release module: this tree's ('new') or the file from --old-ref ('old')."""
    if impl == "new":
        from medim.backbones import medim_release

        return medim_release
    spec = importlib.util.spec_from_file_location("medim_release_old", old_source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def open_release_dry(module: Any, release: Path, liquid: Path, dtype: str) -> torch.nn.Module:
    """`medim.runs.open_release` with the paper experiment's dry-run tokenizer shapes instead of their files."""
    from medim.config import load_experiment
    from medim.experiment import build_experiment

    state = module.read_release(release)
    overrides = [f"backbone.checkpoint={liquid}", f"backbone.dtype={dtype}"]
    config = load_experiment("paper/medim", [*overrides, f"backbone.num_layers={module.release_num_layers(state)}"])
    built = build_experiment(config, progress=False, data=False, dry_run=True)
    backbone = built.build_backbone(empty=True)
    module.load_release(backbone, state)
    return backbone.eval()


def touch_every_page(module: torch.nn.Module) -> None:
    """Read one element per 4 KiB page of every parameter, so file-backed weights become resident."""
    with torch.no_grad():
        for parameter in module.parameters():
            flat = parameter.detach().reshape(-1)
            flat[:: max(1, 4096 // flat.element_size())].sum()


def checksum(module: torch.nn.Module) -> float:
    with torch.no_grad():
        return float(sum(torch.sum(p.detach(), dtype=torch.float64) for p in module.parameters()))


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """One load, in this (fresh) process: memory, time and checksum."""
    module = release_module(args.impl, args.old_source)
    baseline = status_bytes("VmRSS")
    start = time.perf_counter()
    backbone = open_release_dry(module, args.release, args.liquid, args.dtype)
    seconds = time.perf_counter() - start
    after_load = status_bytes("VmHWM")
    start = time.perf_counter()
    touch_every_page(backbone)
    touched = time.perf_counter() - start
    return {
        "baseline_rss_bytes": baseline,
        "peak_after_load_bytes": after_load,
        "peak_resident_bytes": status_bytes("VmHWM"),
        "rss_file_bytes_at_end": status_bytes("RssFile"),
        "load_seconds": round(seconds, 2),
        "touch_seconds": round(touched, 2),  # paging in what the load left in the file's mapping
        "parameters": sum(p.numel() for p in backbone.parameters()),
        "checksum": checksum(backbone),
    }


# -- the driver ----------------------------------------------------------------------------------


def run_child(impl: str, release: Path, liquid: Path, dtype: str, old_source: Path | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", impl, "--release", str(release), "--liquid", str(liquid)]
    command += ["--dtype", dtype] + (["--old-source", str(old_source)] if old_source else [])
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{impl} {release.name} {dtype} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def old_release_source(ref: str, folder: Path) -> tuple[Path | None, str | None]:
    """`medim/backbones/medim_release.py` as of `ref`, written into `folder` (None where git cannot give it)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        source = subprocess.run(
            ["git", "show", f"{commit}:medim/backbones/medim_release.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"no old path to compare: {exc}", file=sys.stderr)
        return None, None
    path = folder / "medim_release_old.py"
    path.write_text(source, encoding="utf-8")
    return path, commit


def machine() -> dict[str, Any]:
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemTotal:"))
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_bytes": total,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
    }


def summarise(row: dict[str, Any], file_bytes: int) -> dict[str, Any]:
    """Peaks as multiples of the file's size (the target: peak_resident <= 1.2 x file)."""
    return row | {
        "peak_after_load_over_file": round(row["peak_after_load_bytes"] / file_bytes, 3),
        "peak_resident_over_file": round(row["peak_resident_bytes"] / file_bytes, 3),
        "peak_resident_minus_baseline_over_file": round(
            (row["peak_resident_bytes"] - row["baseline_rss_bytes"]) / file_bytes, 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=float, default=1e9, help="about this many float32 parameters")
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--intermediate", type=int, default=8192)
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--formats", default="safetensors,bin", help="comma-separated: safetensors, bin")
    parser.add_argument("--dtypes", default="float32,bfloat16", help="backbone.dtype values to load into")
    parser.add_argument("--old-ref", default=DEFAULT_OLD_REF, help="git ref of the old medim_release.py; '' skips")
    parser.add_argument("--workdir", type=Path, help="where to fabricate the release (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the fabricated files")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--child", choices=["new", "old"], help=argparse.SUPPRESS)
    parser.add_argument("--release", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--liquid", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", help=argparse.SUPPRESS)
    parser.add_argument("--old-source", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.impl = args.child
        print(json.dumps(measure(args)))
        return
    folder = Path(tempfile.mkdtemp(prefix="release_load_", dir=args.workdir))
    try:
        report = benchmark(args, folder)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    if args.out:
        atomic_write_json(args.out, report)
        print(f"written: {args.out}")


def benchmark(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Fabricate the release in `folder`, then measure every (format, dtype, implementation) in a child each."""
    layers = layers_for(args.params, args.hidden, args.intermediate, args.heads)
    config = gemma_config(args.hidden, args.intermediate, args.heads, layers)
    started = time.perf_counter()
    releases = fabricate(folder, config, args.formats.split(","))
    fabricated = time.perf_counter() - started
    old_source, old_commit = old_release_source(args.old_ref, folder) if args.old_ref else (None, None)
    results = []
    for name, release in releases.items():
        weights = next(release.iterdir())
        file_bytes = weights.stat().st_size
        warm_page_cache(weights)
        for dtype in args.dtypes.split(","):
            for impl in ["new", "old"] if old_source else ["new"]:
                row = run_child(impl, release, folder / "liquid", dtype, old_source)
                row = summarise(
                    {"format": name, "dtype": dtype, "impl": impl, "file_bytes": file_bytes, **row}, file_bytes
                )
                results.append(row)
                print(
                    f"{name:<12} {dtype:<9} {impl}: peak {row['peak_resident_bytes'] / 2**30:.2f} GiB = "
                    f"{row['peak_resident_over_file']:.2f} x file ({file_bytes / 2**30:.2f} GiB; "
                    f"after load {row['peak_after_load_over_file']:.2f} x), load {row['load_seconds']:.1f} s "
                    f"+ first touch {row['touch_seconds']:.1f} s",
                    flush=True,
                )
    return {
        "benchmark": "release_load",
        "machine": machine(),
        "release": {
            "parameters": sum(_numel(s) for s in release_shapes(config).values()),
            "layers": layers,
            "hidden": args.hidden,
            "intermediate": args.intermediate,
            "heads": args.heads,
            "vocab_rows": VOCAB_ROWS,
            "fabricated_seconds": round(fabricated, 1),
        },
        "old": {"ref": args.old_ref, "commit": old_commit},
        "target": "peak_resident_over_file <= 1.2 for the new path",
        "results": results,
        "checksums_agree": all(
            len({r["checksum"] for r in results if (r["format"], r["dtype"]) == key}) == 1
            for key in {(r["format"], r["dtype"]) for r in results}
        ),
    }


if __name__ == "__main__":
    main()
