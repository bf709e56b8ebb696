variable "name_prefix" {
  description = "Prefix of every name: the functions <prefix>-orders and <prefix>-billing, the alias alias/<prefix>-shared-secrets."
  type        = string
  default     = "shared-key"

  validation {
    # The module allows 57 characters in a function name; "-billing" takes 8 of them.
    condition     = can(regex("^[A-Za-z0-9_-]{1,49}$", var.name_prefix))
    error_message = "name_prefix must be 1-49 letters, digits, '-' or '_'."
  }
}

variable "orders_secrets" {
  description = "Secrets of the orders function, name => plaintext. Only that function can open them."
  type        = map(string)
  sensitive   = true

  validation {
    condition     = length(var.orders_secrets) > 0 && alltrue([for value in values(var.orders_secrets) : length(value) > 0])
    error_message = "orders_secrets must hold at least one name => non-empty plaintext."
  }
}

variable "billing_secrets" {
  description = "Secrets of the billing function, name => plaintext. Only that function can open them."
  type        = map(string)
  sensitive   = true

  validation {
    condition     = length(var.billing_secrets) > 0 && alltrue([for value in values(var.billing_secrets) : length(value) > 0])
    error_message = "billing_secrets must hold at least one name => non-empty plaintext."
  }
}

variable "key_administrators" {
  description = "IAM ARNs (root, users, roles) that administer the shared key and seal with it, besides whoever runs terraform apply (always one: KMS refuses a policy that locks its caller out)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for arn in var.key_administrators : can(regex("^arn:aws[a-zA-Z-]*:iam::[0-9]{12}:(root|user/.+|role/.+)$", arn))])
    error_message = "key_administrators must be IAM ARNs of the account root, users or roles, e.g. arn:aws:iam::123456789012:role/platform-admin."
  }
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before KMS deletes the shared key once it is scheduled for deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_in_days >= 7 && var.kms_deletion_window_in_days <= 30 && floor(var.kms_deletion_window_in_days) == var.kms_deletion_window_in_days
    error_message = "kms_deletion_window_in_days must be a whole number from 7 to 30."
  }
}

variable "python_executable" {
  description = "Python 3.9+ that runs build.py during apply (argv[0], not a shell command)."
  type        = string
  default     = "python3"

  validation {
    condition     = length(var.python_executable) > 0 && !startswith(var.python_executable, "-")
    error_message = "python_executable must name a Python interpreter, e.g. python3 or /usr/bin/python3.12."
  }
}
