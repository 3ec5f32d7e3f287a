"""Behaviour is asked of the configured task, never chosen by a task's name outside the task modules."""

from __future__ import annotations

import ast
from pathlib import Path

import medim
from medim.registry import TASKS

PACKAGE = Path(medim.__file__).parent


def test_no_module_outside_the_tasks_package_names_a_task() -> None:
    names = set(TASKS.names())
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent == PACKAGE / "tasks":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    assert names >= {"text_to_image", "image_to_text", "joint", "multitask"}
    assert found == [], "task names outside medim/tasks (ask the configured task instead): " + ", ".join(found)
