"""Every script in benchmarks/ imports: they are run by hand, not by the suite, so a moved module
(e.g. the shapes generator leaving emu_jax.data for the demo) would otherwise break them unnoticed."""

import importlib.util
import pathlib
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize("path", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_benchmark_script_imports(path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import their shared `rounds` helper by name
    spec = importlib.util.spec_from_file_location(f"bench_import_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)  # top level only: each script's work is under `if __name__ == "__main__"`
    assert hasattr(module, "main") or path.stem == "rounds", f"{path.name} has no main()"
