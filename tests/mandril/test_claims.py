"""Every marked claim in README.md, benchmarks/README.md and docs/guide/benchmark.md about where MandRIL wins, ties
or loses, checked against the published ``comparisons.csv`` it names.

A claim is an HTML comment next to the sentence (invisible when rendered), ``key=value`` pairs:

    <!-- claim: results=benchmarks/results/quick family=gridworld split=test_unseen method=demo_conditioned verdict=loss -->

* ``results``: the published folder (relative to the repository root) whose ``comparisons.csv`` decides.
* ``family``, ``split``, ``n``, ``method``, ``robust``: filters (comma-separated lists; left out: any). A method
  matches the rows of a method it is identical to (``identical`` column) too; ``robust=yes`` (``no``) keeps the wins
  and losses that hold (do not hold) on both halves of the tasks.
* ``verdict``: every matching row's verdict is one of these (``win,tie``: "best or tied"); a claimed win or
  loss must be robust (``robust=yes``) where the file says whether it is, unless the claim names ``robust=no``.
* ``p_better``: every matching row's P(MandRIL better), to 2 decimals.
* ``win``, ``tie``, ``loss``: how many matching rows have each verdict (a count sentence).

``<!-- claim-table: results=... -->`` before a markdown table with the columns ``family / split``, ``n``,
``best other method`` (its first word is the method) and ``verdict`` checks every row of the table; a verdict
cell ``tie (loss, fragile)`` (as the report's headline writes a fragile call) claims a loss that is not robust.
At least one row must match every claim: a claim about nothing fails.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "benchmarks/README.md", "docs/guide/benchmark.md")
_CLAIM = re.compile(r"<!--\s*claim(-table)?:\s*(.*?)\s*-->")
_FILTERS = ("family", "split", "n", "method", "robust")
_FRAGILE = re.compile(r"^tie \((win|loss), fragile\)$")
_KEYS = {"results", "verdict", "p_better", "win", "tie", "loss", *_FILTERS}


def parse_claims(text: str, where: str = "text") -> list[dict]:
    """Every claim of a markdown text: ``{"where", "kind": "claim"|"table", "fields", "table": rows or None}``."""
    claims = []
    lines = text.splitlines()
    for number, line in enumerate(lines, 1):
        for match in _CLAIM.finditer(line):
            fields = {}
            for pair in match.group(2).split():
                key, sep, value = pair.partition("=")
                if not sep or key not in _KEYS:
                    raise ValueError(f"{where}:{number}: claim field {pair!r} is not key=value with a key from {sorted(_KEYS)}")
                fields[key] = value
            if "results" not in fields:
                raise ValueError(f"{where}:{number}: a claim must name results=FOLDER")
            table = None
            if match.group(1):
                table = _table_after(lines, number, where)
            elif not ({"verdict", "p_better"} & fields.keys() or {"win", "tie", "loss"} & fields.keys()):
                raise ValueError(f"{where}:{number}: a claim must state verdict=, p_better= or counts (win=, tie=, loss=)")
            claims.append({"where": f"{where}:{number}", "kind": "table" if table is not None else "claim", "fields": fields, "table": table})
    return claims


def _table_after(lines: list[str], number: int, where: str) -> list[dict]:
    start = next((i for i in range(number, len(lines)) if lines[i].startswith("|")), None)
    if start is None:
        raise ValueError(f"{where}:{number}: claim-table is not followed by a table")
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))))
    return rows


def _published(folder: str) -> list[dict]:
    path = ROOT / folder / "comparisons.csv"
    if not path.is_file():
        raise AssertionError(f"{folder}: no comparisons.csv to check claims against")
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _matches(row: dict, filters: dict) -> bool:
    for key in _FILTERS:
        if key not in filters:
            continue
        allowed = filters[key].split(",")
        if key == "method":
            names = [row["method"], *(row.get("identical") or "").split(";")]
            if not any(name in allowed for name in names):
                return False
        elif key == "robust":
            if row.get("robust", "") not in allowed:
                return False
        elif str(row["n_demos" if key == "n" else key]) not in allowed:
            return False
    return True


def check_claim(claim: dict) -> list[str]:
    """The ways ``claim`` disagrees with its published comparisons (empty: it holds)."""
    fields = claim["fields"]
    rows = _published(fields["results"])
    problems = []
    if claim["kind"] == "table":
        for entry in claim["table"]:
            family, split = (part.strip() for part in entry["family / split"].split("/"))
            other = next(v for k, v in entry.items() if k.startswith("best other method")).split()[0]
            fragile = _FRAGILE.match(entry["verdict"])
            verdict = {"verdict": fragile.group(1), "robust": "no"} if fragile else {"verdict": entry["verdict"]}
            sub = {"where": claim["where"], "kind": "claim", "fields": {"results": fields["results"], "family": family, "split": split,
                                                                         "n": entry["n"], "method": other, **verdict}}
            problems += check_claim(sub)
        return problems
    matching = [r for r in rows if _matches(r, fields)]
    label = " ".join(f"{k}={v}" for k, v in fields.items() if k != "results")
    if not matching:
        return [f"{claim['where']}: no comparison matches {label}"]
    for row in matching:
        name = f"{row['family']}/{row['split']} n={row['n_demos']} {row['method']}"
        if "verdict" in fields:
            if row["verdict"] not in fields["verdict"].split(","):
                problems.append(f"{claim['where']}: {name} is a {row['verdict']}, the text says {fields['verdict']}")
            elif row["verdict"] in ("win", "loss") and row.get("robust", "yes") != "yes" and "robust" not in fields:
                problems.append(f"{claim['where']}: {name} is a fragile {row['verdict']} (it does not hold on both halves of the tasks)")
        if "p_better" in fields and f"{float(row['p_better']):.2f}" != fields["p_better"]:
            problems.append(f"{claim['where']}: {name} has P(MandRIL better) {float(row['p_better']):.2f}, the text says {fields['p_better']}")
    for verdict in ("win", "tie", "loss"):
        if verdict in fields:
            count = sum(1 for r in matching if r["verdict"] == verdict)
            if count != int(fields[verdict]):
                problems.append(f"{claim['where']}: {count} comparisons are a {verdict}, the text says {fields[verdict]}")
    return problems


def _document_claims() -> list[dict]:
    out = []
    for name in DOCUMENTS:
        out += parse_claims((ROOT / name).read_text(), name)
    return out


def test_the_readmes_mark_their_claims():
    claims = _document_claims()
    assert {c["where"].split(":")[0] for c in claims} == set(DOCUMENTS)
    assert any(c["kind"] == "table" for c in claims)


@pytest.mark.parametrize("claim", _document_claims(), ids=lambda c: c["where"])
def test_every_claim_in_the_readmes_holds_in_the_published_comparisons(claim):
    assert check_claim(claim) == []


def test_the_checker_catches_wrong_claims(tmp_path, monkeypatch):
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "comparisons.csv").write_text(
        "family,split,n_demos,method,identical,tasks,p_better,verdict,robust\n"
        "g,test,1,a,,20,0.90,win,yes\n"
        "g,test,2,a,,20,0.85,win,no\n"
        "g,test,1,b,c,20,0.50,tie,\n"
        "h,test,1,a,,20,0.20,loss,yes\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)

    def problems(text: str) -> list[str]:
        return [p for c in parse_claims(text) for p in check_claim(c)]

    assert problems("<!-- claim: results=results family=g method=a n=1 verdict=win -->") == []
    assert problems("<!-- claim: results=results family=g method=c verdict=tie p_better=0.50 -->") == []  # c is identical to b
    assert problems("<!-- claim: results=results family=g,h n=1 verdict=win,tie,loss win=1 tie=1 loss=1 -->") == []
    assert problems("<!-- claim: results=results family=g method=a verdict=win -->") == ["text:1: g/test n=2 a is a fragile win (it does not hold on both halves of the tasks)"]
    assert problems("<!-- claim: results=results family=h verdict=win,tie -->") == ["text:1: h/test n=1 a is a loss, the text says win,tie"]
    assert problems("<!-- claim: results=results family=x verdict=tie -->") == ["text:1: no comparison matches family=x verdict=tie"]
    assert problems("<!-- claim: results=results family=g n=1 method=a p_better=0.80 -->") == ["text:1: g/test n=1 a has P(MandRIL better) 0.90, the text says 0.80"]
    table = ("<!-- claim-table: results=results -->\n\n| family / split | n | best other method | verdict |\n|---|---|---|---|\n"
             "| g / test | 1 | a 0.1 [0, 1] | win |\n| h / test | 1 | a 0.1 | tie |\n")
    assert problems(table) == ["text:1: h/test n=1 a is a loss, the text says tie"]
    fragile = table.replace("| g / test | 1 | a 0.1 [0, 1] | win |", "| g / test | 2 | a 0.1 | tie (win, fragile) |").replace("| h / test | 1 | a 0.1 | tie |", "| h / test | 1 | a 0.1 | tie (loss, fragile) |")
    assert problems(fragile) == ["text:1: no comparison matches family=h split=test n=1 method=a verdict=loss robust=no"]  # h's loss is robust
    assert problems("<!-- claim: results=results robust=yes win=1 loss=1 -->") == []
    assert problems("<!-- claim: results=results family=g robust=no verdict=win -->") == []
    with pytest.raises(ValueError, match="key=value"):
        parse_claims("<!-- claim: results=results famly=g verdict=win -->")
    with pytest.raises(ValueError, match="must state"):
        parse_claims("<!-- claim: results=results family=g -->")
