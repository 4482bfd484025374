variable "vpc_id" { type = string }
variable "cidr" { type = string }
variable "public" { type = bool }

resource "terraform_data" "subnet" {
  input = { vpc_id = var.vpc_id, cidr = var.cidr, public = var.public }
}

output "id" { value = "subnet-${substr(sha1("${var.vpc_id}/${var.cidr}"), 0, 8)}" }
output "vpc_id" { value = terraform_data.subnet.output.vpc_id }
