# cronnode as a Nomad system job: one node per Nomad client, each talking to the Consul agent
# of its host. NOT exercised by the test suite (no Nomad on the CI machine).
#
#   nomad var put nomad/jobs/cronnode consul_token=<SecretID> api_token=<secret> \
#     redis_url=redis://redis.service.consul:6379
#   nomad job run deploy/nomad/cronnode.nomad.hcl
#
# The Consul token comes from deploy/consul/cronnode-policy.hcl (see the README).
job "cronnode" {
  type        = "system"
  datacenters = ["dc1"]

  update {
    # One node at a time: the leader hands over on SIGTERM (release, then destroy the session).
    max_parallel = 1
    stagger      = "10s"
  }

  group "cronnode" {
    network {
      mode = "host"
      port "api" {
        static = 8765
      }
    }

    task "cronnode" {
      driver       = "docker"
      kill_signal  = "SIGTERM"
      kill_timeout = "30s"

      config {
        image        = "cronnode:0.1.0"
        network_mode = "host"
        args         = ["run"]
      }

      env {
        CONSUL_HTTP_ADDR   = "http://${attr.unique.network.ip-address}:8500"
        CRONNODE_NODE      = "${node.unique.name}"
        CRONNODE_LISTEN    = "0.0.0.0:${NOMAD_PORT_api}"
        CRONNODE_ADVERTISE = "${attr.unique.network.ip-address}:${NOMAD_PORT_api}"
        CRONNODE_LOG_FORMAT = "json"
        # The platform's IronFunctions API server: jobs' apps and routes are read there.
        CRONNODE_FUNCTIONS_URL = "http://functions.service.consul:8080"
      }

      template {
        destination = "secrets/cronnode.env"
        env         = true
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/cronnode" }}
          CONSUL_HTTP_TOKEN={{ .consul_token }}
          CRONNODE_API_TOKEN={{ .api_token }}
          REDIS_URL={{ .redis_url }}
          {{ end }}
        EOT
      }

      resources {
        cpu    = 200
        memory = 128
      }
    }
  }
}
