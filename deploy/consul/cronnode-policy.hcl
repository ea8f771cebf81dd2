# The least rights a cronnode node needs (Consul ACL policy).
#
#   consul acl policy create -name cronnode -description "cronnode nodes" \
#     -rules @deploy/consul/cronnode-policy.hcl
#   consul acl token create -description "cronnode on $(hostname)" -policy-name cronnode
#
# Give the token's SecretID to cronnode as CONSUL_HTTP_TOKEN (or --consul-token).
# With a KV prefix other than "cronnode", change the key_prefix below to match.

# The lock key <prefix>/leader and the jobs <prefix>/jobs/<id>.
key_prefix "cronnode/" {
  policy = "write"
}

# The lock session (created on the local agent's node; "" covers any node name).
session_prefix "" {
  policy = "write"
}

# The node's own service registration, its TTL check and the `leader` tag; also lets
# /v1/health/service/cronnode list the other nodes.
service "cronnode" {
  policy = "write"
}

# Sessions are bound to serfHealth (a node check); reading nodes is needed to create them and
# to show node health.
node_prefix "" {
  policy = "read"
}

# The agent's own info (node name), read when a session is created through it.
agent_prefix "" {
  policy = "read"
}
