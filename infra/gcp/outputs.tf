output "provider_audience" {
  description = "The broker's BROKER_AUDIENCE: the JWT audience Google accepts."
  value       = local.provider_audience
}

output "project_number" {
  description = "Project number (the CDK context googleProjectNumber)."
  value       = data.google_project.this.number
}

output "federated_principals" {
  description = "IAM principal of each AWS role, as Google sees it after the exchange."
  value       = local.federated_principals
}

output "granted_principals" {
  description = "Who gets the demo's data grants (with a service account: who may impersonate it): roles, functions by name, services by request tag."
  value       = local.granted_principals
}

output "service_account_email" {
  description = "The service account the broker impersonates (BROKER_SERVICE_ACCOUNT), or empty."
  value       = local.broker_service_account
  depends_on  = [google_service_account.broker]
}

locals {
  # Exactly the context keys the CDK demo stacks read (infra/demo/demo-context.ts).
  cdk_context = {
    googleProjectId            = var.project_id
    googleProjectNumber        = data.google_project.this.number
    workloadIdentityPoolId     = google_iam_workload_identity_pool.aws.workload_identity_pool_id
    workloadIdentityProviderId = google_iam_workload_identity_pool_provider.aws.workload_identity_pool_provider_id
    googleServiceAccount       = local.broker_service_account
    demoBucket                 = google_storage_bucket.demo.name
    demoDataset                = google_bigquery_dataset.demo.dataset_id
    demoTable                  = google_bigquery_table.events.table_id
  }
}

# npx cdk deploy --all $(terraform -chdir=infra/gcp output -raw cdk_context_args)
output "cdk_context_args" {
  description = "The Google side's names as CDK context arguments for the demo stacks."
  value       = join(" ", [for key, value in local.cdk_context : "-c ${key}=${value}"])
}
