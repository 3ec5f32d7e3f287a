"""benchmarks/demo_batching.py on a tiny run: it answers both ways, finds the answers equal and writes its JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "demo_batching.py"


def test_the_batching_benchmark_writes_equal_answers_and_the_machine(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "demo_batching.json"
    command = [sys.executable, str(SCRIPT), str(tiny_run), "--requests", "2", "--rounds", "1", "--out", str(out)]
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    result = json.loads(out.read_text())
    assert result["requests"] == 2 and result["machine"]["device"] == "cpu"
    for mode in ("report_to_image", "image_to_report"):
        numbers = result["modes"][mode]
        assert numbers["answers_equal"] is True
        assert len(numbers["rounds"]["one_by_one"]) == len(numbers["rounds"]["together"]) == 1
        assert numbers["one_by_one_s"] == round(numbers["rounds"]["one_by_one"][0], 3)  # the median of one round
        assert numbers["together_s"] == round(numbers["rounds"]["together"][0], 3)
