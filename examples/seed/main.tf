# The article's flow: seal "hello, world!" for one function, which opens it at run time and returns it.
# The echo handler in src/ is for this demo only: it hands its secret to whoever can invoke the function.
module "sealed_function" {
  source = "../.."

  function_name     = var.function_name
  secrets           = var.secrets
  handler_template  = "${path.module}/src/handler.py.tmpl"
  python_executable = var.python_executable
}
