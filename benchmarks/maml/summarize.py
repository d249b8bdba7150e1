"""Collect ``benchmarks/maml/results/*.json`` (from ``mandril maml-rl test``) into Markdown tables.

Usage: ``python benchmarks/maml/summarize.py benchmarks/maml/results > benchmarks/maml/results/summary.md``

For ``<name>.json`` (the selected ``best.pt``) it also reads ``<name>-last.json`` (the last
parameters) and ``<name>-init.json`` (the initial parameters) when present.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

COLUMNS = {
    "bandit": ["maml_budget_matched", "maml_post", "last_budget_matched", "last_post", "init_post", "maml_pre", "random",
               "greedy", "epsilon_greedy", "thompson", "ucb1", "ucb1_tuned", "gittins", "oracle"],
    "mdp": ["maml_budget_matched", "maml_post", "last_budget_matched", "last_post", "init_post", "maml_pre", "random", "optimal"],
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
        if result.get("format") != "mandril.maml_rl.test/1":
            continue
        summary = dict(result["summary"])
        for suffix in ("init", "last"):
            other = path.with_name(f"{path.stem}-{suffix}.json")
            if other.is_file():
                theirs = json.loads(other.read_text())["summary"]
                summary[f"{suffix}_post"] = theirs["maml_post"]
                summary[f"{suffix}_budget_matched"] = theirs["maml_budget_matched"]
        p = result["protocol"]
        group = "bandit" if "oracle" in summary else "mdp"
        tuning = result.get("reference_tuning") or {}
        groups[group].append((result["name"], p, result["n_tasks"], result["iteration"], summary, tuning))
    for group, rows in groups.items():
        if not rows:
            continue
        rows.sort(key=lambda r: [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", r[0])])
        header = ["config", "n", "m", "tasks", "iters", *COLUMNS[group]]
        if group == "bandit":
            header += ["tuned c", "tuned gamma"]
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for name, p, tasks, iters, summary, tuning in rows:
            cells = [name, f"{p['n']} {p['unit']}", str(p["adaptation_episodes"]), str(tasks), str(iters),
                     *(cell(summary, c) for c in COLUMNS[group])]
            if group == "bandit":
                start = " (prior)" if tuning.get("ucb1_prior") else ""
                cells += [f"{tuning['ucb1_c']:g}{start}" if "ucb1_c" in tuning else "", f"{tuning['gittins_gamma']:g}" if "gittins_gamma" in tuning else ""]
            print("| " + " | ".join(cells) + " |")
        print()
    print("Totals over the budget n; mean ± half-width of the 95% bootstrap CI of the mean over held-out tasks. m: the "
          "exploration episodes MAML adapts on. maml_budget_matched = m pre + (n - m) post (exploration counted, like the "
          "references); maml_post = n post (exploration free). maml_*: best.pt (selected on train-split validation tasks); "
          "last_*: the last parameters; init_post: the same inner step from the initial (un-meta-trained) parameters. "
          "ucb1: textbook c = sqrt 2; ucb1_tuned: c and the start (each arm once, or from the prior) tuned on train-split tasks; gittins: discount tuned on the same.")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "results"))
