"""Shared by every tier: the project's Terraform CLI config and the repo root (pyproject's pythonpath puts
the repo root and lambda_src/ on sys.path for `import build` and `import sealed_secrets`); the Pythons the
multi-Python tests use; the `localstack` marker on every test that starts LocalStack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from localdeploy import use_project_terraform_config

ROOT = Path(__file__).resolve().parent.parent
# Written by `scripts/bootstrap pythons` (make check and make test run it): {"3.10": "/abs/python", ...},
# one interpreter per Lambda runtime; null where none was found.
PYTHONS_FILE = ROOT / ".tools" / "pythons.json"

use_project_terraform_config()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


def read_runtime_pythons(path: Path = PYTHONS_FILE) -> dict[str, Path]:
    """Every runtime's interpreter from bootstrap's file; one message naming what is missing and how to get it."""
    try:
        found = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise LookupError(f"{path} is missing or unreadable ({error.__class__.__name__}); "
                          "run scripts/bootstrap pythons (make check and make test run it)") from None
    missing = sorted(version for version, interpreter in found.items()
                     if not interpreter or not Path(interpreter).is_file())
    if missing:
        first = missing[0]
        raise LookupError(f"no Python {', '.join(missing)} for the tests that build for every Lambda runtime; "
                          f"get it with: pyenv install {first} (or uv python install {first}), "
                          "then scripts/bootstrap pythons")
    wanted = {runtime.removeprefix("python") for runtime in json.loads((ROOT / "build_rules.json").read_text())["runtimes"]}
    if set(found) != wanted:
        raise LookupError(f"{path} lists Pythons {sorted(found)}, build_rules.json's runtimes need {sorted(wanted)}; "
                          "run scripts/bootstrap pythons")
    return {version: Path(interpreter) for version, interpreter in found.items()}


@pytest.fixture(scope="session")
def _runtime_pythons() -> dict[str, Path]:
    try:
        return read_runtime_pythons()
    except LookupError as error:
        pytest.fail(str(error), pytrace=False)  # never a skip: a missing Python is a failure to fix


@pytest.fixture
def runtime_pythons(request, _runtime_pythons) -> dict[str, Path]:
    """{"3.10": Path, ...}: one interpreter per Lambda runtime, from .tools/pythons.json. Fails (never skips)
    when one is missing. Each use is recorded for the run's summary (which interpreters each test used), in the
    test's report: reports reach the process that prints the summary, also from pytest-xdist's workers."""
    interpreters = {version: str(path) for version, path in _runtime_pythons.items()}
    request.node.user_properties.append((RuntimePythonsSummary.PROPERTY, interpreters))
    return dict(_runtime_pythons)


class RuntimePythonsSummary:
    """Collects the runtime_pythons uses from the test reports; one summary line names the interpreters and tests."""
    PROPERTY = "runtime_pythons"

    def __init__(self) -> None:
        self.uses: dict[str, dict[str, str]] = {}  # test id -> the interpreters it was handed

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        for name, interpreters in report.user_properties:
            if name == self.PROPERTY:
                self.uses[report.nodeid] = interpreters

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if self.uses:
            interpreters = {version: path for used in self.uses.values() for version, path in used.items()}
            terminalreporter.write_line(
                "runtime pythons: " + ", ".join(f"{version} {interpreters[version]}" for version in sorted(interpreters))
                + f"; used by {len(self.uses)} tests: " + ", ".join(sorted(self.uses)))


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(RuntimePythonsSummary(), "runtime-pythons-summary")


# make check runs `pytest -n 2 --dist loadfile --no-loadscope-reorder`: one file's tests in one worker (its module
# fixtures made once), files handed out in collection order. These go first, slowest first, so that none starts last.
SLOWEST_FILES = ("tests/test_terraform_test.py", "tests/test_terraform.py", "tests/test_plan_and_build_agree.py")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    """Every test of a file that uses a `localstack` fixture (this repo's or the executor's) is marked
    `localstack`: such a file starts LocalStack, through the fixture or its own EmbeddedLocalStack.

    Under `-m "not localstack"` (make check), starting one anyway is an error, not a silent slow start."""
    uses_localstack = {item.path for item in items if "localstack" in getattr(item, "fixturenames", ())}
    for item in items:
        if item.path in uses_localstack:
            item.add_marker(pytest.mark.localstack)
    if hasattr(config, "workerinput"):  # a pytest-xdist worker (make check): the slowest files are handed out first
        rank = {name: place for place, name in enumerate(SLOWEST_FILES)}
        items.sort(key=lambda item: rank.get(item.path.relative_to(config.rootpath).as_posix(), len(rank)))
    if "not localstack" in (config.getoption("markexpr", "") or ""):
        from localstack_process_executor.launcher import EmbeddedLocalStack, LauncherError

        def refuse(self, *args, **kwargs):
            raise LauncherError('this test starts LocalStack under -m "not localstack": mark it localstack')

        EmbeddedLocalStack.start = refuse
