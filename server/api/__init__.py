"""gRPC servicers: one module per proto service. Request in, domain call, response out."""
