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

output "service_account_email" {
  description = "The service account the broker impersonates (BROKER_SERVICE_ACCOUNT), or empty."
  value       = local.impersonate ? google_service_account.broker[0].email : ""
}

# Everything the CDK demo stacks need, as arguments: npx cdk deploy --all $(terraform output -raw cdk_context_args)
output "cdk_context_args" {
  description = "CDK context arguments for the demo stacks."
  value = join(" ", [
    "-c googleProjectId=${var.project_id}",
    "-c googleProjectNumber=${data.google_project.this.number}",
    "-c workloadIdentityPoolId=${google_iam_workload_identity_pool.aws.workload_identity_pool_id}",
    "-c workloadIdentityProviderId=${google_iam_workload_identity_pool_provider.aws.workload_identity_pool_provider_id}",
    "-c googleServiceAccount=${local.impersonate ? google_service_account.broker[0].email : ""}",
    "-c demoBucket=${google_storage_bucket.demo.name}",
    "-c demoDataset=${google_bigquery_dataset.demo.dataset_id}",
    "-c demoTable=${google_bigquery_table.events.table_id}",
  ])
}
