resource "google_storage_bucket" "demo" {
  name                        = var.bucket_name
  location                    = var.location
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = true
  depends_on                  = [google_project_service.enabled]
}

resource "google_bigquery_dataset" "demo" {
  dataset_id                 = var.dataset_id
  location                   = var.location
  delete_contents_on_destroy = true
  depends_on                 = [google_project_service.enabled]
}

resource "google_bigquery_table" "events" {
  dataset_id          = google_bigquery_dataset.demo.dataset_id
  table_id            = var.table_id
  deletion_protection = false
  schema              = <<-EOT
    [
      { "name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED" },
      { "name": "message", "type": "STRING", "mode": "NULLABLE" }
    ]
  EOT
}

# The demo may create objects in its bucket and add rows to its dataset, nothing else. Project-level
# grants with IAM conditions on the resource name, as the walk-through does: they work the same for
# federated principals and service accounts, which dataset-level bindings do not in every provider
# version.
resource "google_project_iam_member" "bucket_writer" {
  for_each = local.data_writers
  project  = var.project_id
  role     = "roles/storage.objectCreator"
  member   = each.value
  condition {
    title       = "token-broker demo bucket only"
    description = "Objects of the demo bucket"
    expression  = "resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.demo.name}/objects/\")"
  }
}

resource "google_project_iam_member" "dataset_writer" {
  for_each = local.data_writers
  project  = var.project_id
  role     = "roles/bigquery.dataEditor"
  member   = each.value
  condition {
    title       = "token-broker demo dataset only"
    description = "Tables of the demo dataset"
    expression  = "resource.name.startsWith(\"projects/${var.project_id}/datasets/${google_bigquery_dataset.demo.dataset_id}/tables/\")"
  }
}
