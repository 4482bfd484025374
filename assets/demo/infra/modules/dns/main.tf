variable "name" { type = string }
variable "target" { type = string }

resource "terraform_data" "record" {
  input = { name = var.name, target = var.target }
}

output "id" { value = var.name }
output "fqdn" { value = "${var.name} -> ${terraform_data.record.output.target}" }
