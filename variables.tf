# Every limit below is AWS's own, checked at plan time so that a bad value never reaches an API
# call, or build.py, during apply. Sizes are checked in bytes, as AWS counts them:
# base64 turns n bytes into 4*ceil(n/3) characters, with one "=" per byte short of a full group.

variable "function_name" {
  description = "Name of the Lambda function. Also names the IAM role (<name>-lambda), the log group, the KMS alias (alias/<name>-secrets) and the encryption context every secret is bound to."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,57}$", var.function_name))
    error_message = "function_name must be 1-57 letters, digits, '-' or '_' (the IAM role adds '-lambda' and IAM allows 64)."
  }
}

variable "secrets" {
  description = "Secrets to seal, name => plaintext (1 to 4096 bytes, KMS Encrypt's limit). Each is encrypted by aws_kms_ciphertext under the function's encryption context. The plaintext is stored in Terraform state: prefer encrypted_secrets where state is shared."
  type        = map(string)
  default     = {}
  sensitive   = true
  nullable    = false

  validation {
    condition     = alltrue([for name in keys(var.secrets) : can(regex(local.rules.secret_name, name))])
    error_message = "Every key of secrets must be a letter followed by letters, digits or _ (at most 64 characters): a valid secret name."
  }

  validation {
    condition = alltrue([
      for value in values(var.secrets) :
      length(value) > 0 && length(base64encode(value)) / 4 * 3 - length(regexall("=", base64encode(value))) <= 4096
    ])
    error_message = "Every value of secrets must be 1 to 4096 bytes of UTF-8 text (KMS Encrypt's plaintext limit, counted in bytes); seal a larger value as a data key or split it."
  }
}

variable "encrypted_secrets" {
  description = "Secrets sealed outside Terraform, name => base64 CiphertextBlob (at most 6144 bytes decoded), e.g. from `aws kms encrypt --key-id <the kms_key_arn output> --encryption-context LambdaFunctionName=<function_name> --plaintext fileb://secret --query CiphertextBlob --output text`. The plaintext never enters state."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for name in keys(var.encrypted_secrets) : can(regex(local.rules.secret_name, name))])
    error_message = "Every key of encrypted_secrets must be a letter followed by letters, digits or _ (at most 64 characters): a valid secret name."
  }

  validation {
    condition = alltrue([
      for blob in values(var.encrypted_secrets) :
      can(regex("^[A-Za-z0-9+/]+={0,2}$", blob)) && length(blob) % 4 == 0 && length(blob) / 4 * 3 - length(regexall("=", blob)) <= 6144
    ])
    error_message = "Every value of encrypted_secrets must be a base64 CiphertextBlob of at most 6144 bytes, as `aws kms encrypt ... --query CiphertextBlob --output text` prints it."
  }
}

variable "handler_template" {
  description = "Path of the handler template build.py renders (it must hold __SEALED_CIPHERTEXTS__ and __SEALED_KEY_ARN__ once each). Its folder is the function's source: every file in it is packaged, recursively, except dotfiles, __pycache__ and *.pyc; a requirements.txt there is installed for the function's runtime and architecture. Null uses the module's lambda_src/handler.py.tmpl, which opens each secret and returns only their names."
  type        = string
  default     = null

  # The module's name rule and Python's keywords are build_rules.json's, which build.py reads too.
  validation {
    condition = var.handler_template == null || (
      endswith(coalesce(var.handler_template, "x"), ".py.tmpl")
      && can(regex(local.rules.module_name, trimsuffix(basename(coalesce(var.handler_template, "x")), ".py.tmpl")))
      && !contains(local.rules.python_keywords, trimsuffix(basename(coalesce(var.handler_template, "x")), ".py.tmpl"))
    )
    error_message = "handler_template must be a path to <module>.py.tmpl where <module> is a Python identifier that gives a module Python can import (ASCII letters, digits and _, no leading digit, not a keyword), e.g. src/handler.py.tmpl: Lambda imports the rendered file by that name."
  }

  validation {
    condition     = var.handler_template == null || basename(coalesce(var.handler_template, "x")) != "sealed_secrets.py.tmpl"
    error_message = "handler_template cannot be named sealed_secrets.py.tmpl: the rendered file would replace the runtime helper packaged with every function."
  }
}

variable "runtime" {
  description = "Python runtime of the function; dependencies in requirements.txt are built for it."
  type        = string
  default     = "python3.13"

  validation {
    condition     = contains(keys(local.rules.runtimes), var.runtime)
    error_message = "runtime must be one of ${join(", ", keys(local.rules.runtimes))} (build_rules.json)."
  }
}

variable "architectures" {
  description = "Instruction set of the function: [\"x86_64\"] or [\"arm64\"]. Dependencies in requirements.txt are built for it, whatever the machine that runs terraform."
  type        = list(string)
  default     = ["x86_64"]
  nullable    = false

  validation {
    condition     = length(var.architectures) == 1 && contains(keys(local.rules.architectures), try(var.architectures[0], ""))
    error_message = "architectures must be [\"x86_64\"] or [\"arm64\"]: exactly one (Lambda takes one), and architecture must be one of ${join(", ", keys(local.rules.architectures))} (build_rules.json)."
  }
}

variable "memory_size" {
  description = "Memory of the function, in MB."
  type        = number
  default     = 128

  validation {
    condition     = var.memory_size >= 128 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MB from 128 to 10240."
  }
}

variable "timeout" {
  description = "Timeout of one invocation, in seconds. Opening a secret has its own budget, below the default 10 s (see README)."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "ephemeral_storage_size" {
  description = "Size of the function's /tmp, in MB."
  type        = number
  default     = 512

  validation {
    condition     = var.ephemeral_storage_size >= 512 && var.ephemeral_storage_size <= 10240 && floor(var.ephemeral_storage_size) == var.ephemeral_storage_size
    error_message = "ephemeral_storage_size must be a whole number of MB from 512 to 10240."
  }
}

variable "environment_variables" {
  description = "Environment variables of the function (not for secrets: seal those). Names Lambda reserves (AWS_REGION, AWS_LAMBDA_*, _HANDLER, LAMBDA_TASK_ROOT, ...) are rejected, and so are those that would redirect KMS, its TLS trust or the credentials (AWS_ENDPOINT_URL*, AWS_CA_BUNDLE, SSL_CERT_FILE, AWS_PROFILE, ...: build_rules.json lists them with their reasons)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition     = alltrue([for name in keys(var.environment_variables) : can(regex("^[A-Za-z][A-Za-z0-9_]+$", name))])
    error_message = "Every environment variable name must be a letter followed by at least one letter, digit or '_' (Lambda's rule)."
  }

  validation {
    condition = alltrue([
      for name in keys(var.environment_variables) :
      !can(regex("^(AWS_LAMBDA_.*|_.*|AWS_REGION|AWS_DEFAULT_REGION|AWS_EXECUTION_ENV|AWS_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|LAMBDA_TASK_ROOT|LAMBDA_RUNTIME_DIR)$", name))
    ])
    error_message = "environment_variables may not set names Lambda reserves: _HANDLER, _X_AMZN_TRACE_ID, AWS_REGION, AWS_DEFAULT_REGION, AWS_EXECUTION_ENV, AWS_LAMBDA_* (e.g. AWS_LAMBDA_FUNCTION_NAME), AWS_ACCESS_KEY, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, LAMBDA_TASK_ROOT, LAMBDA_RUNTIME_DIR."
  }

  validation {
    # Names that would change where the opener sends the signed Decrypt request, whom it trusts, or where
    # its credentials come from: one list, with each one's reason, in build_rules.json.
    condition = alltrue([
      for name in keys(var.environment_variables) :
      !can(regex("^(?:${join("|", keys(local.rules.refused_environment_variables))})$", name))
    ])
    error_message = "environment_variables may not set ${join("; ", flatten([
      for name in sort(keys(var.environment_variables)) : [
        for pattern, reason in local.rules.refused_environment_variables : "${name}: it ${reason}" if can(regex("^(?:${pattern})$", name))
      ]
    ]))}. Remove it: the secrets must be opened by KMS itself, over TLS verified against the runtime's own certificates."
  }

  validation {
    # Lambda measures the variables as one JSON document.
    condition     = length(base64encode(jsonencode(var.environment_variables))) / 4 * 3 - length(regexall("=", base64encode(jsonencode(var.environment_variables)))) <= 4096
    error_message = "environment_variables may hold at most 4 KB in all, measured as Lambda does (the JSON of names and values, in bytes)."
  }
}

variable "vpc_subnet_ids" {
  description = "Subnets to run the function in (with vpc_security_group_ids). Empty: no VPC. Grants the role the network-interface actions Lambda needs: creating them only in these subnets and groups; deleting and re-addressing them on any network interface of the account and region (README, security model, says why)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.vpc_subnet_ids) <= 16 && alltrue([for id in var.vpc_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", id))])
    error_message = "vpc_subnet_ids must be at most 16 subnet IDs like subnet-0123456789abcdef0."
  }
}

variable "vpc_security_group_ids" {
  description = "Security groups of the function's network interfaces; required with vpc_subnet_ids, empty without."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.vpc_security_group_ids) <= 5 && alltrue([for id in var.vpc_security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", id))])
    error_message = "vpc_security_group_ids must be at most 5 security group IDs like sg-0123456789abcdef0."
  }
}

variable "layers" {
  description = "ARNs of Lambda layer versions to add to the function (at most 5)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.layers) <= 5 && alltrue([for arn in var.layers : can(regex("^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]{1,140}:[0-9]+$", arn))])
    error_message = "layers must be at most 5 layer version ARNs like arn:aws:lambda:eu-west-1:123456789012:layer:my-layer:3."
  }
}

variable "reserved_concurrent_executions" {
  description = "Concurrency reserved for the function: -1 for none (the account's unreserved pool), 0 to stop it, or a number of environments."
  type        = number
  default     = -1
  nullable    = false

  validation {
    condition     = var.reserved_concurrent_executions >= -1 && floor(var.reserved_concurrent_executions) == var.reserved_concurrent_executions
    error_message = "reserved_concurrent_executions must be -1 (no reservation) or a whole number from 0."
  }
}

variable "tracing_mode" {
  description = "X-Ray tracing: PassThrough (trace only requests that arrive sampled) or Active (sample here too; grants the X-Ray write actions)."
  type        = string
  default     = "PassThrough"
  nullable    = false

  validation {
    condition     = contains(["PassThrough", "Active"], var.tracing_mode)
    error_message = "tracing_mode must be PassThrough or Active."
  }
}

variable "dead_letter_target_arn" {
  description = "SQS queue or SNS topic that receives events of asynchronous invocations that failed every retry. Null: none. Grants the role sqs:SendMessage or sns:Publish on it."
  type        = string
  default     = null

  validation {
    condition     = var.dead_letter_target_arn == null || can(regex("^arn:aws[a-zA-Z-]*:(sqs|sns):[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256}$", coalesce(var.dead_letter_target_arn, "x")))
    error_message = "dead_letter_target_arn must be an SQS queue or SNS topic ARN, like arn:aws:sqs:eu-west-1:123456789012:orders-dlq."
  }
}

variable "code_signing_config_arn" {
  description = "Lambda code-signing configuration that the package must satisfy. Null: none."
  type        = string
  default     = null

  validation {
    condition     = var.code_signing_config_arn == null || can(regex("^arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:[0-9]{12}:code-signing-config:csc-[a-z0-9]{17}$", coalesce(var.code_signing_config_arn, "x")))
    error_message = "code_signing_config_arn must be a code-signing configuration ARN, like arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0."
  }
}

variable "log_retention_in_days" {
  description = "How long CloudWatch keeps the function's logs (a year by default, as audits usually ask)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "log_kms_key_arn" {
  description = "KMS key that encrypts the function's log group. Null: CloudWatch's own encryption. The key's policy must let the logs service use it (see README)."
  type        = string
  default     = null

  validation {
    condition     = var.log_kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$", coalesce(var.log_kms_key_arn, "x")))
    error_message = "log_kms_key_arn must be a KMS key ARN (not an alias), like arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab."
  }
}

variable "create_kms_key" {
  description = "Whether the module creates a KMS key (and alias) of its own for this function. false: seal with kms_key_arn, a key shared by several functions, which may be created in the same apply."
  type        = bool
  default     = true
  nullable    = false
}

variable "kms_key_arn" {
  description = "With create_kms_key = false, the existing KMS key to seal with. The key's owner adds this module's key_policy_statements output to its policy."
  type        = string
  default     = null

  validation {
    condition     = var.create_kms_key == (var.kms_key_arn == null)
    error_message = "kms_key_arn goes with create_kms_key = false (a shared key), and only then: set both, or neither."
  }

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-zA-Z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn must be a KMS key ARN (not an alias or a key ID), like arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab: IAM policies match key ARNs."
  }

  validation {
    # A key ID that starts with mrk- is always a multi-Region key; the module refuses those (kms.tf says why).
    condition     = var.kms_key_arn == null || !can(regex(":key/mrk-", coalesce(var.kms_key_arn, "x")))
    error_message = "kms_key_arn is a multi-Region key (mrk-): each of its replicas carries a key policy of its own, which this module's key_policy_statements do not reach, so a replica's policy could open the secrets. Use a single-Region key, or set create_kms_key = true."
  }
}

variable "key_administrators" {
  description = "ARNs that administer the module's own key (manage, rotate, schedule deletion, seal with Encrypt; never Decrypt). Empty: the account root, i.e. whoever IAM allows. Ignored with kms_key_arn."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.key_administrators : can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:(root|(user|role)(/[A-Za-z0-9+=,.@_-]+)+)$", arn))])
    error_message = "key_administrators must be IAM ARNs without wildcards: arn:aws:iam::<account>:root, :user/<path/name> or :role/<path/name> (IAM's characters: letters, digits and + = , . @ _ -)."
  }
}

variable "decrypt_vpc_endpoint_ids" {
  description = "KMS interface VPC endpoints (vpce-…) the function must decrypt through. Empty: any network. Set it to make credentials copied out of the function useless elsewhere: the role may then Decrypt only through these endpoints (aws:SourceVpce). Needs vpc_subnet_ids."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for id in var.decrypt_vpc_endpoint_ids : can(regex("^vpce-[0-9a-f]{8,17}$", id))])
    error_message = "decrypt_vpc_endpoint_ids must be VPC endpoint IDs like vpce-0123456789abcdef0."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before KMS deletes the module's key once it is scheduled for deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30 && floor(var.kms_deletion_window_in_days) == var.kms_deletion_window_in_days
    error_message = "kms_deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "python_executable" {
  description = "Python (3.10 or newer, with pip) that runs build.py during apply: a command name on PATH or a path, run as it is, without a shell."
  type        = string
  default     = "python3"
  nullable    = false

  validation {
    condition     = length(var.python_executable) > 0 && length(var.python_executable) <= 4096 && !startswith(var.python_executable, "-") && !can(regex("[[:cntrl:]]", var.python_executable))
    error_message = "python_executable must name a Python interpreter, e.g. python3 or /usr/bin/python3: not empty, not starting with '-', no control characters."
  }
}

variable "tags" {
  description = "Tags applied to every resource that takes them (at most 50; IAM's rules, the strictest of the services tagged)."
  type        = map(string)
  default     = {}
  nullable    = false

  validation {
    condition = length(var.tags) <= 50 && alltrue([
      for key, value in var.tags :
      can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]{1,128}$", key)) && can(regex("^[\\p{L}\\p{Z}\\p{N}_.:/=+@-]{0,256}$", value)) && !startswith(lower(key), "aws:")
    ]) && length(distinct([for key in keys(var.tags) : lower(key)])) == length(var.tags)
    error_message = "tags: at most 50; keys 1-128 and values 0-256 characters of letters, digits, spaces and _ . : / = + - @; no key may start with aws:, and no two keys may differ only in case (IAM ignores case)."
  }
}

# Ways Lambda runs the function (issue 16). The combinations AWS refuses are refused here, at plan
# time, and nothing stricter: SnapStart's other limits (EFS, container images) are not inputs of this module.

variable "snap_start" {
  description = "Lambda SnapStart (Python 3.12 and later): publish a version on every code or configuration change and snapshot its initialised environment; callers invoke the alias live. A Decrypt made during init is then made once per published version, not once per environment (see README). Not with provisioned concurrency or ephemeral_storage_size above 512."
  type        = bool
  default     = false
  nullable    = false

  validation {
    condition     = !var.snap_start || try(local.rules.runtimes[var.runtime].snap_start, false)
    error_message = "snap_start needs a runtime Lambda offers SnapStart for: ${join(", ", sort([for name, runtime in local.rules.runtimes : name if try(runtime.snap_start, false)]))} (build_rules.json)."
  }

  validation {
    condition     = !var.snap_start || var.ephemeral_storage_size <= 512
    error_message = "snap_start needs ephemeral_storage_size = 512: Lambda refuses SnapStart with more than 512 MB of /tmp."
  }

  validation {
    condition     = !var.snap_start || var.provisioned_concurrent_executions == 0
    error_message = "snap_start and provisioned_concurrent_executions exclude each other: Lambda refuses provisioned concurrency on a SnapStart version. Choose one."
  }
}

variable "provisioned_concurrent_executions" {
  description = "Environments Lambda keeps initialised for the alias live: publishes a version on every code or configuration change. 0: none. At most reserved_concurrent_executions when that is set."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.provisioned_concurrent_executions >= 0 && floor(var.provisioned_concurrent_executions) == var.provisioned_concurrent_executions
    error_message = "provisioned_concurrent_executions must be 0 (none) or a whole number of environments."
  }

  validation {
    condition     = var.provisioned_concurrent_executions == 0 || var.reserved_concurrent_executions == -1 || var.provisioned_concurrent_executions <= var.reserved_concurrent_executions
    error_message = "provisioned_concurrent_executions cannot exceed reserved_concurrent_executions: Lambda refuses more provisioned environments than the function may run. Raise the reservation, lower the provisioning, or set reserved_concurrent_executions = -1."
  }
}

variable "prefetch_secrets" {
  description = "Open every sealed secret on a background thread from the moment the handler registers them, so that the Decrypt overlaps the rest of the function's init. Sets SEALED_SECRETS_PREFETCH=1 in the function's environment (no rebuild of the package); the runtime helper reads it."
  type        = bool
  default     = false
  nullable    = false
}
