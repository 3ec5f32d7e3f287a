"""What `medim bench` leaves in its output folder: `bench.json` (every number and the machine), `bench.md` (the
tables) and `bench.png` (tokens/s and samples/s per arm, when matplotlib is installed: `pip install medim[bench]`)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medim.io import atomic_write_json, atomic_write_text

logger = logging.getLogger(__name__)


def write_report(result: dict[str, Any], out: Path) -> list[Path]:
    """Write the result's files into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "bench.json", out / "bench.md"]
    atomic_write_json(written[0], result)
    atomic_write_text(written[1], markdown(result))
    plot = out / "bench.png"
    if write_plot(result, plot):
        written.append(plot)
    return written


def markdown(result: dict[str, Any]) -> str:
    """The result as tables: one row per arm, per case."""
    machine = result["machine"]
    lines = [
        f"# medim bench — preset {result['preset']['name']}",
        "",
        f"{machine['date']} · {machine.get('gpu', machine['processor'])} · {machine['torch_threads']} threads · "
        f"torch {machine['versions'].get('torch')} · transformers {machine['versions'].get('transformers')}",
    ]
    for name, case in result["cases"].items():
        lines += ["", f"## {name} (L = {case['sequence_length']}, V = {case['vocab_size']})"]
        if "train" in case:
            train = case["train"]
            lines += [
                "",
                f"Training: {train['parameters']:,} parameters, global batch {train['global_batch']}.",
                "",
                "| arm | s/step | tokens/s | peak memory (GiB) | MFU |",
                "|---|---|---|---|---|",
            ]
            for arm, row in train["arms"].items():
                mfu = "–" if row["model_flop_utilisation"] is None else f"{row['model_flop_utilisation']:.1%}"
                lines.append(
                    f"| {arm} | {row['seconds_per_step']:.3f} | {row['tokens_per_s']:,.0f} | "
                    f"{row['peak_memory_gib']:.3f} | {mfu} |"
                )
            lines += ["", ", ".join(f"{k} **{v:.2f}**" for k, v in train["ratios"].items())]
        if "sample" in case:
            sample = case["sample"]
            lines += [
                "",
                f"Generation: batch {sample['batch']}, {sample['sampler_steps']} steps, "
                f"guidance {sample['cfg_scale']}.",
                "",
                "| arm | images/s (report → image) | reports/s (image → report) |",
                "|---|---|---|",
            ]
            for arm, row in sample["arms"].items():
                lines.append(f"| {arm} | {row['report_to_image_per_s']:.3f} | {row['image_to_report_per_s']:.3f} |")
            lines += ["", ", ".join(f"{k} **{v:.1f}**" for k, v in sample["ratios"].items())]
    return "\n".join(lines) + "\n"


def write_plot(result: dict[str, Any], path: Path) -> bool:
    """Bar charts of training tokens/s and generation samples/s per arm and case; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no plot (pip install 'medim[bench]')")
        return False
    cases = result["cases"]
    panels = [(name, "train", case["train"]) for name, case in cases.items() if "train" in case]
    panels += [(name, "sample", case["sample"]) for name, case in cases.items() if "sample" in case]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False)
    for axis, (name, kind, data) in zip(axes[0], panels):
        arms = list(data["arms"])
        if kind == "train":
            axis.bar(arms, [data["arms"][a]["tokens_per_s"] for a in arms], color="#4c72b0")
            axis.set_ylabel("training tokens/s")
        else:
            width = 0.4
            positions = range(len(arms))
            axis.bar(
                [p - width / 2 for p in positions],
                [data["arms"][a]["report_to_image_per_s"] for a in arms],
                width,
                label="images/s",
            )
            axis.bar(
                [p + width / 2 for p in positions],
                [data["arms"][a]["image_to_report_per_s"] for a in arms],
                width,
                label="reports/s",
            )
            axis.set_xticks(list(positions), arms)
            axis.set_yscale("log")
            axis.legend(fontsize=7)
        axis.set_title(f"{name}: {kind}", fontsize=9)
        axis.tick_params(axis="x", labelrotation=45, labelsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True
