variable "function_name" {
  description = "Name of the Lambda function; it also names the role, the log group, the KMS alias and the encryption context."
  type        = string
  default     = "sealed-credentials-demo"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,57}$", var.function_name))
    error_message = "function_name must be 1-57 letters, digits, '-' or '_'."
  }
}

variable "secrets" {
  description = "Secrets to seal, name => plaintext, e.g. { credential = \"hello, world!\" }. The echo handler returns the one named by the event's \"secret\" key, else the first by name. Terraform keeps the plaintexts in its state."
  type        = map(string)
  sensitive   = true

  validation {
    condition     = length(var.secrets) > 0 && alltrue([for value in values(var.secrets) : length(value) > 0])
    error_message = "secrets must hold at least one name => non-empty plaintext, e.g. { credential = \"hello, world!\" }."
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
