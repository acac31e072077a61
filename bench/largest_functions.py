"""The longest functions of hftl (lines from `def` to the end of the body), and the root modules.

    python bench/largest_functions.py [--top 10] [--root DIR]

The architecture issue's measure of "no seam": before the split, ``finetune.run`` was 129 lines.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def functions(root: Path) -> list[tuple[int, str]]:
    found = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((node.end_lineno - node.lineno + 1, f"{path.relative_to(root.parent)}:{node.lineno} {node.name}"))
    return sorted(found, reverse=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--root", type=Path, default=REPO / "hftl", help="the package folder (default: this checkout's hftl/)")
    args = p.parse_args()
    root_modules = sorted(f.name for f in args.root.glob("*.py") if f.name != "__init__.py")
    print(f"root modules ({args.root}/*.py besides __init__.py): {len(root_modules)}: {' '.join(root_modules)}")
    for lines, where in functions(args.root)[: args.top]:
        print(f"{lines:5d}  {where}")


if __name__ == "__main__":
    main()
