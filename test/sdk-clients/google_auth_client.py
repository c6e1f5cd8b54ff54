"""A workload using Python's google-auth with no credentials code: it finds the broker only
through GCE_METADATA_HOST / GCE_METADATA_ROOT / GCE_METADATA_IP. Prints JSON on one line."""
import json
import os

import google.auth
import google.auth.transport.requests

request = google.auth.transport.requests.Request()
credentials, project = google.auth.default()
credentials.refresh(request)
results = {
    "credentials": type(credentials).__module__ + "." + type(credentials).__name__,
    "project": project,
    "token": credentials.token,
    "email": credentials.service_account_email,
}
try:
    from google.oauth2 import id_token
except ImportError:
    id_token = None
if id_token is not None and hasattr(id_token, "fetch_id_token"):
    try:
        results["idToken"] = id_token.fetch_id_token(request, os.environ["ID_TOKEN_AUDIENCE"])
    except Exception as error:  # the test asserts the message the broker gave
        results["idTokenError"] = str(error)
print(json.dumps(results))
