variable "function_name" {
  description = "Name of the Lambda function; it also names the role, the log group, the KMS alias and the encryption context."
  type        = string
  default     = "sealed-credentials-demo"
}

variable "secrets" {
  description = "Secrets to seal, name => plaintext, e.g. { credential = \"hello, world!\" }. The echo handler returns the one named by the event's \"secret\" key, else the first by name. Terraform keeps the plaintexts in its state."
  type        = map(string)
  sensitive   = true
}

variable "python_executable" {
  description = "Python 3.10+ that runs build.py during apply (argv[0], not a shell command)."
  type        = string
  default     = "python3"
}
