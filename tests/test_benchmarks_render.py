"""BENCHMARKS.md is what the committed results render to, and every benchmark script imports cheaply.

The sections hold figures from long runs; their results files (benchmarks/results/) are the record,
and the file is only their rendering, so the two must not drift apart.
"""

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import benchmarks
from benchmarks import render
from benchmarks.common import save_result

REPO = Path(__file__).resolve().parent.parent
SECTION = re.compile(r"<!-- BEGIN (\S+) -->\n(.*?)\n<!-- END \1 -->", re.DOTALL)
HELPERS = {"common", "harness", "render"}  # the scripts' shared code
SCRIPTS = sorted(m.name for m in pkgutil.iter_modules(benchmarks.__path__) if m.name not in HELPERS)
RESULTS = render.load_results()
SYS_PATH_EDIT = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*\+?=")
MEASURING = {"torch", "numpy", "spicy_lentil", "sentence_transformers", "ray", "httpx", "hypothesis", "tests"}


def published() -> dict[str, str]:
    return dict(SECTION.findall(render.BENCHMARKS_MD.read_text(encoding="utf-8")))


def test_every_section_has_a_results_file_and_every_results_file_a_section():
    assert sorted(published()) == sorted(RESULTS)


@pytest.mark.parametrize("section", sorted(RESULTS))
def test_results_render_to_the_published_section(section):
    assert render.section_markdown(RESULTS[section]) == published()[section]


def test_rendering_every_result_leaves_benchmarks_md_as_committed(tmp_path):
    copy = tmp_path / "BENCHMARKS.md"
    copy.write_bytes(render.BENCHMARKS_MD.read_bytes())
    render.render_sections(path=copy)
    assert copy.read_bytes() == render.BENCHMARKS_MD.read_bytes()


def test_a_saved_result_is_appended_with_its_provenance_then_replaced_in_place(tmp_path):
    results, markdown = tmp_path / "results", tmp_path / "BENCHMARKS.md"
    markdown.write_text(render.FILE_HEADER + "\nText outside any section.\n", encoding="utf-8")
    figures = {"warm_up_s": 12.34, "query_s": {"median": 0.5, "max": 3.0, "min": 0.25}}
    save_result("app-latency", "benchmarks.front_ends", figures, results)
    render.render_sections(["app-latency"], markdown, results)
    text = markdown.read_text(encoding="utf-8")
    saved = json.loads((results / "app-latency.json").read_text(encoding="utf-8"))
    heading, _, provenance = text.split("<!-- BEGIN app-latency -->\n")[1].split("\n")[:3]
    assert heading.startswith("## App") and provenance == f"- Date: {saved['date']}"
    assert "Model load + warm-up (encoding the 100 documents once): 12.3 s" in text
    assert "| 0.50 | 3.00 | 0.25 |" in text and "(FAIL on the median)" not in text

    save_result(
        "app-latency", "benchmarks.front_ends", {**figures, "query_s": {"median": 2.5, "max": 3, "min": 2}}, results
    )
    render.render_sections(["app-latency"], markdown, results)
    text = markdown.read_text(encoding="utf-8")
    assert text.count("<!-- BEGIN app-latency -->") == 1 and "(FAIL on the median)" in text
    assert text.startswith(render.FILE_HEADER + "\nText outside any section.\n\n<!-- BEGIN app-latency -->")


def test_save_result_keeps_its_own_fields():
    with pytest.raises(ValueError, match="date"):
        save_result("x", "benchmarks.x", {"date": "yesterday"}, Path("/nonexistent"))


@pytest.mark.parametrize("name", SCRIPTS)
def test_script_has_main_and_render_and_no_sys_path_edit(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)
    assert not SYS_PATH_EDIT.search(Path(module.__file__).read_text(encoding="utf-8"))
    assert callable(module.render)
    assert any(result["script"] == module.__name__ for result in RESULTS.values()), f"{name} has no results file"


def test_importing_every_script_loads_no_measuring_library():
    """Rendering must work without torch or the optional extras: the scripts import those where they measure."""
    code = (
        "import importlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module('benchmarks.' + name)\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *SCRIPTS, *HELPERS], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    assert not set(out.split()) & MEASURING
