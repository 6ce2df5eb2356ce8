"""The README's layout section names every module and folder of the tree, and nothing that is gone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _layout() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return readme.split("## Layout", 1)[1].split("\n## ", 1)[0]


def test_every_package_module_is_in_the_layout():
    layout = _layout()
    modules = {
        p.name for folder in ("spicy_lentil", "pathways", "app") for p in (ROOT / folder).rglob("*.py")
        if p.name != "__init__.py"
    }
    missing = sorted(name for name in modules if not re.search(rf"\b{re.escape(name)}\b", layout))
    assert not missing, f"README layout misses {missing}"


def test_the_layout_names_only_what_exists():
    layout = _layout()
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    top = {
        p.name
        for folder in ("spicy_lentil", "pathways", "app", "scripts", "tests", "benchmarks")
        for p in (ROOT / folder).rglob("*.py")
    }
    assert named <= top, f"README layout names {sorted(named - top)}, which do not exist"
    for folder in re.findall(r"^([a-z_]+/)", layout, flags=re.MULTILINE):
        assert (ROOT / folder).is_dir(), folder


def test_a_built_wheel_holds_the_bundled_model_and_the_apps_demo_data(tmp_path):
    """A pip install gets what `from_pretrained()` and `spicy-lentil app` read: the app looks for its demo corpus
    in `../data` beside it, which is the repository's `data/` in a clone and `spicy_lentil/data/` installed."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        cwd=ROOT, check=True, timeout=600, capture_output=True,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    model = {f"spicy_lentil/default_model/{p.name}" for p in (ROOT / "spicy_lentil" / "default_model").iterdir()
             if p.suffix in (".json", ".safetensors")}
    demo = {f"spicy_lentil/{p}" for p in ("app/documents.py", "data/demo_corpus.jsonl", "data/demo_queries.jsonl")}
    assert model and not (model | demo) - names, sorted((model | demo) - names)
