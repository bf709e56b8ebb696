# A function with a whole source folder (src/): the handler template, a package of its own with a
# subpackage and a data file, and requirements.txt with a C extension (markupsafe). build.py installs
# the requirements for the function's runtime and architecture, not this machine's: arm64 builds on x86_64.
module "function" {
  source = "../.."

  function_name     = var.function_name
  handler_template  = "${path.module}/src/handler.py.tmpl"
  secrets           = { signing_key = var.signing_key }
  runtime           = var.runtime
  architectures     = [var.architecture]
  python_executable = var.python_executable
}
