engine = ${engine}
subnet = ${subnet}
%{ for k, v in tags ~}
tag.${k} = ${v}
%{ endfor ~}
