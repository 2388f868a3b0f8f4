"""The gateway: Envoy in front of the server's replicas (REST, gRPC-Web and gRPC on one HTTP port), its
configuration rendered from the settings and the descriptor set, and the supervisor behind ``make run``."""
