variable "function_name" {
  description = "Name of the Lambda function; it also names the role, the log group, the KMS alias and the encryption context."
  type        = string
  default     = "sealed-with-dependencies"
}

variable "signing_key" {
  description = "The key the function signs its responses with (HMAC-SHA256), sealed as the secret signing_key. Terraform keeps it in its state."
  type        = string
  sensitive   = true

  validation {
    condition     = length(var.signing_key) >= 16
    error_message = "signing_key must be at least 16 characters."
  }
}

variable "runtime" {
  description = "Python runtime of the function; the requirements are installed for this Python version."
  type        = string
  default     = "python3.13"
}

variable "architecture" {
  description = "Instruction set of the function: x86_64 or arm64. The requirements' C extensions are built for it."
  type        = string
  default     = "x86_64"
}

variable "python_executable" {
  description = "Python 3.10+ with pip that runs build.py during apply (argv[0], not a shell command)."
  type        = string
  default     = "python3"
}
