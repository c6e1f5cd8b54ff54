#!/usr/bin/env python3
"""An external extension for the envelope tests, on Python's standard library only.

It registers for the events named in PROBE_EXTENSION_EVENTS (comma-separated) and prints one JSON
line with the answer. A refused registration ends it with exit code 1, as an extension that
cannot run does; otherwise it waits in event/next until SHUTDOWN.
"""
import json
import os
import sys
import urllib.error
import urllib.request

api = f"http://{os.environ['AWS_LAMBDA_RUNTIME_API']}/2020-01-01/extension"
events = [e for e in os.environ.get("PROBE_EXTENSION_EVENTS", "INVOKE,SHUTDOWN").split(",") if e]
request = urllib.request.Request(
    f"{api}/register",
    data=json.dumps({"events": events}).encode(),
    headers={"Lambda-Extension-Name": os.path.basename(sys.argv[0])},
    method="POST",
)
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        extension_id = response.headers["Lambda-Extension-Identifier"]
        print(json.dumps({"registerStatus": response.status, "pid": os.getpid()}), flush=True)
except urllib.error.HTTPError as refused:
    body = refused.read().decode()
    print(json.dumps({"registerStatus": refused.code, "registerBody": body}), flush=True)
    sys.exit(1)

while True:
    next_event = urllib.request.Request(
        f"{api}/event/next", headers={"Lambda-Extension-Identifier": extension_id}
    )
    with urllib.request.urlopen(next_event) as response:
        event = json.loads(response.read())
    if event.get("eventType") == "SHUTDOWN":
        sys.exit(0)
