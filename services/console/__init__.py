"""The web console: a client of the four services over gRPC, served over HTTP, holding no store."""
