"""examples/, applied for real: each example's folder is the root module (tflocal init/apply there, the
module at ../..), every function it deploys is invoked, a second plan shows no changes, then it is destroyed.

Each example is applied once, on a worker thread as the session starts (see conftest), and shared by its
tests, which run in file order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import subprocess
import uuid
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import pytest
from integration_helpers import assert_no_secret_text, build_package, function_logs, replace_code

from localdeploy import EXAMPLES, ROOT, Example, invoke

import build

pytestmark = pytest.mark.localstack

RUN = uuid.uuid4().hex[:6]  # LocalStack is fresh each session; this keeps names apart from other tests
SEED_SECRET = "hello, world!"
ORDERS_SECRETS = {"db_password": "orders p4ssw0rd, never shown"}
BILLING_SECRETS = {"api_token": "billing t0ken, never shown"}
SIGNING_KEY = "with-dependencies signing key, never shown"
EXAMPLE_NAMES = ("seed", "shared-key", "with-dependencies")
ELF_MACHINE = {b"\x3e\x00": "x86_64", b"\xb7\x00": "aarch64"}  # e_machine, little-endian, at offset 18
VARIABLES = {
    "seed": {"function_name": f"seed-{RUN}", "secrets": {"credential": SEED_SECRET}},
    "shared-key": {"name_prefix": f"shared-{RUN}", "orders_secrets": ORDERS_SECRETS,
                   "billing_secrets": BILLING_SECRETS},
    "with-dependencies": {"function_name": f"deps-{RUN}", "signing_key": SIGNING_KEY},
}


def in_parallel(pool: ThreadPoolExecutor, work: dict[str, Callable[[], object]]) -> dict[str, Future]:
    return {name: pool.submit(job) for name, job in work.items()}


def apply_as_its_readme_says(example: Example) -> Example:
    """One apply each, the shared key and its two functions included."""
    return example.init().apply()


def start_deployments(background, tmp_path_factory) -> None:
    """Apply each example from nothing on a worker (conftest starts them early; the fixtures wait)."""
    for name in EXAMPLE_NAMES:
        background.start(f"{__name__}:{name}", lambda name=name: Example(
            name, variables=VARIABLES[name], workdir=tmp_path_factory.mktemp(name)), apply_as_its_readme_says)


@pytest.fixture(scope="module")
def applied(background, tmp_path_factory) -> Iterator[Callable[[str], Example]]:
    """The examples by name, once applied (a failed apply fails only that example's tests). At the end,
    destroy whatever they left, all at once."""
    start_deployments(background, tmp_path_factory)
    yield lambda name: background.result(f"{__name__}:{name}")
    examples = [background.deployment(f"{__name__}:{name}") for name in EXAMPLE_NAMES]
    with ThreadPoolExecutor(max_workers=len(examples)) as pool:
        leftovers = in_parallel(pool, {example.name: example.destroy for example in examples
                                       if example.has_resources()})
    for example in examples:
        example.remove()
    for future in leftovers.values():
        future.result()


@pytest.fixture(scope="module")
def seed(applied) -> Example:
    return applied("seed")


@pytest.fixture(scope="module")
def shared_key(applied) -> Example:
    return applied("shared-key")


@pytest.fixture(scope="module")
def with_dependencies(applied) -> Example:
    return applied("with-dependencies")


@pytest.fixture(scope="module")
def lambda_client(aws):
    return aws("lambda")


@pytest.fixture(scope="module")
def examples(seed, shared_key, with_dependencies) -> dict[str, Example]:
    return {"seed": seed, "shared-key": shared_key, "with-dependencies": with_dependencies}


def every_secret() -> dict[str, str]:
    return {"seed secret": SEED_SECRET, **{f"orders {k}": v for k, v in ORDERS_SECRETS.items()},
            **{f"billing {k}": v for k, v in BILLING_SECRETS.items()}, "signing key": SIGNING_KEY}


# --- seed: the article's flow, with the echo handler ------------------------------------------------


def test_seed_function_opens_its_secret_and_echoes_it(seed, lambda_client):
    name = seed.outputs()["function_name"]
    assert invoke(lambda_client, name)[:2] == (None, SEED_SECRET)
    assert invoke(lambda_client, name, {"secret": "credential"})[:2] == (None, SEED_SECRET)


def test_seed_second_plan_has_no_changes(seed):
    assert seed.plan_exit_code() == 0


# --- shared-key: two functions, one key, neither opens the other's secret ---------------------------


def test_shared_key_each_function_opens_its_own_secret_on_the_one_key(shared_key, lambda_client, aws):
    outputs = shared_key.outputs()
    functions = outputs["functions"]
    for label, secrets in [("orders", ORDERS_SECRETS), ("billing", BILLING_SECRETS)]:
        name = functions[label]["function_name"]
        error, payload, logs = invoke(lambda_client, name)
        assert (error, payload) == (None, {"opened": sorted(secrets)})
        assert_no_secret_text(every_secret(), json.dumps(payload), logs, function_logs(aws, name))
        # Bound to its own function's context, sealed under the shared key.
        assert functions[label]["encryption_context"] == {"LambdaFunctionName": name}
        configuration = lambda_client.get_function(FunctionName=name)["Configuration"]
        assert configuration["Role"].endswith(f":role/{name}-lambda")
    # One key in all: the modules made none and no alias of their own.
    state = json.loads(shared_key.state_text())
    keys = [r for r in state["resources"] if r["type"] == "aws_kms_key" and r["mode"] == "managed"]
    assert [(r.get("module"), r["name"]) for r in keys] == [(None, "shared")]
    assert not [r for r in state["resources"] if r["type"] == "aws_kms_alias" and r.get("module")]


def test_shared_key_policy_names_each_role_under_its_own_context_and_no_blanket_grant(shared_key, aws):
    outputs = shared_key.outputs()
    deployed = json.loads(aws("kms").get_key_policy(KeyId=outputs["kms_key_arn"], PolicyName="default")["Policy"])
    assert deployed == json.loads(outputs["key_policy"])
    statements = deployed["Statement"]
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert "kms:*" not in actions and "*" not in actions, statement
    admin, *decrypts = statements
    assert admin["Sid"] == "KeyAdministration"
    assert not {"kms:Decrypt", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:ReEncrypt*", "kms:CreateGrant"} & set(
        admin["Action"])
    assert {"kms:Encrypt", "kms:PutKeyPolicy", "kms:ScheduleKeyDeletion"} <= set(admin["Action"])  # no lockout
    caller = aws("sts").get_caller_identity()["Arn"]  # LocalStack's account root
    assert admin["Principal"] in ({"AWS": caller}, {"AWS": [caller]})
    # One Decrypt statement per function: only its role's principal ARN, only under its own context.
    opened_by = {}
    for statement in decrypts:
        assert statement["Action"] == "kms:Decrypt" and statement["Effect"] == "Allow"
        condition = statement["Condition"]
        function_name = condition["StringEquals"]["kms:EncryptionContext:LambdaFunctionName"]
        opened_by[function_name] = condition["ArnEquals"]["aws:PrincipalArn"]
        role_id = aws("iam").get_role(RoleName=f"{function_name}-lambda")["Role"]["RoleId"]
        assert condition["StringLike"] == {"aws:userid": f"{role_id}:*"}, statement
    account = caller.split(":")[4]
    assert opened_by == {name: f"arn:aws:iam::{account}:role/{name}-lambda"
                         for name in (f["function_name"] for f in outputs["functions"].values())}


def test_shared_key_second_plan_has_no_changes(shared_key):
    assert shared_key.plan_exit_code() == 0


@pytest.mark.parametrize("swap", ["orders' package deployed as billing", "billing's package given orders' blob"])
def test_shared_key_a_function_cannot_open_the_other_functions_ciphertext(
        swap, shared_key, lambda_client, aws, tmp_path):
    functions = shared_key.outputs()["functions"]
    orders, billing = functions["orders"], functions["billing"]
    (orders_secret, orders_blob), = orders["ciphertexts"].items()
    (billing_secret, _), = billing["ciphertexts"].items()
    if swap.startswith("orders' package"):
        package, secret_name = shared_key.package_of(orders["function_name"]), orders_secret
    else:  # billing's own handler and secret name, carrying orders' ciphertext
        template = shared_key.workdir / "lambda_src" / "handler.py.tmpl"
        package = build_package(shared_key.workdir, template, {billing_secret: orders_blob}, tmp_path / "swap.zip",
                                "--runtime=python3.13", "--architecture=x86_64",
                                f"--key-arn={shared_key.outputs()['kms_key_arn']}")
        secret_name = billing_secret
    own_package = shared_key.package_of(billing["function_name"])
    replace_code(lambda_client, billing["function_name"], package)
    try:
        error, payload, logs = invoke(lambda_client, billing["function_name"])
        assert error == "Unhandled" and payload["errorType"] == "SecretDecryptionError"
        assert payload["errorMessage"] == (
            f"could not decrypt sealed secret '{secret_name}': KMS InvalidCiphertextException")
        assert_no_secret_text({**every_secret(), "orders' ciphertext": orders_blob}, json.dumps(payload), logs,
                              function_logs(aws, billing["function_name"]))
    finally:
        replace_code(lambda_client, billing["function_name"], own_package)
    # Its own package back: it opens its own secret again.
    assert invoke(lambda_client, billing["function_name"])[:2] == (None, {"opened": [billing_secret]})


# --- with-dependencies: a whole source folder and a C extension from requirements.txt ---------------


def test_with_dependencies_runs_its_subpackage_data_file_and_c_extension(with_dependencies, lambda_client, aws):
    name = with_dependencies.outputs()["function_name"]
    error, payload, logs = invoke(lambda_client, name, {"name": "<script>alert(1)</script>"})
    assert error is None, payload
    page = '<p class="greeting">Hello, &lt;script&gt;alert(1)&lt;/script&gt;!</p>\n'
    assert payload == {
        "page": page,  # the data file, filled by the subpackage, escaped by markupsafe
        "signature": hmac.new(SIGNING_KEY.encode(), page.encode(), hashlib.sha256).hexdigest(),  # its own key
        "greeter_from_package": True,
        "markupsafe": {
            "from_package": True,  # not LocalStack's own copy of markupsafe
            "speedups": "_speedups.cpython-313-x86_64-linux-gnu.so",
            "speedups_is_c_extension": True,
            "escape_is_compiled": True,
        },
        "opened": ["signing_key"],
    }
    assert_no_secret_text(every_secret(), json.dumps(payload), logs, function_logs(aws, name))


def test_with_dependencies_package_is_the_folder_plus_its_requirements(with_dependencies):
    outputs = with_dependencies.outputs()
    package = with_dependencies.package_of(outputs["function_name"])
    with zipfile.ZipFile(BytesIO(package)) as archive:
        names = set(archive.namelist())
        speedups = archive.read("markupsafe/_speedups.cpython-313-x86_64-linux-gnu.so")
    assert {"handler.py", "sealed_secrets/__init__.py", "greeter/__init__.py", "greeter/formats/__init__.py",
            "greeter/formats/html.py", "greeter/templates/greeting.html", "markupsafe/__init__.py"} <= names
    assert "handler.py.tmpl" not in names
    # no bytecode from the folder or from pip; only the helper's own, committed, for the function's runtime
    assert {n for n in names if n.endswith(".pyc") or "__pycache__" in n} == set(build.helper_bytecode("python3.13"))
    assert speedups[:4] == b"\x7fELF" and ELF_MACHINE[speedups[18:20]] == "x86_64"
    assert SIGNING_KEY.encode() not in package


def test_with_dependencies_second_plan_has_no_changes(with_dependencies):
    assert with_dependencies.plan_exit_code() == 0


def test_with_dependencies_arm64_variant_plans_and_its_package_is_aarch64(with_dependencies, tmp_path):
    """LocalStack here cannot run arm64 code, so the arm64 variant is planned, not applied; the package that
    its apply would build, built here by the same build.py call, carries an AArch64 _speedups."""
    plan = with_dependencies.plan_json({"architecture": "arm64"})
    changes = {change["address"]: change for change in plan["resource_changes"]}
    function = changes["module.function.aws_lambda_function.this"]
    assert function["change"]["actions"] == ["update"]
    assert function["change"]["after"]["architectures"] == ["arm64"]
    assert changes["module.function.terraform_data.package"]["change"]["actions"] == ["delete", "create"]
    assert plan["planned_values"]["outputs"]["architecture"]["value"] == "arm64"
    # The package that apply would build: the deployed ciphertext (the plan keeps it), built for arm64.
    state = json.loads(with_dependencies.state_text())
    (sealed,) = [r for r in state["resources"] if r["type"] == "aws_kms_ciphertext"]
    attributes = sealed["instances"][0]["attributes"]
    package = build_package(with_dependencies.workdir, with_dependencies.root_dir / "src" / "handler.py.tmpl",
                            {"signing_key": attributes["ciphertext_blob"]}, tmp_path / "arm64.zip",
                            "--runtime=python3.13", "--architecture=arm64", f"--key-arn={attributes['key_id']}")
    with zipfile.ZipFile(BytesIO(package)) as archive:
        speedups = archive.read("markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so")
    assert speedups[:4] == b"\x7fELF" and ELF_MACHINE[speedups[18:20]] == "aarch64"
    assert with_dependencies.outputs()["architecture"] == "x86_64"  # a plan changes nothing deployed


# --- every example ------------------------------------------------------------------------------------


def test_every_example_is_fmt_clean_and_documents_each_input_and_output_in_its_readme():
    assert sorted(path.name for path in EXAMPLES.iterdir() if path.is_dir()) == sorted(EXAMPLE_NAMES)
    result = subprocess.run(["terraform", "fmt", "-check", "-recursive", "-diff", "-no-color", str(EXAMPLES)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for name in EXAMPLE_NAMES:
        folder = EXAMPLES / name
        config = "\n".join(path.read_text() for path in sorted(folder.glob("*.tf")))
        assert 'source = "../.."' in config
        declared = sorted(re.findall(r'^(?:variable|output) "([^"]+)"', config, re.MULTILINE))
        documented = sorted(re.findall(r"^\| `([a-z0-9_]+)` \|", (folder / "README.md").read_text(), re.MULTILINE))
        assert documented == declared, name
        for block in re.findall(r'^(?:variable|output) "[^"]+" \{.*?^\}', config, re.MULTILINE | re.DOTALL):
            assert "description =" in block, block  # every input and output is described...
            if block.startswith("variable"):
                assert "type " in block, block  # ...every input typed (the module validates what it is passed)


def test_every_example_validates(examples):
    def validate(example: Example) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["terraform", "validate", "-no-color"], cwd=example.root_dir, capture_output=True,
                              text=True)

    with ThreadPoolExecutor(max_workers=len(examples)) as pool:
        results = in_parallel(pool, {name: (lambda example=example: validate(example))
                                     for name, example in examples.items()})
    for name, future in results.items():
        result = future.result()
        assert result.returncode == 0, f"{name}: {result.stdout}{result.stderr}"


def test_every_example_destroys_to_nothing(examples, aws):
    function_names = [f"seed-{RUN}", f"shared-{RUN}-orders", f"shared-{RUN}-billing", f"deps-{RUN}"]
    key_arns = [examples["shared-key"].outputs()["kms_key_arn"], examples["seed"].outputs()["kms_key_arn"]]
    with ThreadPoolExecutor(max_workers=len(examples)) as pool:
        for future in in_parallel(pool, {name: example.destroy for name, example in examples.items()}).values():
            future.result()
    for example in examples.values():
        assert not example.has_resources()
    lambda_client, kms, iam, logs = aws("lambda"), aws("kms"), aws("iam"), aws("logs")
    assert not {f["FunctionName"] for f in lambda_client.list_functions()["Functions"]} & set(function_names)
    assert not {r["RoleName"] for r in iam.list_roles()["Roles"]} & {f"{name}-lambda" for name in function_names}
    assert not {g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]} & {
        f"/aws/lambda/{name}" for name in function_names}
    for key_arn in key_arns:
        assert kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert not [a["AliasName"] for a in kms.list_aliases()["Aliases"] if RUN in a["AliasName"]]
