variable "subnet_id" { type = string }
variable "engine" { type = string }

# A local child module (which calls one of its own): run as it is, in a copy of the tree.
module "params" {
  source    = "./params"
  engine    = var.engine
  subnet_id = var.subnet_id
}

resource "terraform_data" "db" {
  input = { subnet_id = var.subnet_id, engine = var.engine, params = module.params.rendered }
}

output "id" { value = "db-${substr(sha1(var.subnet_id), 0, 8)}" }
output "endpoint" { value = "${var.engine}.${var.subnet_id}.internal:5432" }
output "params" { value = module.params.rendered }
