variable "function_name" {
  description = "Name of the Lambda function. Also names the IAM role, the log group, the KMS alias and the encryption context every secret is bound to."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,57}$", var.function_name))
    error_message = "function_name must be 1-57 letters, digits, '-' or '_' (the IAM role adds '-lambda' and IAM allows 64)."
  }
}

variable "secrets" {
  description = "Secrets to seal, name => plaintext. Each is encrypted by aws_kms_ciphertext under the function's encryption context. The plaintext is stored in Terraform state: prefer encrypted_secrets where state is shared."
  type        = map(string)
  default     = {}
  sensitive   = true

  validation {
    condition     = alltrue([for name in keys(var.secrets) : can(regex("^[A-Za-z][A-Za-z0-9_]{0,63}$", name))])
    error_message = "Every key of secrets must be a letter followed by letters, digits or '_' (at most 64 characters)."
  }

  validation {
    condition     = alltrue([for value in values(var.secrets) : length(value) > 0 && length(value) <= 4096])
    error_message = "Every value of secrets must be 1 to 4096 bytes of text (KMS Encrypt's plaintext limit)."
  }
}

variable "encrypted_secrets" {
  description = "Secrets sealed outside Terraform, name => base64 CiphertextBlob, e.g. from `aws kms encrypt --key-id alias/<function_name>-secrets --encryption-context LambdaFunctionName=<function_name> --plaintext fileb://secret --query CiphertextBlob --output text`. The plaintext never enters state."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for name in keys(var.encrypted_secrets) : can(regex("^[A-Za-z][A-Za-z0-9_]{0,63}$", name))])
    error_message = "Every key of encrypted_secrets must be a letter followed by letters, digits or '_' (at most 64 characters)."
  }

  validation {
    condition     = alltrue([for blob in values(var.encrypted_secrets) : can(regex("^[A-Za-z0-9+/]+={0,2}$", blob)) && length(blob) % 4 == 0 && length(blob) <= 8192])
    error_message = "Every value of encrypted_secrets must be a base64 CiphertextBlob as `aws kms encrypt ... --query CiphertextBlob --output text` prints it."
  }
}

variable "runtime" {
  description = "Python runtime of the function."
  type        = string
  default     = "python3.13"

  validation {
    condition     = contains(["python3.10", "python3.11", "python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be one of python3.10, python3.11, python3.12, python3.13."
  }
}

variable "handler_template" {
  description = "Path of the handler template build.py renders (it must hold __SEALED_CIPHERTEXTS__ once); Python modules beside it are packaged too. Null uses lambda_src/handler.py.tmpl."
  type        = string
  default     = null

  validation {
    condition     = var.handler_template == null || endswith(coalesce(var.handler_template, "x.tmpl"), ".py.tmpl")
    error_message = "handler_template must be a path ending in .py.tmpl, e.g. lambda_src/handler.py.tmpl."
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
  description = "Timeout of one invocation, in seconds."
  type        = number
  default     = 10

  validation {
    condition     = var.timeout >= 1 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds from 1 to 900."
  }
}

variable "log_retention_in_days" {
  description = "How long CloudWatch keeps the function's logs."
  type        = number
  default     = 14

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_in_days)
    error_message = "log_retention_in_days must be one of CloudWatch's values: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before KMS deletes the key once it is scheduled for deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30 && floor(var.kms_deletion_window_in_days) == var.kms_deletion_window_in_days
    error_message = "kms_deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "python_executable" {
  description = "Python (3.9 or newer) that runs build.py during apply."
  type        = string
  default     = "python3"

  validation {
    condition     = length(trimspace(var.python_executable)) > 0
    error_message = "python_executable must name a Python interpreter, e.g. python3."
  }
}

variable "tags" {
  description = "Tags applied to every resource that takes them."
  type        = map(string)
  default     = {}
}
