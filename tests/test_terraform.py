"""The Terraform tier: fmt and validate on a copy of the module, every validation message, the agreement of
Terraform's file list with build.py's, and the examples (`terraform test` and the policies it renders:
tests/test_terraform_test.py)."""

from __future__ import annotations

import ast
import hashlib
import inspect
import json
import os
import re
import ssl
import textwrap
from pathlib import Path

import pytest
from localdeploy import ROOT, copy_example, copy_module
from terraform_cli import init, initialised_module, terraform

import build

pytestmark = pytest.mark.terraform

# For plans that only need to get as far as validating the variables: a provider that never asks AWS
# anything up front, pointed at a dead loopback port.
OFFLINE_PROVIDER = """
provider "aws" {
  region                      = "eu-west-1"
  access_key                  = "offline"
  secret_key                  = "offline"
  skip_credentials_validation = true
  skip_requesting_account_id  = true
  skip_metadata_api_check     = true
  max_retries                 = 1
}
"""
OFFLINE_AWS = {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return initialised_module(tmp_path_factory)


@pytest.fixture(scope="module")
def offline_module_dir(tmp_path_factory):
    directory = copy_module(tmp_path_factory.mktemp("offline"))
    (directory / "offline_provider.tf").write_text(OFFLINE_PROVIDER)
    return init(directory)


def test_fmt_check(module_dir):
    result = terraform(module_dir, "fmt", "-check", "-recursive", "-diff")
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate(module_dir):
    result = terraform(module_dir, "validate")
    assert result.returncode == 0, result.stdout + result.stderr


# Each hostile or out-of-range value, the variable that must refuse it, and the words of its message.
# They go into one plan: Terraform reports every invalid variable at once, before any API call.
REJECTED = {
    "function_name": ("orders api;$(touch canary)", "function_name must be 1-57 letters, digits"),
    "secrets": ('{"db`id`" = "x"}', "Every key of secrets must be a letter followed by"),
    "encrypted_secrets": ('{token = "AQID$(touch canary)"}', "Every value of encrypted_secrets must be a base64"),
    "handler_template": ("src/-x.py.tmpl", "where <module> is a Python identifier"),
    "runtime": ("python3.13; id", "runtime must be one of"),
    "architectures": ('["x86_64", "arm64"]', "architectures must be [\"x86_64\"] or [\"arm64\"]"),
    "python_executable": ("--version", "not starting with '-', no control characters"),
    "environment_variables": ('{AWS_LAMBDA_FUNCTION_NAME = "impostor"}', "may not set names Lambda reserves"),
    "vpc_subnet_ids": ('["subnet-1 ; id"]', "vpc_subnet_ids must be at most 16 subnet IDs"),
    "vpc_security_group_ids": ('["sg-$(id)"]', "vpc_security_group_ids must be at most 5 security group IDs"),
    "layers": ('["my-layer"]', "layers must be at most 5 layer version ARNs"),
    "reserved_concurrent_executions": ("1.5", "reserved_concurrent_executions must be -1"),
    "tracing_mode": ("Always", "tracing_mode must be PassThrough or Active"),
    "ephemeral_storage_size": ("100", "ephemeral_storage_size must be a whole number of MB from 512 to 10240"),
    "dead_letter_target_arn": ("arn:aws:lambda:eu-west-1:123456789012:function:x", "must be an SQS queue or SNS topic ARN"),
    "code_signing_config_arn": ("csc-1", "code_signing_config_arn must be a code-signing configuration ARN"),
    "log_retention_in_days": ("10", "log_retention_in_days must be one of CloudWatch's values"),
    "log_kms_key_arn": ("alias/logs", "log_kms_key_arn must be a KMS key ARN (not an alias)"),
    "kms_key_arn": ("arn:aws:kms:eu-west-1:123456789012:alias/shared", "kms_key_arn must be a KMS key ARN"),
    "key_administrators": ('["*"]', "key_administrators must be IAM ARNs"),
    "decrypt_vpc_endpoint_ids": ('["vpce-*"]', "decrypt_vpc_endpoint_ids must be VPC endpoint IDs"),
    "kms_deletion_window_in_days": ("3", "kms_deletion_window_in_days must be a whole number from 7 to 30"),
    "memory_size": ("64", "memory_size must be a whole number of MB from 128 to 10240"),
    "timeout": ("901", "timeout must be a whole number of seconds from 1 to 900"),
    "tags": ('{"team\\n" = "x`id`"}', "tags: at most 50; keys 1-128"),
}


def test_every_bad_value_is_refused_at_plan_time_by_its_variable_with_its_message(offline_module_dir):
    arguments = [f"-var={name}={value}" for name, (value, _) in REJECTED.items()]
    result = terraform(offline_module_dir, "plan", "-input=false", "-lock=false", *arguments, env=OFFLINE_AWS)
    output = " ".join((result.stdout + result.stderr).split())  # messages are wrapped at 80 columns
    assert result.returncode == 1, output
    # One "Invalid value for variable" block per variable: each names the variable and carries its message.
    blocks = {match[1]: match[2] for match in re.finditer(
        r'Invalid value for variable on variables\.tf line \d+: \d+: variable "(\w+)" \{(.*?)This was checked',
        output)}
    assert sorted(blocks) == sorted(REJECTED), output
    for name, (_, message) in REJECTED.items():
        assert message in blocks[name], f"{name}: {blocks[name]}"


def test_a_valid_configuration_passes_every_validation(offline_module_dir):
    """The control for the test above: the same plan with good values fails only for want of AWS."""
    result = terraform(offline_module_dir, "plan", "-input=false", "-lock=false", "-var=function_name=orders-api",
                       "-var=encrypted_secrets={token = \"AQICAHhzZWFsZWQ=\"}", env=OFFLINE_AWS)
    output = result.stdout + result.stderr
    assert "Invalid value for variable" not in output
    assert "127.0.0.1:9" in output, output  # it got as far as asking (the dead) AWS


# --- The function's configuration cannot redirect trust --------------------------------------------------
# Every environment variable the runtime helper reads, explicitly or through what it calls, must be refused by
# environment_variables (build_rules.json's refused_environment_variables, or Lambda's reserved names) or be
# allowed here with the reason it cannot redirect the request, the trust or the credentials.

RULES = json.loads((ROOT / "build_rules.json").read_text())
LAMBDA_RESERVED = ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                   "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_EXECUTION_ENV")  # the module
# refuses these as Lambda's own (AWS_LAMBDA_* all)
ALLOWED_READS = {
    r"AWS_(SECURITY_TOKEN|CREDENTIAL_EXPIRATION)": "a token or an expiry: a wrong one makes the request fail, "
                                                   "it cannot send it elsewhere (Lambda sets the credentials)",
    r"AWS_ACCOUNT_ID(_ENDPOINT_MODE)?": "account-based endpoints exist for DynamoDB, not KMS",
    r"AWS_(AUTH_SCHEME_PREFERENCE|SIGV4A_SIGNING_REGION_SET)": "how the request is signed, not where it goes",
    r"AWS_CSM_(ENABLED|HOST|PORT|CLIENT_ID)": "client-side monitoring: call metrics (service, operation, latency), "
                                              "never a request's body",
    r"AWS_(DEFAULTS_MODE|MAX_ATTEMPTS|RETRY_MODE|METADATA_SERVICE_TIMEOUT|METADATA_SERVICE_NUM_ATTEMPTS)":
        "timeouts and retries: how long and how often, not where",
    r"BOTOCORE_TCP_KEEPALIVE|AWS_SDK_UA_APP_ID": "a socket option; the user agent",
    r"AWS_(DISABLE_REQUEST_COMPRESSION|REQUEST_MIN_COMPRESSION_SIZE_BYTES|REQUEST_CHECKSUM_CALCULATION|"
    r"RESPONSE_CHECKSUM_VALIDATION|DISABLE_HOST_PREFIX_INJECTION)": "body encoding and checksums, and host prefixes, "
                                                                    "which KMS's operations do not have",
    r"AWS_ENDPOINT_DISCOVERY_ENABLED": "KMS has no endpoint discovery; discovered endpoints come from AWS itself",
    r"AWS_STS_REGIONAL_ENDPOINTS": "chooses between AWS's own STS endpoints; the openers never call STS",
    r"AWS_IMDS_USE_IPV6": "which of AWS's own metadata addresses; Lambda has no instance metadata",
    r"AWS_LOGIN_CACHE_DIRECTORY": "read only for a profile's login session, and profiles are refused",
    r"(HTTPS?|ALL|NO)_PROXY|(https?|all|no)_proxy": "a proxy tunnels TLS that is verified end to end: it sees a host "
                                                    "name, never the request",
    r"REQUEST_METHOD": "read only to ignore HTTP_PROXY when set (a CGI request could set it), as urllib does",
    r"SEALED_SECRETS_PREFETCH": "the module's prefetch_secrets switch: when the secrets are opened, not where",
}


def environment_reads_in(tree: ast.AST, where: str, *, strict: bool = True) -> set[str]:
    """The names a module's code reads from the environment: os.environ[...] and .get(...), os.getenv(...), and
    any mapping called environ (the openers take os.environ as a parameter). In the helper's own code (strict) a
    name the code computes fails: this test must see every one; botocore's constants are read from its classes."""
    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id == "environ") or (
            isinstance(node, ast.Attribute) and node.attr == "environ")

    names: set[str] = set()
    # Names bound to literal strings: module-level constants (a name or a tuple of names), and the targets of
    # loops and comprehensions over them, so that `environ[FULL_URI]` and `for name in _NAMES` are seen too.
    bound: dict[str, set[str]] = {}
    for node in getattr(tree, "body", []):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values = node.value.elts if isinstance(node.value, (ast.Tuple, ast.List)) else [node.value]
            if values and all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in values):
                bound[node.targets[0].id] = {v.value for v in values}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)) and isinstance(node.target, ast.Name) \
                and isinstance(node.iter, ast.Name) and node.iter.id in bound:
            bound[node.target.id] = bound[node.iter.id]

    def literal(node: ast.AST, line: int) -> None:
        if isinstance(node, ast.Name) and node.id in bound:
            names.update(bound[node.id])
            return
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            if not strict:
                return
            pytest.fail(f"{where}:{line} reads the environment by a computed name: name it literally")
        names.add(node.value)

    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_environ(node.value):
            literal(node.slice, node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("get", "pop", "setdefault") and is_environ(node.func.value) or (
                    node.func.attr == "getenv" and isinstance(node.func.value, ast.Name) and node.func.value.id == "os"):
                literal(node.args[0], node.lineno)
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            literal(node.left, node.lineno)
    return names


def helper_environment_reads() -> dict[str, str]:
    """Name => where: every .py under lambda_src/ (a module or the sealed_secrets package), plus what the code it
    calls reads: OpenSSL's default certificate paths and Python's key log through ssl.create_default_context,
    and botocore's configuration, credentials and endpoints through the boto3 opener."""
    reads: dict[str, str] = {}
    sources = sorted((ROOT / "lambda_src").rglob("*.py"))
    assert sources, "no runtime helper under lambda_src/"
    for path in sources:
        text = path.read_text()
        where = str(path.relative_to(ROOT))
        for name in environment_reads_in(ast.parse(text), where):
            reads.setdefault(name, where)
        if "create_default_context" in text:
            paths = ssl.get_default_verify_paths()
            for name in (paths.openssl_cafile_env, paths.openssl_capath_env):
                reads.setdefault(name, f"{where} (OpenSSL, through ssl.create_default_context)")
            # What ssl.create_default_context itself reads (SSLKEYLOGFILE), from its own source.
            for name in environment_reads_in(ast.parse(textwrap.dedent(inspect.getsource(ssl.create_default_context))),
                                             "ssl.create_default_context", strict=False):
                reads.setdefault(name, f"{where} (ssl.create_default_context)")
        if re.search(r"^\s*(import boto3|from botocore|import botocore)", text, re.MULTILINE):
            import botocore.configprovider
            import botocore.credentials
            import botocore.utils
            variables = getattr(botocore.configprovider, "BOTOCORE_DEFAULT_SESSION_VARIABLES", None) or \
                botocore.configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES  # botocore's own spelling, until fixed
            for _, env, *_ in variables.values():
                for name in ([env] if isinstance(env, str) else env or []):
                    reads.setdefault(name, f"{where} (botocore configuration)")
            for module in (botocore.credentials, botocore.configprovider, botocore.utils):
                for name in environment_reads_in(ast.parse(inspect.getsource(module)), module.__name__, strict=False):
                    reads.setdefault(name, f"{where} ({module.__name__})")
            providers = [c for c in vars(botocore.credentials).values() if isinstance(c, type)]
            for provider in providers:
                for attribute in dir(provider):
                    value = getattr(provider, attribute)
                    for name in ([value] if isinstance(value, str) else value if isinstance(value, list) else []):
                        if attribute.isupper() and re.fullmatch(r"AWS_[A-Z0-9_]+", str(name)):
                            reads.setdefault(name, f"{where} ({provider.__name__})")
            reads.setdefault("AWS_ENDPOINT_URL_KMS", f"{where} (botocore: AWS_ENDPOINT_URL_<service>)")
    return reads


def matches_any(name: str, patterns) -> str | None:
    return next((pattern for pattern in patterns if re.fullmatch(pattern, name)), None)


def test_every_environment_variable_the_helper_reads_is_refused_or_allowed_with_a_reason():
    reads = helper_environment_reads()
    # The scan sees what it must: the stdlib opener's endpoint and trust, OpenSSL's, Python's key log.
    assert {"AWS_ENDPOINT_URL_KMS", "AWS_CA_BUNDLE", "AWS_USE_FIPS_ENDPOINT", "SSL_CERT_FILE", "SSL_CERT_DIR",
            "SSLKEYLOGFILE", "AWS_REGION", "AWS_ACCESS_KEY_ID"} <= reads.keys(), sorted(reads)
    refused = RULES["refused_environment_variables"]
    unaccounted = {name: where for name, where in sorted(reads.items())
                   if not (matches_any(name, refused) or name in LAMBDA_RESERVED or matches_any(name, ALLOWED_READS))}
    assert not unaccounted, ("the runtime helper reads these, and environment_variables lets them through: refuse "
                             f"them in build_rules.json or allow them here with a reason: {unaccounted}")
    both = {name: pattern for name in reads if (pattern := matches_any(name, refused)) and matches_any(name, ALLOWED_READS)}
    assert not both, f"refused and allowed at once: {both}"


def test_the_scan_finds_every_form_of_read_and_refuses_a_computed_name():
    code = """
import os
a = os.environ["A1"]; b = os.environ.get("B1"); c = os.getenv("C1")
def f(environ): return environ.get("D1") or ("E1" in environ)
"""
    assert environment_reads_in(ast.parse(code), "x.py") == {"A1", "B1", "C1", "D1", "E1"}
    with pytest.raises(pytest.fail.Exception, match="x.py:1 reads the environment by a computed name"):
        environ_name = "os.environ.get(NAME)"
        environment_reads_in(ast.parse(environ_name), "x.py")


def example_name(pattern: str) -> str:
    """A name the pattern matches: AWS_ENDPOINT_URL(_.*)? => AWS_ENDPOINT_URL_KMS, AWS_CONTAINER_.* => ..._X."""
    name = re.sub(r"\(_\.\*\)\?", "_KMS", pattern).replace(".*", "X")
    assert re.fullmatch(pattern, name), (pattern, name)
    return name


def test_every_refused_environment_variable_is_refused_at_plan_with_its_reason(offline_module_dir):
    refused = {example_name(pattern): reason for pattern, reason in RULES["refused_environment_variables"].items()}
    refused |= {"AWS_ENDPOINT_URL": RULES["refused_environment_variables"]["AWS_ENDPOINT_URL(_.*)?"]}
    variables = "{" + ", ".join(f'{name} = "x"' for name in sorted(refused)) + "}"
    result = terraform(offline_module_dir, "plan", "-input=false", "-lock=false", "-var=function_name=orders-api",
                       "-var=encrypted_secrets={token = \"AQICAHhzZWFsZWQ=\"}", f"-var=environment_variables={variables}",
                       env=OFFLINE_AWS)
    output = " ".join((result.stdout + result.stderr).replace("│", " ").split())
    assert result.returncode == 1 and "environment_variables may not set" in output, output
    for name, reason in refused.items():
        assert f"{name}: it {' '.join(reason.split())}" in output, name
    # And what stays allowed is allowed: a proxy, and a variable of the function's own.
    result = terraform(offline_module_dir, "plan", "-input=false", "-lock=false", "-var=function_name=orders-api",
                       "-var=encrypted_secrets={token = \"AQICAHhzZWFsZWQ=\"}",
                       '-var=environment_variables={HTTPS_PROXY = "http://proxy:3128", REQUESTS_CA_BUNDLE = "/x", '
                       'STAGE = "prod"}', env=OFFLINE_AWS)
    assert "Invalid value for variable" not in result.stdout + result.stderr, result.stdout + result.stderr


def terraform_local(module_dir: Path, template: Path, expression: str):
    """The value of ``local.<expression>`` for a given handler_template, from `terraform console`."""
    result = terraform(module_dir, "console", f"-var=handler_template={template}", "-var=function_name=x",
                       stdin=f"jsonencode(local.{expression})\n")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(json.loads(result.stdout.strip()))


def source_files_in_terraform(module_dir: Path, template: Path) -> list[str]:
    return terraform_local(module_dir, template, "source_files")


def test_a_changed_data_file_changes_the_fingerprint_and_a_touched_pyc_does_not(module_dir, tmp_path):
    source = tmp_path / "src"
    (source / "app" / "__pycache__").mkdir(parents=True)
    (source / "handler.py.tmpl").write_text("SEALED = __SEALED_CIPHERTEXTS__\n")
    (source / "app" / "data.json").write_text('{"v": 1}')
    (source / "app" / "__pycache__" / "m.cpython-313.pyc").write_bytes(b"\x00")
    before = terraform_local(module_dir, source / "handler.py.tmpl", "package_inputs.sources")
    (source / "app" / "__pycache__" / "m.cpython-313.pyc").write_bytes(b"\x01")
    (source / "stray.pyc").write_bytes(b"\x02")
    assert terraform_local(module_dir, source / "handler.py.tmpl", "package_inputs.sources") == before
    (source / "app" / "data.json").write_text('{"v": 2}')
    after = terraform_local(module_dir, source / "handler.py.tmpl", "package_inputs.sources")
    assert after.keys() == before.keys() and after["app/data.json"] != before["app/data.json"]


def test_terraform_fingerprints_the_helper_bytecode_build_py_ships_for_the_runtime(module_dir):
    result = terraform(module_dir, "console", "-var=function_name=x", "-var=runtime=python3.12",
                       stdin="jsonencode(local.package_inputs.helper_bytecode)\n")
    assert result.returncode == 0, result.stdout + result.stderr
    fingerprinted = json.loads(json.loads(result.stdout.strip()))
    shipped = build.helper_bytecode("python3.12")
    assert len(shipped) == len(list((ROOT / "lambda_src" / "sealed_secrets").glob("*.py")))
    assert {f"sealed_secrets/__pycache__/{name.removesuffix('.pyc')}.cpython-312.pyc": digest
            for name, digest in fingerprinted.items()} == \
        {path: hashlib.sha256(data).hexdigest() for path, data in shipped.items()}


def test_terraform_fingerprints_exactly_the_files_build_py_packages(module_dir, tmp_path):
    """One rule (build_rules.json) decides; this proves both readers of it agree on a tricky tree,
    whose folder name holds glob characters that fileset() would otherwise expand."""
    source = tmp_path / "src [1]*?{a,b}"
    files = ["handler.py.tmpl", "app/__init__.py", "app/deep/er/data.json", "app/.env", ".hidden/x.py",
             "app/__pycache__/m.cpython-313.pyc", "stray.pyc", "requirements.txt", "sp ace é.txt",
             "app/.git/HEAD", "app/file.with.dots.py", "__pycache__/x.pyc", "app/not__pycache__.py"]
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(name)
    expected = build.source_files(source)
    assert set(expected) == {"handler.py.tmpl", "app/__init__.py", "app/deep/er/data.json", "requirements.txt",
                             "sp ace é.txt", "app/file.with.dots.py", "app/not__pycache__.py"}
    assert source_files_in_terraform(module_dir, source / "handler.py.tmpl") == expected


def example_dirs() -> list[Path]:
    return sorted(path.parent for path in (ROOT / "examples").glob("*/main.tf"))


def test_the_examples_exist():
    assert [path.name for path in example_dirs()] == ["seed", "shared-key", "with-dependencies"]


@pytest.mark.parametrize("example", example_dirs(), ids=lambda path: path.name)
def test_each_example_is_formatted_and_valid(example, tmp_path):
    directory = init(copy_example(example.name, tmp_path / "repo"))
    for command in (["fmt", "-check", "-diff"], ["validate"]):
        result = terraform(directory, *command)
        assert result.returncode == 0, result.stdout + result.stderr


# An example passes its inputs through; the module checks them. A rule of the example's own is listed here.
EXAMPLE_OWN_RULES = {
    ("with-dependencies", "signing_key"): "an HMAC key of at least 16 characters; the module takes any secret",
}


def test_examples_do_not_copy_the_modules_validations():
    """The examples' copies drifted weaker than the module's (shared-key's administrators accepted role/*)."""
    found = {(example.name, name) for example in example_dirs()
             for name, block in re.findall(r'^variable "([^"]+)" \{(.*?)^\}', (example / "variables.tf").read_text(),
                                           re.MULTILINE | re.DOTALL)
             if "validation {" in block}
    assert found == set(EXAMPLE_OWN_RULES), (
        f"validations in examples that are not the example's own rule: {sorted(found - set(EXAMPLE_OWN_RULES))}; "
        "pass the input to the module, which checks it")


def readme_table(heading: str) -> list[str]:
    """The first column of the Markdown table under ``## heading`` in README.md."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


def test_the_readme_tables_list_every_input_and_output_in_order():
    variables = re.findall(r'^variable "(\w+)"', (ROOT / "variables.tf").read_text(), re.MULTILINE)
    outputs = re.findall(r'^output "(\w+)"', (ROOT / "outputs.tf").read_text(), re.MULTILINE)
    assert readme_table("Inputs") == variables
    assert readme_table("Outputs") == outputs
