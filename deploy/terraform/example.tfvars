# Example inputs (docs/deploying.md): copy to terraform.tfvars, or pass with
# `terraform apply -var-file=...`, and replace every value with your account's.

# The EKS cluster's IAM OIDC provider (IRSA): its ARN, and its URL without https://
# (`aws eks describe-cluster --name CLUSTER --query cluster.identity.oidc.issuer`).
oidc_provider_arn = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
oidc_provider_url = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"

# Where the broker runs: the overlay's namespace and the base's ServiceAccount.
namespace       = "rds-token-broker"
service_account = "rds-token-broker"

# One entry per [[targets]] entry of broker.toml, keyed by its name: the database's
# region, its resource id (`aws rds describe-db-clusters --query
# 'DBClusters[].DbClusterResourceId'`, or DbiResourceId of an instance) and the DB users
# its grants name. Each gets a connect role; connect_role_arns["orders-db"] is the
# target's role_arn.
targets = {
  "orders-db" = {
    region      = "eu-west-1"
    resource_id = "cluster-ABCDEFGHIJKLMNOPQRSTUVWXY1"
    db_users    = ["app_rw", "app_ro"]
  }
}

tags = {
  service = "rds-token-broker"
}
