variable "subnet_id" { type = string }

resource "terraform_data" "lb" {
  input = { subnet_id = var.subnet_id }
}

output "id" { value = "lb-${substr(sha1(var.subnet_id), 0, 8)}" }
output "dns_name" { value = "lb-${substr(sha1(var.subnet_id), 0, 8)}.elb.internal" }
