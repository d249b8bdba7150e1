"""The documentation generators' parts that need no Sphinx (the build itself is CI's docs step, ``make docs``):
the link check, the docstring rewriting, the results pages and the family pages of a family the docs have
never seen."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import gymnasium as gym
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))
sys.path.insert(0, str(ROOT / "docs" / "_ext"))

import check_links  # noqa: E402
from mandril_docs import families, results  # noqa: E402
from mandril_docs.docstrings import prose_fields, split_sections  # noqa: E402
from mandril_envs.envs.bandit import BanditEnv  # noqa: E402


def _site(root: Path, pages: dict[str, str]) -> Path:
    for name, body in pages.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(f"<html><body>{body}</body></html>")
    return root


def test_the_link_check_finds_missing_files_images_and_anchors_and_nothing_else(tmp_path, capsys):
    site = _site(tmp_path, {
        "index.html": '<a href="a.html#here">ok</a> <a href="a.html#gone">bad anchor</a> <a href="b.html">missing</a>'
                      '<img src="img/x.png"> <img src="img/y.png"> <a href="https://example.org/x">external</a> <a href="#top">self</a>'
                      '<span id="top"></span> <a href="sub/">folder</a>',
        "a.html": '<h1 id="here">A</h1>',
        "sub/index.html": '<a href="../index.html#top">up</a>',
    })
    (site / "img").mkdir()
    (site / "img" / "x.png").write_bytes(b"png")
    problems, checked = check_links.broken_links(site)
    assert checked == 8
    assert sorted(problems) == sorted([
        "index.html: <a> a.html#gone: no anchor #gone",
        "index.html: <a> b.html: no such file",
        "index.html: <img> img/y.png: no such file",
    ])
    assert check_links.main([str(site)]) == 1
    (site / "img" / "y.png").write_bytes(b"png")
    (site / "b.html").write_text("<html></html>")
    (site / "a.html").write_text('<h1 id="here">A</h1><p id="gone"></p>')
    assert check_links.main([str(site)]) == 0
    assert "8 local links and images" in capsys.readouterr().out
    assert check_links.main([str(tmp_path / "nothing")]) == 2


def test_prose_returns_and_multi_exception_raises_are_rewritten_and_typed_fields_are_not():
    lines = ["Summary.", "", "Returns:", "    What it is: the details,", "    on two lines.", "", "Raises:",
             "    ValueError / TypeError: a bad argument.", "    KeyError: no such key."]
    prose_fields(lines)
    assert lines == ["Summary.", "", ":returns: What it is: the details,", "    on two lines.", "",
                     ":raises ValueError: a bad argument.", ":raises TypeError: a bad argument.", ":raises KeyError: no such key."]
    typed = ["Returns:", "    int: how many.", "", "Raises:", "    KeyError: no such key."]
    prose_fields(typed)
    assert typed == ["Returns:", "    int: how many.", "", "Raises:", "    KeyError: no such key."]  # napoleon's to read
    unknown = ["Returns:", "    Diagnostics: a dict of them."]  # one word, but no name the module knows
    prose_fields(unknown, {"int", "dict"}.__contains__)
    assert unknown == [":returns: Diagnostics: a dict of them."]


def test_an_env_docstring_splits_into_its_sections():
    summary, sections = split_sections(BanditEnv.__doc__)
    assert summary == "A K-armed bandit played for a fixed number of pulls."
    assert [title for title, _ in sections] == ["Description", "Spaces", "Reward", "Tasks", "Information", "Arguments", "Versions"]


def test_every_results_folder_with_a_report_gets_a_page_with_its_plots_and_data(tmp_path):
    base = tmp_path / "benchmarks" / "results"
    for name in ("quick", "standard"):
        (base / name / "plots").mkdir(parents=True)
        (base / name / "report.md").write_text(f"# Benchmark `{name}`\n\n### a family\n\n![plot](plots/a.png)\n")
        (base / name / "plots" / "a.png").write_bytes(b"png")
        (base / name / "summary.csv").write_text("a,b\n")
    (base / "cluster").mkdir()
    (base / "cluster" / "estimate.json").write_text("{}")
    (base / "curve").mkdir()
    (base / "curve" / "curve.md").write_text("| a |\n|---|\n| 1 |\n")  # no heading of its own
    (base / "curve" / "curve.png").write_bytes(b"png")
    docs = tmp_path / "docs"
    docs.mkdir()
    results.generate(SimpleNamespace(srcdir=str(docs)))
    out = docs / "results"
    assert sorted(p.name for p in out.glob("*.md")) == ["benchmark-curve.md", "benchmark-quick.md", "benchmark-standard.md", "index.md"]
    standard = (out / "benchmark-standard.md").read_text()
    assert "## a family" in standard  # a skipped heading level closed up (MyST warns on a jump)
    assert "![plot](benchmark-standard/plots/a.png)" in standard and (out / "benchmark-standard" / "plots" / "a.png").exists()
    assert "{download}`summary.csv <benchmark-standard/summary.csv>`" in standard
    curve = (out / "benchmark-curve.md").read_text()
    assert curve.startswith("# `benchmarks/results/curve`") and "![curve](benchmark-curve/curve.png)" in curve  # an unshown plot is shown
    assert "benchmark-standard" in (out / "index.md").read_text()


class ToyEnv(BanditEnv):
    """A toy family the docs have never seen.

    ## Description
    Three arms.

    ## Versions
    v0: here.
    """

    family = "Toy"


def test_a_newly_registered_family_gets_its_page_and_pictures_with_no_docs_code(tmp_path):
    gym.register(id="mandril_envs/Toy-v0", entry_point=ToyEnv, kwargs={"n_arms": 3})
    try:
        found = {f.name: f for f in families.registered_families()}
        assert {"GridWorld", "GridWorldIntent", "TabularMDP", "Bandit", "Toy"} <= set(found)
        assert found["Toy"].ids == ["mandril_envs/Toy-v0"] and found["Toy"].slug == "toy"
        assert found["TabularMDP"].slug == "tabular-mdp" and found["Bandit"].ids[0] == "mandril_envs/Bandit-v0"
        text, pictures = families.family_page(found["Toy"], tmp_path)
    finally:
        del gym.registry["mandril_envs/Toy-v0"]
    assert text.startswith("# Toy\n\nA toy family the docs have never seen.")
    assert "| `mandril_envs/Toy-v0` | 1 x 3 | 10 | state-action, r(s, a), bernoulli noise | `train`, `test` |" in text
    assert 'gym.make("mandril_envs/Toy-v0", render_mode="rgb_array")' in text
    assert "## Description" in text and "## Versions" in text
    names = sorted(p.name for p in pictures)
    assert names == ["expert.gif", "model.png", "split-test.png", "split-train.png"]  # one state: the arm-means plot
    from PIL import Image

    gif = Image.open(tmp_path / "img" / "toy" / "expert.gif")
    durations = []
    for frame in range(gif.n_frames):
        gif.seek(frame)
        durations.append(gif.info["duration"])
    assert sum(durations) == 11 * 400  # the first observation and each of the 10 steps, 0.4 s each (repeats merged)
    strip = np.asarray(Image.open(tmp_path / "img" / "toy" / "split-test.png"))
    assert strip.ndim == 3 and strip.shape[1] > 2 * strip.shape[0]  # three tasks side by side


def test_the_example_on_the_front_page_runs_as_written(tmp_path):
    import re
    import subprocess

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "index.md").read_text(), flags=re.S)
    assert len(blocks) == 1 and len(blocks[0].strip().splitlines()) <= 12
    done = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert 0.0 <= float(done.stdout.strip().splitlines()[-1]) < 0.5  # two demos of a GridWorld task: near the expert


def test_a_tutorial_runs_cell_by_cell_and_a_failed_check_stops_it_with_its_traceback(tmp_path):
    import json
    import subprocess

    from mandril_docs.run_cells import parse_cells

    script = tmp_path / "t.py"
    script.write_text("# %% [markdown]\n# # Title\n#\n# Some text.\n\n# %%\nx = 2\nprint('x is', x)\n\n# %%\nassert x == 3, 'x should be 3'\n\n# %%\nprint('never')\n")
    assert parse_cells(script.read_text()) == [("markdown", "# Title\n\nSome text."), ("code", "x = 2\nprint('x is', x)"),
                                               ("code", "assert x == 3, 'x should be 3'"), ("code", "print('never')")]
    out = tmp_path / "t.json"
    done = subprocess.run([sys.executable, "-m", "mandril_docs.run_cells", str(script), str(out)], cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT / "docs" / "_ext"), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    result = json.loads(out.read_text())
    assert result["status"] == 1 and [c["kind"] for c in result["cells"]] == ["markdown", "code", "code"]  # the last cell never ran
    assert result["cells"][1]["output"] == "x is 2\n"
    assert "AssertionError: x should be 3" in result["cells"][2]["output"]
