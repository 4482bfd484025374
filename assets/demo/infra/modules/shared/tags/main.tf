variable "name" { type = string }

output "tags" {
  value = { name = var.name, environment = "staging", managed_by = "pipedeck" }
}
