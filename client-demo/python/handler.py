"""The demo walk-through as a Python Lambda function, with no credentials code.

Each invocation writes hello_<timestamp>.txt holding the request id to a Cloud Storage bucket,
then inserts {timestamp, message} into a BigQuery table, as client-demo/handler.ts does.
google.auth.default() finds the token broker layer as a GCE metadata server (GCE_METADATA_HOST),
and AuthorizedSession puts the broker's token on each request and refreshes it when due.

Settings, from the environment (the names client-demo/settings.ts reads):
  GOOGLE_BUCKET, GOOGLE_BQ_DATASET, GOOGLE_BQ_TABLE, GOOGLE_PROJECT_ID   required
  GOOGLE_STORAGE_ENDPOINT, GOOGLE_BIGQUERY_ENDPOINT   optional: another base URL for the
    Cloud Storage JSON API or the BigQuery API (Private Service Connect, an emulator).
"""
import datetime
import json
import os
from urllib.parse import quote

import google.auth
from google.auth.transport.requests import AuthorizedSession

# One scope serves both APIs; the broker's default tokens carry it.
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
TIMEOUT_SECONDS = 10


def _required(name, example):
    value = os.environ.get(name, "").strip()
    if not value:
        raise RuntimeError(f"{name} is required; for example {name}={example}")
    return value


def _endpoint(name, default):
    return (os.environ.get(name, "").strip() or default).rstrip("/")


# Read once per sandbox, during Lambda's init, and reused by every invocation.
BUCKET = _required("GOOGLE_BUCKET", "my-demo-bucket")
DATASET = _required("GOOGLE_BQ_DATASET", "demo_dataset")
TABLE = _required("GOOGLE_BQ_TABLE", "events")
PROJECT_ID = _required("GOOGLE_PROJECT_ID", "my-project")
STORAGE = _endpoint("GOOGLE_STORAGE_ENDPOINT", "https://storage.googleapis.com")
BIGQUERY = _endpoint("GOOGLE_BIGQUERY_ENDPOINT", "https://bigquery.googleapis.com")

credentials, _ = google.auth.default(scopes=SCOPES)
session = AuthorizedSession(credentials)


class GoogleApiError(Exception):
    """A Google API refused the request; the message is Google's own."""


def _checked(response):
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}: {response.text[:200]}"
        raise GoogleApiError(message)
    return response.json()


def write_greeting(request_id, bucket):
    now = datetime.datetime.now(datetime.timezone.utc)
    timestamp = now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
    name = "hello_" + timestamp.replace("-", "").replace(":", "").replace(".", "") + ".txt"
    message = f"Hello from request {request_id}"
    # A few bytes: one media upload (JSON API objects.insert), not a resumable session.
    _checked(
        session.post(
            f"{STORAGE}/upload/storage/v1/b/{quote(bucket, safe='')}/o",
            params={"uploadType": "media", "name": name},
            data=f"{message}\n".encode(),
            headers={"Content-Type": "text/plain"},
            timeout=TIMEOUT_SECONDS,
        )
    )
    row = {"timestamp": timestamp, "message": message}
    inserted = _checked(
        session.post(
            f"{BIGQUERY}/bigquery/v2/projects/{PROJECT_ID}/datasets/{DATASET}/tables/{TABLE}/insertAll",
            json={"rows": [{"json": row}]},
            timeout=TIMEOUT_SECONDS,
        )
    )
    # insertAll answers 200 even when it refused rows: the refusals are in insertErrors.
    errors = [detail.get("message", "") for failed in inserted.get("insertErrors", []) for detail in failed["errors"]]
    if errors:
        raise GoogleApiError("; ".join(errors))
    return {"object": f"gs://{bucket}/{name}", "row": row}


def handler(event, context):
    """200 with the object and the row, or 500 with Google's message when a Google API refuses;
    anything else (no token, no network) is raised, for Lambda to report as a function error.
    An event may name another bucket ({"bucket": "..."}), to show IAM refusing it."""
    bucket = event.get("bucket") if isinstance(event, dict) and isinstance(event.get("bucket"), str) else BUCKET
    try:
        greeting = write_greeting(context.aws_request_id, bucket)
    except GoogleApiError as error:
        return {"statusCode": 500, "body": json.dumps({"error": str(error)})}
    return {"statusCode": 200, "body": json.dumps(greeting)}
