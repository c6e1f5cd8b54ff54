# The APIs the federation and the demo use. Left enabled on destroy: other things in the project
# may depend on them.
resource "google_project_service" "enabled" {
  for_each = toset([
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "storage.googleapis.com",
    "bigquery.googleapis.com",
  ])
  service            = each.value
  disable_on_destroy = false
}
