# The AWS role of the token-broker pod on EKS (infra/kubernetes/demo-app.yaml): trusted by one
# service account of one cluster, through IRSA or EKS Pod Identity, and given the token-broker
# module's audience-pinned sts:GetWebIdentityToken permission. From a clone of this repository:
#
#   terraform init
#   terraform apply -var cluster_name=my-cluster -var credentials=irsa \
#     -var audience="$(terraform -chdir=../../../../gcp output -raw provider_audience)"
#
# With credentials=irsa, annotate the service account with the role_arn output; with
# credentials=pod-identity, this creates the association (and the annotation must go).
# Either way, add role_arn to infra/gcp's aws_role_arns.

terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.0, < 7.0"
    }
  }
}

variable "cluster_name" {
  description = "The EKS cluster the pod runs on."
  type        = string
}

variable "audience" {
  description = "infra/gcp's provider_audience output; the pod's BROKER_AUDIENCE."
  type        = string
}

variable "credentials" {
  description = "How the pod gets the role: irsa (the cluster's IAM OIDC provider and the service account's eks.amazonaws.com/role-arn annotation) or pod-identity (an EKS Pod Identity association; the cluster runs the eks-pod-identity-agent add-on)."
  type        = string
  default     = "irsa"

  validation {
    condition     = contains(["irsa", "pod-identity"], var.credentials)
    error_message = "credentials must be irsa or pod-identity."
  }
}

variable "namespace" {
  description = "The service account's namespace (demo-app.yaml's)."
  type        = string
  default     = "default"
}

variable "service_account" {
  description = "The pod's service account (demo-app.yaml's)."
  type        = string
  default     = "token-broker-demo"
}

variable "role_name" {
  description = "The role's name; demo-app.yaml's annotation names this one."
  type        = string
  default     = "token-broker-demo-eks"
}

data "aws_eks_cluster" "this" {
  name = var.cluster_name
}

locals {
  irsa = var.credentials == "irsa"
  # The IAM condition keys of an OIDC provider are named after its issuer, without the scheme.
  oidc_issuer = trimprefix(data.aws_eks_cluster.this.identity[0].oidc[0].issuer, "https://")
  # The `sub` claim of the service account token the IRSA webhook mounts in the pod.
  service_account_subject = "system:serviceaccount:${var.namespace}:${var.service_account}"
}

# The cluster's IAM OIDC provider; create it once per cluster if this lookup fails
# (`eksctl utils associate-iam-oidc-provider --cluster <name> --approve`, or aws_iam_openid_connect_provider).
data "aws_iam_openid_connect_provider" "cluster" {
  count = local.irsa ? 1 : 0
  url   = data.aws_eks_cluster.this.identity[0].oidc[0].issuer
}

# IRSA: the pod's projected token, issued by the cluster for this service account with the
# audience the webhook requests, is exchanged by AssumeRoleWithWebIdentity.
data "aws_iam_policy_document" "irsa_trust" {
  count = local.irsa ? 1 : 0
  statement {
    sid     = "ServiceAccountOfThisCluster"
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [data.aws_iam_openid_connect_provider.cluster[0].arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:sub"
      values   = [local.service_account_subject]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_issuer}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

# EKS Pod Identity: the EKS Auth service assumes the role and tags the session with the pod's
# cluster, namespace and service account, so the trust pins all three.
data "aws_iam_policy_document" "pod_identity_trust" {
  count = local.irsa ? 0 : 1
  statement {
    sid     = "ServiceAccountOfThisCluster"
    effect  = "Allow"
    actions = ["sts:AssumeRole", "sts:TagSession"]
    principals {
      type        = "Service"
      identifiers = ["pods.eks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/eks-cluster-arn"
      values   = [data.aws_eks_cluster.this.arn]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-namespace"
      values   = [var.namespace]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/kubernetes-service-account"
      values   = [var.service_account]
    }
  }
}

resource "aws_iam_role" "broker" {
  name               = var.role_name
  assume_role_policy = local.irsa ? data.aws_iam_policy_document.irsa_trust[0].json : data.aws_iam_policy_document.pod_identity_trust[0].json
}

# The role's one permission, the same statement the Lambda and ECS deployments get. A pod needs no
# layers, and the environment is in demo-app.yaml.
module "token_broker" {
  source         = "../.."
  audience       = var.audience
  role_name      = aws_iam_role.broker.name
  publish_layers = false
}

resource "aws_eks_pod_identity_association" "broker" {
  count           = local.irsa ? 0 : 1
  cluster_name    = var.cluster_name
  namespace       = var.namespace
  service_account = var.service_account
  role_arn        = aws_iam_role.broker.arn
  # The pod must not start before its role may mint the JWT.
  depends_on = [module.token_broker]
}

output "role_arn" {
  description = "Add it to infra/gcp's aws_role_arns; with IRSA, it is the service account's eks.amazonaws.com/role-arn."
  value       = aws_iam_role.broker.arn
}

output "policy_json" {
  description = "The sts:GetWebIdentityToken policy on the role, for review."
  value       = module.token_broker.policy_json
}
