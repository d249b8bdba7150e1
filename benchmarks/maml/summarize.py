"""Collect ``benchmarks/maml/results/*.json`` (from ``mandril maml-rl test``) into Markdown tables.

Usage: ``python benchmarks/maml/summarize.py benchmarks/maml/results > benchmarks/maml/results/summary.md``
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

COLUMNS = {
    "bandit": ["maml_pre", "maml_post", "last_post", "init_post", "maml_budget_matched", "random", "greedy", "epsilon_greedy", "ucb1",
               "thompson", "oracle"],
    "mdp": ["maml_pre", "maml_post", "last_post", "init_post", "maml_budget_matched", "random", "optimal"],
}


def cell(summary: dict, key: str) -> str:
    s = summary.get(key)
    return "" if s is None else f"{s['mean']:.1f} ± {s['ci_half_width']:.1f}"


def main(folder: str) -> None:
    groups: dict[str, list] = {"bandit": [], "mdp": []}
    for path in sorted(Path(folder).glob("*.json")):
        if path.stem.endswith(("-init", "-last")):
            continue
        result = json.loads(path.read_text())
        summary = dict(result["summary"])
        for suffix in ("init", "last"):
            other = path.with_name(f"{path.stem}-{suffix}.json")
            if other.is_file():
                summary[f"{suffix}_post"] = json.loads(other.read_text())["summary"]["maml_post"]
        p = result["protocol"]
        group = "bandit" if "oracle" in summary else "mdp"
        groups[group].append((result["name"], f"{p['n']} {p['unit']}", result["n_tasks"], result["iteration"], summary))
    for group, rows in groups.items():
        if not rows:
            continue
        rows.sort(key=lambda r: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", r[0])])
        header = ["config", "n", "tasks", "iters", *COLUMNS[group]]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, n, tasks, iters, summary in rows:
            print("| " + " | ".join([name, n, str(tasks), str(iters), *(cell(summary, c) for c in COLUMNS[group])]) + " |")
        print()
    print("Totals over n; mean ± half-width of the 95% bootstrap CI of the mean over held-out tasks. maml_pre/maml_post: "
          "best.pt (selected on train-split validation tasks); last_post: the last parameters; init_post: the same inner "
          "step from the initial (un-meta-trained) parameters.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "results"))
