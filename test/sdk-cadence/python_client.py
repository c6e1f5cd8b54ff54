"""A workload on Python's google-auth with the library's own token cache: every tick it prepares
a request as an authorized session does (credentials.before_request), and the library goes to the
metadata server only when its copy is no longer valid (google-auth 1.x: within 5 minutes of
expiry). Each of those fetches is recorded: how long it took and how long the token it brought had
left. Prints {"event":"first"} after the first token (asking every tick until then), then runs
CADENCE_RUN_MS more and prints {"event":"done",...} with the fetches and errors of that run."""
import datetime
import json
import os
import sys
import time

import google.auth
import google.auth.transport.requests

run_seconds = int(os.environ["CADENCE_RUN_MS"]) / 1000
tick_seconds = int(os.environ["CADENCE_TICK_MS"]) / 1000

request = google.auth.transport.requests.Request()
credentials, _project = google.auth.default()
fetches = []
errors = 0


def tick():
    """One API call's worth of token lookup; False if the library could not get a token."""
    global errors
    expiry = credentials.expiry
    started = time.monotonic()
    try:
        credentials.before_request(request, "GET", "https://storage.googleapis.com/", {})
    except Exception as error:  # a failed fetch is counted, and the next tick tries again
        errors += 1
        sys.stderr.write("%s\n" % error)
        return False
    if credentials.expiry is not expiry:
        left = credentials.expiry - datetime.datetime.utcnow()
        fetches.append({
            "key": "access default",
            "ms": (time.monotonic() - started) * 1000,
            "leftMs": left.total_seconds() * 1000,
        })
    return True


while not tick():
    time.sleep(tick_seconds)
fetches.clear()
errors = 0
print(json.dumps({"event": "first", "atMs": time.time() * 1000}), flush=True)
end = time.time() + run_seconds
while time.time() < end:
    time.sleep(tick_seconds)
    tick()
print(json.dumps({"event": "done", "fetches": fetches, "errors": errors}), flush=True)
