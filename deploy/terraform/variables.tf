variable "name" {
  description = "Name prefix of the roles."
  type        = string
  default     = "rds-token-broker"
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider_url" {
  description = "Its URL without https://, e.g. oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the broker."
  type        = string
  default     = "rds-token-broker"
}

variable "service_account" {
  description = "Kubernetes service account of the broker."
  type        = string
  default     = "rds-token-broker"
}

variable "targets" {
  description = "Per target: the database's region and resource id (cluster-... or db-...) and the DB users the broker may connect as. Each gets a connect role the broker assumes per caller."
  type = map(object({
    region      = string
    resource_id = string
    db_users    = list(string)
  }))
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
