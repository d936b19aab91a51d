"""The package's shape: no import cycle between shred's modules, counting the imports inside
functions too (a lazy import hides a cycle until the day someone moves it to the top)."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "shred"


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is_package) for every module under ``root``."""
    out = {}
    for f in root.rglob("*.py"):
        parts = list(f.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (f, is_package)
    return out


def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    """Module -> the shred modules it imports anywhere in its body (top level or in a function).

    ``from P import a`` points at the submodule ``P.a`` when there is one, else at ``P``; the
    parent packages every import runs first are left out (importing ``shred.models.base`` runs
    ``shred.models``, which imports ``base``: that is how packages work, not a cycle).
    """
    modules = _modules(root)
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, (path, is_package) in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module
                subs = [f"{target}.{a.name}" for a in node.names]
                graph[name].update(s for s in subs if s in modules)
                if target in modules and not all(s in modules for s in subs):
                    graph[name].add(target)
            elif isinstance(node, ast.Import):
                graph[name].update(a.name for a in node.names if a.name in modules)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), or a module that
    imports itself."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph[v]:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    # The check can fail: a hand-made graph with a lazy cycle and a self-import.
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"a"}}) == [["a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_and_lazy_imports():
    graph = import_graph()
    assert "shred.models.download" in graph["shred.models.resolve"]      # top level, relative
    assert "shred.models.lean_unet" in graph["shred.models.unet"]        # inside a function
    assert "shred.models.adm_format" in graph["shred.models.convert"]    # `from . import adm_format`
    assert "shred.api" in graph["shred"]


def test_no_import_cycle_in_shred():
    assert cycles(import_graph()) == []


ROOT = SRC.parents[1]


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in readme.splitlines() if line.startswith("python3 -m venv") and "pytest" in line]
    assert commands and len(set(commands)) == 1, commands  # README states one test command
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line.startswith("python3 -m venv")]
    assert ci == commands[:1]
    assert "-c constraints.txt" in ci[0]


def test_torch_is_a_range_in_the_package_and_pinned_only_in_the_constraints():
    tomllib = __import__("pytest").importorskip("tomllib")  # Python 3.11+
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_dep = [d for d in deps if d.replace(" ", "").startswith("torch")]
    assert torch_dep == ["torch>=2.4,<3"]
    pins = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line and not line.startswith("#")]
    assert pins == ["torch==2.13.0"]


def test_every_declared_marker_is_used():
    tomllib = __import__("pytest").importorskip("tomllib")
    markers = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = [m.split(":")[0].strip() for m in markers]
    text = "".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py"))
    assert names and all(f"mark.{n}" in text for n in names), names
