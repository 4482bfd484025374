variable "subnet_id" { type = string }
variable "engine" { type = string }

resource "terraform_data" "db" {
  input = { subnet_id = var.subnet_id, engine = var.engine }
}

output "id" { value = "db-${substr(sha1(var.subnet_id), 0, 8)}" }
output "endpoint" { value = "${var.engine}.${var.subnet_id}.internal:5432" }
