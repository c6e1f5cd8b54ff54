"""BENCHMARK FUNCTION (bench:lambda, standalone flavour): bench/token-wait-handler.ts in Python.

Its init loads google-auth with requests and builds metadata-server credentials (as a Python
function using Application Default Credentials on the broker does); each invocation asks for a
token once, unless the event says {"token": false}, and reports how long that took.
"""
import time

import google.auth.compute_engine
import google.auth.transport.requests

request = google.auth.transport.requests.Request()
credentials = google.auth.compute_engine.Credentials()


def handler(event, context):
    if isinstance(event, dict) and event.get("token") is False:
        return {"gotToken": False, "waitMs": 0}
    started = time.perf_counter()
    credentials.refresh(request)
    return {"gotToken": bool(credentials.token), "waitMs": (time.perf_counter() - started) * 1000}
