"""The Terraform example's function: each invocation writes hello_<timestamp>.txt, holding the
request id, to the bucket GOOGLE_BUCKET names (GOOGLE_STORAGE_ENDPOINT, optional, is another
base URL for the Cloud Storage JSON API).

Lambda's Python runtime ships no Google library, so this file uses the standard library alone
and `terraform apply` can zip it as it is: it asks the broker for the token as google-auth would
(the GCE metadata server at GCE_METADATA_HOST). With google-auth packaged beside it,
google.auth.default() does that part: see client-demo/python.
"""
import datetime
import json
import os
import urllib.error
import urllib.parse
import urllib.request

METADATA = "http://" + os.environ.get("GCE_METADATA_HOST", "metadata.google.internal")
TOKEN_PATH = "/computeMetadata/v1/instance/service-accounts/default/token"
BUCKET = os.environ["GOOGLE_BUCKET"]
STORAGE = (os.environ.get("GOOGLE_STORAGE_ENDPOINT") or "https://storage.googleapis.com").rstrip("/")
TIMEOUT_SECONDS = 10


def access_token():
    # The broker serves it from memory and refreshes it ahead of expiry, so asking on every
    # invocation costs one loopback round trip.
    request = urllib.request.Request(METADATA + TOKEN_PATH, headers={"Metadata-Flavor": "Google"})
    with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
        return json.load(response)["access_token"]


def handler(event, context):
    now = datetime.datetime.now(datetime.timezone.utc)
    name = now.strftime("hello_%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z.txt"
    query = urllib.parse.urlencode({"uploadType": "media", "name": name})
    upload = urllib.request.Request(
        f"{STORAGE}/upload/storage/v1/b/{urllib.parse.quote(BUCKET, safe='')}/o?{query}",
        data=f"Hello from request {context.aws_request_id}\n".encode(),
        headers={"Authorization": f"Bearer {access_token()}", "Content-Type": "text/plain"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(upload, timeout=TIMEOUT_SECONDS):
            pass
    except urllib.error.HTTPError as refused:
        # Google's own reason (e.g. which permission is missing), without the token.
        return {"statusCode": refused.code, "body": refused.read().decode(errors="replace")}
    return {"statusCode": 200, "body": json.dumps({"object": f"gs://{BUCKET}/{name}"})}
