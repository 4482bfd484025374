variable "engine" { type = string }
variable "subnet_id" { type = string }

module "tags" {
  source = "../../shared/tags"
  name   = "db"
}

locals {
  rendered = templatefile("${path.module}/tpl/params.conf.tpl", {
    engine = var.engine
    subnet = var.subnet_id
    tags   = module.tags.tags
  })
}

resource "terraform_data" "params" {
  input = local.rendered
}

output "rendered" { value = local.rendered }
