"""Deploy this module, or one of its examples, to an embedded LocalStack with tflocal (python-terraform).

Shared by ``make demo``, the integration tests and the benchmark, so that all three deploy
exactly as a user would: a copy of the module in a scratch folder, ``tflocal init`` and
``tflocal apply``, then plain boto3 (via localstack-client) against the deployed function.

- ``Stack``: the module itself as the root module (its own variables, its own state).
- ``Example``: ``examples/<name>`` as the root module, copied with the module at ``../..``
  relative to it, exactly as the example's ``source = "../.."`` expects.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from python_terraform import IsFlagged, Terraform

ROOT = Path(__file__).resolve().parents[2]  # devtools/localdeploy/__init__.py -> the repo
EXAMPLES = ROOT / "examples"
# Besides every top-level *.tf: what the module reads at plan or apply time.
MODULE_FILES = ("build.py", "build_rules.json")
# Terraform and the AWS provider are Go programs that spend about a quarter of their CPU in the garbage
# collector while they load the provider's schema, on every command. Collecting less often cuts that
# (seed example, 2 cores: apply 15.6 -> 10.8 s CPU, destroy 14.6 -> 10.9 s) for ~10% more memory.
GO_RUNTIME_ENV = {"GOGC": os.environ.get("GOGC", "400")}
# Every Terraform run of the project (the Terraform tier too): the GC setting above, and no checkpoint call
# (Terraform's version check over the network, which offline costs a failed DNS lookup per command).
TERRAFORM_ENV = {**GO_RUNTIME_ENV, "CHECKPOINT_DISABLE": os.environ.get("CHECKPOINT_DISABLE", "1")}
# Never copied from a source tree: local Terraform state, caches, tflocal's generated override.
SCRATCH_PATTERNS = (".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan",
                    "terraform.tfvars*", "localstack_providers_override.tf", "__pycache__", "dist")


def use_project_terraform_config() -> None:
    """Use the CLI config scripts/bootstrap wrote (provider mirror, plugin cache) unless a usable one is already
    set, and TERRAFORM_ENV where the caller has not set those variables."""
    for name, value in TERRAFORM_ENV.items():
        os.environ.setdefault(name, value)
    project_config = ROOT / ".tools" / "terraformrc"
    if project_config.is_file() and not Path(os.environ.get("TF_CLI_CONFIG_FILE", "")).is_file():
        os.environ["TF_CLI_CONFIG_FILE"] = str(project_config)


class DeployError(RuntimeError):
    """A Terraform command failed; carries its output (which never holds a sealed plaintext)."""


def copy_module(destination: Path, root: Path = ROOT) -> Path:
    """A working copy of the module: its .tf files, build.py and its rules, lambda_src and the helper's bytecode,
    the Terraform tests."""
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(root.glob("*.tf")):
        shutil.copy2(path, destination / path.name)
    for name in MODULE_FILES:
        if (root / name).is_file():  # build_rules.json arrives with the source-folder build
            shutil.copy2(root / name, destination / name)
    shutil.copytree(root / "lambda_src", destination / "lambda_src",
                    ignore=shutil.ignore_patterns(*SCRATCH_PATTERNS), dirs_exist_ok=True)
    if (root / "helper_bytecode").is_dir():
        shutil.copytree(root / "helper_bytecode", destination / "helper_bytecode", dirs_exist_ok=True)
    (destination / "tests").mkdir(exist_ok=True)
    for tftest in (root / "tests").glob("*.tftest.hcl"):
        shutil.copy2(tftest, destination / "tests" / tftest.name)
    return destination


def copy_example(name: str, destination: Path, root: Path = ROOT) -> Path:
    """A working copy of the module with ``examples/<name>`` inside it; returns the example's folder."""
    source = root / "examples" / name
    if not (source / "main.tf").is_file():
        raise DeployError(f"no example named {name!r} (looked for {source / 'main.tf'})")
    copy_module(destination, root)
    example = destination / "examples" / name
    shutil.copytree(source, example, ignore=shutil.ignore_patterns(*SCRATCH_PATTERNS), dirs_exist_ok=True)
    return example


@contextmanager
def aws_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Point tflocal, Terraform and boto3 at LocalStack (python-terraform passes os.environ on)."""
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def write_private_json(path: Path, values: Mapping[str, Any]) -> None:
    """Write a tfvars file owner-only: it may hold plaintexts, like the state does."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(values, handle)


class Deployment:
    """One Terraform root module in a scratch copy of the module (its own state), driven by tflocal."""

    def __init__(self, workdir: Path, root_dir: Path) -> None:
        self.workdir = workdir  # the module's copy: build.py writes dist/<function_name>.zip here
        self.root_dir = root_dir  # where tflocal runs: the module itself, or examples/<name>
        self.transcript: list[tuple[str, str]] = []  # (command, output) of every command, to check for leaks
        tflocal = shutil.which("tflocal", path=str(Path(sys.executable).parent)) or "tflocal"
        self.terraform = Terraform(working_dir=str(root_dir), terraform_bin_path=tflocal)

    def write_variables(self, values: Mapping[str, Any]) -> None:
        # build.py runs under this interpreter: it has pip, which requirements.txt needs.
        write_private_json(self.root_dir / "terraform.tfvars.json", {"python_executable": sys.executable, **values})

    def run(self, command: str, *args: str, check: bool = True, **options: Any) -> tuple[int, str, str]:
        if command in ("init", "plan", "apply", "destroy"):
            options.setdefault("input", False)  # never wait for a prompt
        code, out, err = self.terraform.cmd(command, *args, no_color=IsFlagged, **options)
        self.transcript.append((command, f"{out or ''}{err or ''}"))
        if check and code != 0:
            raise DeployError(f"terraform {command} failed ({code}):\n{out}\n{err}")
        return code, out, err

    def init(self) -> Deployment:
        self.run("init")
        return self

    def apply(self, *targets: str) -> Deployment:
        self.run("apply", auto_approve=IsFlagged, target=list(targets) or None)
        return self

    def plan_exit_code(self) -> int:
        """0: no changes, 2: changes (terraform plan -detailed-exitcode)."""
        code, _, _ = self.run("plan", check=False, detailed_exitcode=IsFlagged)
        if code not in (0, 2):
            raise DeployError(f"terraform plan failed ({code}): {self.transcript[-1][1]}")
        return code

    def plan_json(self, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A real plan as JSON; ``variables`` override the tfvars file for this plan only."""
        self.run("plan", out="plan.tfplan", var=dict(variables) if variables else None)
        _, out, _ = self.run("show", "plan.tfplan", json=IsFlagged)
        return json.loads(out)

    def destroy(self) -> None:
        self.run("destroy", auto_approve=IsFlagged)

    def outputs(self) -> dict[str, Any]:
        _, out, _ = self.run("output", json=IsFlagged)
        return {name: item["value"] for name, item in json.loads(out).items()}

    def state_text(self) -> str:
        path = self.root_dir / "terraform.tfstate"
        return path.read_text() if path.exists() else ""

    def has_resources(self) -> bool:
        """Whether the state still holds anything (teardown destroys only then)."""
        state = self.state_text()
        return bool(state) and bool(json.loads(state).get("resources"))

    def package_of(self, function_name: str) -> bytes:
        """The zip the module built for that function (dist/<function_name>.zip in the module's copy)."""
        return (self.workdir / "dist" / f"{function_name}.zip").read_bytes()

    def remove(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)


class Stack(Deployment):
    """One deployment of the module itself as the root module, in its own scratch folder."""

    def __init__(self, function_name: str, *, secrets: Mapping[str, str] | None = None,
                 encrypted_secrets: Mapping[str, str] | None = None, workdir: Path | None = None,
                 extra_vars: Mapping[str, Any] | None = None) -> None:
        module = copy_module(workdir or Path(tempfile.mkdtemp(prefix=f"stack-{function_name}-")))
        super().__init__(module, module)
        self.function_name = function_name
        # extra_vars may set any variable, secrets and encrypted_secrets included.
        self.set_variables(**{"secrets": secrets or {}, "encrypted_secrets": encrypted_secrets or {},
                              **(extra_vars or {})})

    def set_variables(self, **variables: Any) -> None:
        """Write terraform.tfvars.json: the function's name plus ``variables``."""
        self.write_variables({"function_name": self.function_name, **variables})

    def package(self) -> bytes:
        return self.package_of(self.function_name)


class Example(Deployment):
    """``examples/<name>`` applied as a user would: its folder as the root, the module at ``../..``."""

    def __init__(self, name: str, *, variables: Mapping[str, Any] | None = None,
                 workdir: Path | None = None) -> None:
        scratch = workdir or Path(tempfile.mkdtemp(prefix=f"example-{name}-"))
        super().__init__(scratch, copy_example(name, scratch))
        self.name = name
        self.set_variables(**(variables or {}))

    def set_variables(self, **variables: Any) -> None:
        """Write terraform.tfvars.json in the example's folder: ``variables`` (plus python_executable)."""
        self.write_variables(variables)


def invoke(lambda_client: Any, function_name: str, event: Any = None) -> tuple[str | None, Any, str]:
    """Invoke as ``aws lambda invoke --log-type Tail`` does: (FunctionError, payload, log tail)."""
    response = lambda_client.invoke(FunctionName=function_name, Payload=json.dumps(event or {}).encode(),
                                    LogType="Tail")
    payload = response["Payload"].read()
    logs = base64.b64decode(response.get("LogResult", "")).decode("utf-8", "replace")
    return response.get("FunctionError"), json.loads(payload) if payload else None, logs


def retire_environments(lambda_client: Any, function_name: str) -> None:
    """Make the next invocation a cold start: a configuration change retires the warm environments.

    It changes the function's description, so a following ``terraform plan`` shows that drift.
    """
    lambda_client.update_function_configuration(FunctionName=function_name, Description=uuid.uuid4().hex)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=function_name,
                                                          WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
