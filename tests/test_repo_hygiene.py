"""The repo's own hygiene: .gitignore hides nothing that belongs in the repo and still hides what must never be
committed; no module imports another in a circle; test code waits on events, not the clock, and names the
error it expects."""

from __future__ import annotations

import ast
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # this checkout, wherever it is

pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                                reason="needs a git checkout and the git CLI")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, check=False)


def ignored(path: str) -> bool:
    """Whether .gitignore matches ``path`` (which need not exist)."""
    result = git("check-ignore", "--quiet", "--no-index", "--", path)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_no_tracked_file_is_ignored() -> None:
    result = git("ls-files", "--cached", "--ignored", "--exclude-standard")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", f".gitignore matches tracked files:\n{result.stdout}"


@pytest.mark.parametrize("path", [
    "examples/with-dependencies/src/build/__init__.py",  # a function's own package named build
    "examples/with-dependencies/src/dist/data.json",
    "lambda_src/handler.py.tmpl",
    "examples/seed/main.tf",
])
def test_source_files_are_not_ignored(path: str) -> None:
    assert not ignored(path)


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".tools/checkov-venv/bin/checkov", "dist/orders-api.zip",
    "localstack-process-executor/build/lib/x.py", "devtools/sealed_lambda_devtools.egg-info/PKG-INFO",
    "examples/seed/.terraform/modules/modules.json", "examples/seed/.terraform.lock.hcl",
    "examples/seed/terraform.tfstate", "examples/seed/terraform.tfstate.backup", "examples/seed/plan.tfplan",
    "examples/seed/terraform.tfvars.json", "examples/seed/secrets.auto.tfvars",
    "examples/seed/localstack_providers_override.tf", "lambda_src/__pycache__/sealed_secrets.cpython-313.pyc",
])
def test_local_state_and_output_are_ignored(path: str) -> None:
    assert ignored(path)


# --- no import cycles (#15) -------------------------------------------------------------------------------
#
# A module's name is its path from the first folder above it that is not a package: bench/report.py is
# "report" (bench/ is the script's own folder on sys.path), lambda_src/sealed_secrets/cache.py is
# "sealed_secrets.cache", devtools/localdeploy/__init__.py is "localdeploy". An import is resolved in the
# importing file's own folder first (a script's siblings), then among every first-party module. Every
# import counts: top-level, inside functions, and under `if TYPE_CHECKING:` (a cycle a type checker must
# untangle is still two concerns tangled).


def python_sources(root: Path) -> list[Path]:
    """First-party Python files under ``root``: tracked or new (not ignored), .py and .py.tmpl templates."""
    listed = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                             "--", "*.py", "*.py.tmpl"], capture_output=True, text=True, timeout=60, check=True)
    return sorted({root / name for name in listed.stdout.split("\0") if name and (root / name).is_file()})


def module_name(path: Path) -> tuple[Path, str]:
    """(the folder the module is imported from, its dotted name)."""
    stem = path.name.removesuffix(".tmpl").removesuffix(".py")
    parts = [] if stem == "__init__" else [stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    return folder, ".".join(parts)


@dataclass(frozen=True)
class Module:
    path: Path
    base: Path
    name: str

    @property
    def is_package(self) -> bool:
        return self.path.name == "__init__.py"

    @property
    def package(self) -> str:
        return self.name if self.is_package else self.name.rpartition(".")[0]


def imported_names(module: Module, tree: ast.AST) -> Iterator[tuple[tuple[str, ...], int]]:
    """Per imported name, the modules it may be (the first that exists is the one loaded), and the line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield (alias.name,), node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.package.split(".") if module.package else []
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:  # `from x import y`: the submodule x.y if there is one, else x itself
                yield ((f"{base}.{alias.name}", base) if base else (alias.name,)), node.lineno


def import_graph(root: Path) -> tuple[dict[Path, dict[Path, int]], list[str]]:
    """Edges file -> {imported first-party file: line of the first such import}, and the files that do not parse."""
    modules = [Module(path, *module_name(path)) for path in python_sources(root)]
    by_name: dict[str, list[Module]] = {}
    for module in modules:
        by_name.setdefault(module.name, []).append(module)

    by_path = {module.path: module for module in modules}

    def resolve(importer: Module, name: str) -> Module | None:
        candidates = by_name.get(name, [])
        local = [candidate for candidate in candidates if candidate.base == importer.base]
        # Else a folder without __init__.py under the root, on sys.path through pyproject's pythonpath
        # (`from bench import costs`).
        beneath = root.joinpath(*name.split("."))
        return (local or candidates or [by_path.get(beneath.with_suffix(".py"))])[0]

    graph: dict[Path, dict[Path, int]] = {}
    broken: list[str] = []
    for module in modules:
        try:
            tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
        except (SyntaxError, UnicodeDecodeError) as error:
            broken.append(f"{module.path.relative_to(root)}: {error}")
            continue
        edges = graph.setdefault(module.path, {})
        for candidates, line in imported_names(module, tree):
            target = next(filter(None, (resolve(module, name) for name in candidates)), None)
            if target is not None and target.path != module.path:
                edges.setdefault(target.path, line)
    return graph, broken


def import_cycles(graph: dict[Path, dict[Path, int]]) -> list[list[Path]]:
    """One cycle (a closed path of files) per strongly connected group of modules that import each other."""
    index: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    on_stack: set[Path] = set()
    groups: list[list[Path]] = []

    def visit(node: Path) -> None:  # Tarjan; the graphs here are small enough for recursion
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)

    def cycle_through(group: list[Path]) -> list[Path]:
        """The shortest closed path from the group's first file back to it, within the group."""
        members, start = set(group), group[0]
        came_from: dict[Path, Path] = {}
        frontier = [start]
        while frontier:
            node = frontier.pop(0)
            for target in sorted(graph[node]):
                if target == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in came_from:
                    came_from[target] = node
                    frontier.append(target)
        raise AssertionError(f"not a cycle: {group}")

    return [cycle_through(group) for group in groups]


def describe(cycle: list[Path], graph: dict[Path, dict[Path, int]], root: Path) -> str:
    hops = [f"{a.relative_to(root)}:{graph[a][b]}" for a, b in zip(cycle, cycle[1:])]
    return " -> ".join([*hops, str(cycle[0].relative_to(root))])


def test_no_first_party_module_imports_another_in_a_circle() -> None:
    graph, broken = import_graph(ROOT)
    assert not broken, "first-party Python that does not parse:\n" + "\n".join(broken)
    cycles = [describe(cycle, graph, ROOT) for cycle in import_cycles(graph)]
    assert not cycles, "import cycles (file:line of each import, in order):\n" + "\n".join(cycles)


def test_the_import_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The check above is only as good as the graph: on a scratch repo, each form of import makes an edge."""
    files = {
        "tool/a.py": "import b\n",                                    # a script's sibling
        "tool/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from a import X\n",
        "pkg_root/pkg/__init__.py": "from .one import f\n",
        "pkg_root/pkg/one.py": "def f():\n    from pkg import two\n",  # function-level, a submodule
        "pkg_root/pkg/two.py": "from . import one\n",                  # relative, package-internal: no cycle
        "pkg_root/pkg/three.py": "from pkg import f\n",                # a name from __init__: an edge to it
        "lone/c.py.tmpl": "import pkg.three\n",
        "ns/mod.py": "",
        "user.py": "from ns import mod\n",                           # a folder without __init__.py, from the root
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    graph, broken = import_graph(tmp_path)
    edges = {(str(a.relative_to(tmp_path)), str(b.relative_to(tmp_path))) for a, targets in graph.items() for b in targets}
    assert broken == []
    assert edges == {
        ("tool/a.py", "tool/b.py"), ("tool/b.py", "tool/a.py"),
        ("pkg_root/pkg/__init__.py", "pkg_root/pkg/one.py"), ("pkg_root/pkg/one.py", "pkg_root/pkg/two.py"),
        ("pkg_root/pkg/two.py", "pkg_root/pkg/one.py"), ("pkg_root/pkg/three.py", "pkg_root/pkg/__init__.py"),
        ("lone/c.py.tmpl", "pkg_root/pkg/three.py"), ("user.py", "ns/mod.py"),
    }
    assert sorted(describe(cycle, graph, tmp_path) for cycle in import_cycles(graph)) == [
        "pkg_root/pkg/one.py:2 -> pkg_root/pkg/two.py:1 -> pkg_root/pkg/one.py",
        "tool/a.py:1 -> tool/b.py:3 -> tool/a.py",
    ]


# --- tests decided by their own checks, not by the clock or a stray exception (#18) ----------------------
#
# In test code (tests/, localstack-process-executor/tests/): no time.sleep (wait on an event, a pipe, or
# localstack_process_executor.waiting.poll_until, whose ceiling only bounds a wait that went wrong), no wall
# clock read inside an assert or in a value an assert compares, and no pytest.raises without match=. Code inside strings (a deployed function's source) is not
# test code and is not read. Each exception below is keyed by file, function and kind, with its reason.

TEST_FOLDERS = ("tests", "localstack-process-executor/tests")
CLOCKS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "perf_counter_ns", "now", "utcnow"}
TEMPORARY = "TEMPORARY"  # owned by a branch being merged; the lead removes these entries after the merge

ALLOWED: dict[tuple[str, str, str], str] = {
    # (file, enclosing function or "<module>", kind): why it genuinely needs it. None today: polls go through
    # localstack_process_executor.waiting.poll_until (a ceiling, never a guess), budgets through injected clocks.
}


@dataclass(frozen=True)
class Finding:
    path: str
    function: str
    kind: str  # "sleep", "wall clock in assert" or "raises without match"
    line: int

    @property
    def key(self) -> tuple[str, str, str]:
        return self.path, self.function, self.kind

    def __str__(self) -> str:
        return f"{self.path}:{self.line} in {self.function}: {self.kind}"


def reads_clock(node: ast.AST) -> bool:
    """time.monotonic(), perf_counter(), datetime.now(), ... anywhere inside ``node``."""
    for call in ast.walk(node):
        if isinstance(call, ast.Call):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
            if name in CLOCKS:
                return True
    return False


def is_call_to(node: ast.AST, module: str, name: str) -> bool:
    """``module.name(...)`` or a bare ``name(...)`` (as after ``from module import name``)."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr == name and isinstance(func.value, ast.Name) and func.value.id == module
    return isinstance(func, ast.Name) and func.id == name


def scope_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node of a module or function, but not of the functions defined in it (each is its own scope)."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            pending.extend(ast.iter_child_nodes(node))


def findings_in(path: Path, root: Path) -> list[Finding]:
    relative = str(path.relative_to(root))
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    found: set[Finding] = set()

    def scan(scope: ast.AST, function: str) -> None:
        nodes = list(scope_nodes(scope))
        clocked: set[str] = set()  # names the wall clock flows into, in this scope
        while True:
            before = len(clocked)
            for node in nodes:
                if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.NamedExpr)) and node.value:
                    value_names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                    if reads_clock(node.value) or value_names & clocked:
                        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                        clocked |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            if len(clocked) == before:
                break
        for node in nodes:
            if isinstance(node, ast.Assert):
                uses = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
                # A clock read in a helper reaches the assert under a name such as `elapsed`.
                if reads_clock(node.test) or uses & clocked or any("elapsed" in name.lower() for name in uses):
                    found.add(Finding(relative, function, "wall clock in assert", node.lineno))
            if is_call_to(node, "time", "sleep") or is_call_to(node, "asyncio", "sleep"):
                found.add(Finding(relative, function, "sleep", node.lineno))
            if is_call_to(node, "pytest", "raises") and not any(k.arg == "match" for k in node.keywords):
                found.add(Finding(relative, function, "raises without match", node.lineno))

    scan(tree, "<module>")
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            scan(node, node.name)
    return sorted(found, key=lambda f: (f.path, f.line, f.kind))


def findings_in_test_code(root: Path = ROOT) -> list[Finding]:
    prefixes = tuple(f"{folder}/" for folder in TEST_FOLDERS)
    return [finding for path in python_sources(root)
            if path.name.endswith(".py") and str(path.relative_to(root)).startswith(prefixes)
            for finding in findings_in(path, root)]


def test_test_code_neither_sleeps_nor_asserts_on_the_clock_and_names_the_error_it_expects() -> None:
    unexpected = [str(finding) for finding in findings_in_test_code() if finding.key not in ALLOWED]
    assert not unexpected, (
        "in test code: wait on an event, a pipe or waiting.poll_until (not time.sleep); inject a clock instead of "
        "asserting on elapsed time (speed belongs in make bench); give pytest.raises a match=. Or, if a place "
        "genuinely needs it, list it in ALLOWED with the reason:\n" + "\n".join(unexpected))


def test_every_permanent_exception_is_still_needed_and_says_why() -> None:
    found = {finding.key for finding in findings_in_test_code()}
    stale = [key for key, reason in ALLOWED.items() if not reason.startswith(TEMPORARY) and key not in found]
    assert not stale, f"ALLOWED lists places that no longer need it; remove them: {stale}"
    assert all(reason.strip() for reason in ALLOWED.values())


def test_the_checks_see_what_they_refuse(tmp_path: Path) -> None:
    """The checks above are only as good as what they notice: each form once, in a scratch repo."""
    test = tmp_path / "tests" / "test_scratch.py"
    test.parent.mkdir()
    test.write_text(
        "import time\n"
        "from time import sleep\n"
        "import pytest\n"
        "def test_a():\n"
        "    started = time.monotonic()\n"
        "    time.sleep(0.1)\n"                                   # 6
        "    taken = time.monotonic() - started\n"
        "    assert taken < 1\n"                                  # 8: a clocked name
        "    assert time.perf_counter() > 0\n"                    # 9: a clock read in the assert
        "def test_b(results):\n"
        "    sleep(1)\n"                                          # 11
        "    assert max(elapsed for elapsed in results) < 2\n"    # 12: elapsed from a helper
        "    with pytest.raises(TypeError):\n"                    # 13
        "        pass\n"
        "    with pytest.raises(TypeError, match='name'):\n"
        "        pass\n"
        "    code = 'time.sleep(3)'\n"                            # a deployed function's source: not test code
        "    assert code and started\n"                           # `started` is test_a's, not this scope's
    )
    (tmp_path / "src.py").write_text("import time\ntime.sleep(1)\n")  # not test code
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, timeout=60)
    assert [str(finding) for finding in findings_in_test_code(tmp_path)] == [
        "tests/test_scratch.py:6 in test_a: sleep",
        "tests/test_scratch.py:8 in test_a: wall clock in assert",
        "tests/test_scratch.py:9 in test_a: wall clock in assert",
        "tests/test_scratch.py:11 in test_b: sleep",
        "tests/test_scratch.py:12 in test_b: wall clock in assert",
        "tests/test_scratch.py:13 in test_b: raises without match",
    ]
