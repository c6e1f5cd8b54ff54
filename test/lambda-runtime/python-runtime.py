#!/usr/bin/env python3
"""A minimal runtime interface client for Python functions, on the standard library only.

Debian packages no awslambdaric, and pip reaches no index here, so the local Lambda runtime runs
Python handlers with this: it imports `_HANDLER` ("module.function") from LAMBDA_TASK_ROOT, then
loops over the Runtime API (2018-06-01) as Lambda's own client does: `invocation/next`, the
handler with (event, context), and `response` or `error`. A failing import or init is reported
to `init/error` and ends the process, as Lambda's Python runtime does.
"""
import http.client
import importlib
import json
import os
import sys
import time
import traceback

api = os.environ["AWS_LAMBDA_RUNTIME_API"]
connection = http.client.HTTPConnection(api, timeout=None)


def call(method, path, body=None, headers=None):
    connection.request(method, f"/2018-06-01/runtime/{path}", body=body, headers=headers or {})
    response = connection.getresponse()
    return response, response.read()


def error_body(error):
    return json.dumps(
        {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_exception(error)[1:],
        }
    ).encode()


class Context:
    def __init__(self, headers):
        self.aws_request_id = headers["Lambda-Runtime-Aws-Request-Id"]
        self.invoked_function_arn = headers.get("Lambda-Runtime-Invoked-Function-Arn", "")
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self._deadline_ms = int(headers.get("Lambda-Runtime-Deadline-Ms", "0"))

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))


try:
    module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
    sys.path.insert(0, os.environ["LAMBDA_TASK_ROOT"])
    handler = getattr(importlib.import_module(module_name), function_name)
except Exception as error:
    call("POST", "init/error", error_body(error), {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"})
    sys.exit(1)

while True:
    response, body = call("GET", "invocation/next")
    headers = dict(response.getheaders())
    request_id = headers["Lambda-Runtime-Aws-Request-Id"]
    if "Lambda-Runtime-Trace-Id" in headers:
        os.environ["_X_AMZN_TRACE_ID"] = headers["Lambda-Runtime-Trace-Id"]
    try:
        result = handler(json.loads(body or b"null"), Context(headers))
        call("POST", f"invocation/{request_id}/response", json.dumps(result).encode())
    except Exception as error:
        call(
            "POST",
            f"invocation/{request_id}/error",
            error_body(error),
            {"Lambda-Runtime-Function-Error-Type": f"Runtime.{type(error).__name__}"},
        )
