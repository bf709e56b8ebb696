variable "name_prefix" {
  description = "Prefix of every name: the functions <prefix>-orders and <prefix>-billing, the alias alias/<prefix>-shared-secrets."
  type        = string
  default     = "shared-key"
}

variable "orders_secrets" {
  description = "Secrets of the orders function, name => plaintext. Only that function can open them."
  type        = map(string)
  sensitive   = true
}

variable "billing_secrets" {
  description = "Secrets of the billing function, name => plaintext. Only that function can open them."
  type        = map(string)
  sensitive   = true
}

variable "key_administrators" {
  description = "IAM ARNs (root, users, roles) that administer the shared key and seal with it, besides whoever runs terraform apply (always one: KMS refuses a policy that locks its caller out)."
  type        = list(string)
  default     = []
}

variable "kms_deletion_window_in_days" {
  description = "Waiting period before KMS deletes the shared key once it is scheduled for deletion."
  type        = number
  default     = 30
}

variable "python_executable" {
  description = "Python 3.10+ that runs build.py during apply (argv[0], not a shell command)."
  type        = string
  default     = "python3"
}
