"""Run LocalStack's Python Lambdas as local processes, without Docker.

Install this package beside ``localstack-core`` and start LocalStack with
``LAMBDA_RUNTIME_EXECUTOR=process``; :mod:`localstack_process_executor.launcher`
does both for an embedded, host-mode LocalStack.
"""

EXECUTOR_NAME = "process"
