"""Report language alone: masked diffusion against next-token prediction on the real IU X-ray reports.

    medim train iu_reports && medim train iu_reports_autoregressive
    python benchmarks/report_language.py runs/iu_reports runs/iu_reports_autoregressive

Both runs model the FINDINGS + IMPRESSION of the Open-i reports with no image (task `report_only`), with the
same tokenizer, layout, parameter count (within 0.4 %), batch and steps. On the test split it measures:

- held-out likelihood in bits per report token: the diffusion model's negative ELBO (an upper bound on its
  negative log-likelihood; MDLM's estimator, `medim.evaluation.likelihood`) and the autoregressive model's
  exact negative log-likelihood, with their paired difference (same reports);
- infilling: each model is given a test report's FINDINGS and writes the rest (its IMPRESSION). The report
  labeler (`medim.data.cxr_labeler`) reads the written impression: its finding F1 against the real
  impression's labels, and the share of reports that contradict themselves (an observation stated in one
  place and denied in another, FINDINGS included), beside the most common training impression, a random
  training impression and the real one.

Writes JSON and a Markdown table (`--out`). The generated texts are not written: the reports' licence
(CC BY-NC-ND) keeps them out of the repository.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from medim.data.cxr_labeler import OBSERVATIONS, contradicted_observations, positive_observations  # noqa: E402
from medim.data.iu_xray import IUXray  # noqa: E402
from medim.evaluation.bootstrap import BootstrapSettings, intervals, mean_statistic  # noqa: E402
from medim.evaluation.directions import TEXT_GIVEN_IMAGE  # noqa: E402
from medim.evaluation.finding_metrics import finding_statistic  # noqa: E402
from medim.evaluation.likelihood import held_out_nelbo, paired_difference  # noqa: E402
from medim.experiment import Experiment  # noqa: E402
from medim.runs import load_run  # noqa: E402
from medim.tasks.request import GenerationRequest  # noqa: E402
from medim.versions import package_versions  # noqa: E402

LABELS = OBSERVATIONS
#: Room the written impression gets at least, in report tokens: longer FINDINGS are left out (and counted).
MIN_ROOM = 12
SEED = 0
SECTIONS = ("findings", "impression")


def sections(experiment: Experiment, split: str) -> tuple[list[str], list[str], list[str]]:
    """(ids, FINDINGS, IMPRESSION) of the split's reports that have both, cleaned as the run's data cleans them."""
    params = experiment.config.data.params
    common = {k: getattr(params, k) for k in ("reports", "anonymised", "val_fraction", "test_fraction")}
    read = {name: IUXray(IUXray.Params(**common, sections=[name])).report_split(split) for name in SECTIONS}
    impressions = dict(zip(read["impression"].ids, read["impression"].reports))
    pairs = [(i, f, impressions[i]) for i, f in zip(read["findings"].ids, read["findings"].reports) if i in impressions]
    return [p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]


def fits(experiment: Experiment, findings: list[str]) -> list[bool]:
    """Whether each FINDINGS leaves the written impression at least MIN_ROOM tokens of the report segment."""
    room = len(experiment.layout.text_positions) - MIN_ROOM
    return [len(ids) <= room for ids in experiment.text_tokenizer.encode(findings)]


@torch.no_grad()
def write_impressions(experiment: Experiment, backbone: torch.nn.Module, findings: list[str], batch: int) -> list[str]:
    """Each report finished from its FINDINGS by the run's own sampler and step count: the written continuation."""
    layout, task, config = experiment.layout, experiment.task, experiment.config
    device = next(backbone.parameters()).device
    written = []
    for start in range(0, len(findings), batch):
        chunk = findings[start : start + batch]
        request = GenerationRequest.of(report_openings=chunk)
        prompt = task.prompt(request, device)
        tokens = task.infill(
            backbone,
            experiment.sampler,
            prompt,
            num_steps=config.eval.num_steps,
            cfg_scale=0.0,
            seed=[SEED * 1_000_003 + start + i for i in range(len(chunk))],
        )
        text = tokens[:, layout.text_positions].cpu()
        given = prompt.known[:, layout.text_positions].sum(1).cpu()
        tokenizer = experiment.text_tokenizer
        for row, count in zip(text.tolist(), given.tolist()):
            rest = row[count:]
            rest = rest[: rest.index(tokenizer.eos_id)] if tokenizer.eos_id in rest else rest
            written.append(tokenizer.decode([[i for i in rest if i < tokenizer.vocab_size]])[0])
    return written


def infill_scores(findings: list[str], impressions: list[str], reference: list[str]) -> dict[str, Any]:
    """Finding F1 of `impressions` against the real ones, and the self-contradiction share of FINDINGS + them."""
    predicted = [positive_observations(text) & set(LABELS) for text in impressions]
    truth = [positive_observations(text) & set(LABELS) for text in reference]
    settings = BootstrapSettings()
    scores = intervals(finding_statistic(predicted, truth, LABELS), len(truth), settings)
    contradicts = [float(bool(contradicted_observations(f"{f} {i}"))) for f, i in zip(findings, impressions)]
    scores.update(intervals(mean_statistic({"self_contradicting": contradicts}), len(truth), settings))
    scores["empty"] = {"value": float(np.mean([not text.strip() for text in impressions]))}
    return {name: scores[name] for name in ("micro_f1", "macro_f1", "exact_match", "self_contradicting", "empty")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("diffusion", type=Path, help="run directory of iu_reports (masked diffusion)")
    parser.add_argument("autoregressive", type=Path, help="run directory of iu_reports_autoregressive")
    parser.add_argument("--samples", type=int, default=200, help="test reports to finish from their FINDINGS")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/report_language.json"))
    args = parser.parse_args()
    torch.manual_seed(SEED)
    started = time.perf_counter()
    runs = {"masked_diffusion": args.diffusion, "autoregressive": args.autoregressive}
    result: dict[str, Any] = {"runs": {k: str(v) for k, v in runs.items()}, "likelihood": {}, "infill": {}}
    per_pair: dict[str, list[float]] = {}
    chosen: tuple[list[str], list[str]] | None = None
    for name, run in runs.items():
        experiment, backbone = load_run(run)
        if experiment.config.task.name != "report_only":
            raise SystemExit(f"{run} was trained with task {experiment.config.task.name!r}; train iu_reports runs")
        print(f"{name}: held-out likelihood of the test reports", flush=True)
        bound = held_out_nelbo(experiment, backbone, "test", [TEXT_GIVEN_IMAGE])[TEXT_GIVEN_IMAGE.name]
        per_pair[name] = [v / math.log(2) for v in bound.per_pair]
        result["likelihood"][name] = {
            "bits_per_token": bound.value / math.log(2),
            "stderr": bound.stderr / math.log(2),
            "kind": "exact" if experiment.objective.decodes_left_to_right else "upper bound (negative ELBO)",
            "reports": len(bound.per_pair),
            "steps": experiment.config.train.steps,
            "parameters_without_embedding": sum(p.numel() for p in backbone.parameters())
            - backbone.output_weight().numel(),
        }
        if chosen is None:
            ids, findings, impressions = sections(experiment, "test")
            keep = [k for k, ok in enumerate(fits(experiment, findings)) if ok][: args.samples]
            result["infill_reports"] = {"with_both_sections": len(ids), "findings_fit": len(keep)}
            chosen = ([findings[k] for k in keep], [impressions[k] for k in keep])
            train_impressions = sections(experiment, "train")[2]
            most_common = Counter(train_impressions).most_common(1)[0][0]
            result["infill"]["most_common_training_impression"] = infill_scores(
                chosen[0], [most_common] * len(keep), chosen[1]
            )
            random.Random(SEED).shuffle(train_impressions)
            result["infill"]["random_training_impression"] = infill_scores(
                chosen[0], train_impressions[: len(keep)], chosen[1]
            )
            result["infill"]["real_impression"] = infill_scores(chosen[0], chosen[1], chosen[1])
        print(f"{name}: writing {len(chosen[0])} impressions from their findings", flush=True)
        written = write_impressions(experiment, backbone, chosen[0], args.batch)
        result["infill"][name] = infill_scores(chosen[0], written, chosen[1])
    difference = paired_difference(per_pair["masked_diffusion"], per_pair["autoregressive"])
    if difference is not None:
        result["likelihood"]["difference_diffusion_minus_autoregressive"] = {
            "bits_per_token": difference[0],
            "stderr": difference[1],
        }
    result["machine"] = {"platform": platform.platform(), "threads": torch.get_num_threads(), **package_versions()}
    result["seconds"] = time.perf_counter() - started
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    """The two tables: likelihood, and the labeler's reading of the written impressions."""
    lines = ["| model | held-out bits per report token | what it is | steps | parameters (no embedding) |",
             "|---|---|---|---|---|"]  # fmt: skip
    for name in ("masked_diffusion", "autoregressive"):
        entry = result["likelihood"][name]
        lines.append(
            f"| {name.replace('_', ' ')} | {entry['bits_per_token']:.3f} ± {entry['stderr']:.3f} | {entry['kind']} "
            f"| {entry['steps']} | {entry['parameters_without_embedding']:,} |"
        )
    if "difference_diffusion_minus_autoregressive" in result["likelihood"]:
        diff = result["likelihood"]["difference_diffusion_minus_autoregressive"]
        lines.append(f"\nPaired difference (diffusion − autoregressive): {diff['bits_per_token']:+.3f} ± "
                     f"{diff['stderr']:.3f} bits per token.")  # fmt: skip
    counts = result["infill_reports"]
    lines += [
        "",
        f"IMPRESSION written from FINDINGS ({counts['findings_fit']} test reports whose FINDINGS leave room; "
        f"{counts['with_both_sections']} have both sections):",
        "",
        "| impression | finding micro-F1 vs the real one | macro-F1 | exact match | self-contradicting | empty |",
        "|---|---|---|---|---|---|",
    ]
    names = ("masked_diffusion", "autoregressive", "most_common_training_impression", "random_training_impression")
    for name in (*names, "real_impression"):
        s = result["infill"][name]

        def cell(metric: str, s: dict[str, Any] = s) -> str:
            low, high = s[metric]["ci95"]
            return f"{s[metric]['value']:.3f} [{low:.3f}, {high:.3f}]"

        lines.append(
            f"| {name.replace('_', ' ')} | {cell('micro_f1')} | {cell('macro_f1')} | {cell('exact_match')} "
            f"| {cell('self_contradicting')} | {s['empty']['value']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
