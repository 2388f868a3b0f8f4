"""The Envoy configuration of the gateway, rendered from the settings and the descriptor set.

One function, ``render``, is the only place the gateway's configuration is written: ``make run``, the
gateway image and the tests all run what it returns. Its inputs are the ``WORKSPACE_*`` settings (ports,
the upstream replicas, allowed CORS origins, heartbeat and keepalive) and ``generated/descriptor.binpb``,
from which it takes the services to transcode and which of their methods stream.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

from server.settings import Settings

#: The descriptor set that ``make generate`` writes, with every service and the types of error details.
DESCRIPTOR_PATH = Path(__file__).resolve().parent.parent / "generated" / "descriptor.binpb"
#: Our services' package; the gateway transcodes and routes every service in it.
PACKAGE = "workspace.v1"
#: gRPC services routed as they are, besides ours: health (probes, grpcurl) and reflection (grpcurl).
PASS_THROUGH = (
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
)
#: Their streaming methods, which no timeout may cut either.
PASS_THROUGH_STREAMS = (
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
CLUSTER = "workspace"
#: Open client connections one gateway accepts at most.
MAX_CONNECTIONS = 50_000
#: A unary call through the gateway gives up after this long (the server's own deadlines are shorter).
UNARY_TIMEOUT_SECONDS = 60
#: The headers a browser may send, and those it may read, across origins (gRPC-Web needs its own).
CORS_ALLOW_HEADERS = (
    "authorization,content-type,accept,x-request-id,x-grpc-web,x-user-agent,grpc-timeout,grpc-accept-encoding"
)
CORS_EXPOSE_HEADERS = "grpc-status,grpc-message,grpc-status-details-bin,x-request-id,retry-after"
#: The gRPC code a local reply of Envoy's (no route, bad JSON, no healthy replica) carries in its JSON body,
#: so that every error body has the same shape: {"code": <google.rpc.Code>, "message": ..., "details": [...]}.
LOCAL_REPLY_CODES = {
    400: 3,
    401: 16,
    403: 7,
    404: 5,
    405: 12,
    408: 4,
    413: 8,
    429: 8,
    500: 13,
    502: 14,
    503: 14,
    504: 4,
}


@dataclass(frozen=True)
class Services:
    """What the descriptor set says the gateway must know: service names and the paths of streaming methods."""

    names: tuple[str, ...]
    streaming_paths: tuple[str, ...]


def read_services(descriptor_path: Path = DESCRIPTOR_PATH) -> Services:
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_path.read_bytes()).file
    names, streaming = [], []
    for file in files:
        if file.package != PACKAGE:
            continue
        for service in file.service:
            name = f"{file.package}.{service.name}"
            names.append(name)
            streaming += [f"/{name}/{m.name}" for m in service.method if m.server_streaming or m.client_streaming]
    if not names:
        raise SystemExit(f"{descriptor_path} holds no {PACKAGE} service: run `make generate`")
    return Services(tuple(sorted(names)), tuple(sorted(streaming)))


def reachable_host(host: str) -> str:
    """An address to reach a server bound to ``host`` from this machine (a wildcard is not one)."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host


def upstreams(settings: Settings) -> list[tuple[str, int]]:
    """The replicas behind the gateway: WORKSPACE_GATEWAY_UPSTREAMS, or this host's gRPC port."""
    if not settings.gateway_upstreams.strip():
        return [(reachable_host(settings.host), settings.grpc_port)]
    found = []
    for item in settings.gateway_upstreams.split(","):
        host, _, port = item.strip().rpartition(":")
        found.append((host.strip("[]"), int(port)))
    return found


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _typed(kind: str, **fields: object) -> dict:
    return {"@type": f"type.googleapis.com/{kind}", **fields}


def _cors_policy(settings: Settings) -> dict | None:
    """The CORS policy for WORKSPACE_CORS_ORIGINS; none when it is empty (browsers then refuse other origins)."""
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if not origins:
        return None
    matchers = [{"safe_regex": {"regex": ".*"}} if o == "*" else {"exact": o} for o in origins]
    return _typed(
        "envoy.extensions.filters.http.cors.v3.CorsPolicy",
        allow_origin_string_match=matchers,
        allow_methods="GET,POST,PUT,PATCH,DELETE,OPTIONS",
        allow_headers=CORS_ALLOW_HEADERS,
        expose_headers=CORS_EXPOSE_HEADERS,
        max_age="86400",
    )


def _routes(settings: Settings, services: Services) -> list[dict]:
    # Streams are never cut by a timeout; only silence longer than three heartbeats ends one.
    stream_idle = _seconds(max(60.0, 3 * settings.stream_heartbeat_seconds))
    stream_route = {"cluster": CLUSTER, "timeout": "0s", "idle_timeout": stream_idle}
    streams = (*services.streaming_paths, *PASS_THROUGH_STREAMS)
    # A stream's events (NDJSON over REST) are sent as they come: never through the compressor.
    uncompressed = {"envoy.filters.http.compressor": _typed(COMPRESSOR_PER_ROUTE, disabled=True)}
    routes = [{"match": {"path": p}, "route": stream_route, "typed_per_filter_config": uncompressed} for p in streams]
    # A unary call that a stopping or unreachable replica refused before doing anything goes to another one:
    # the client sees no error. Nothing that may have run is retried.
    unary_route = {
        "cluster": CLUSTER,
        "timeout": _seconds(UNARY_TIMEOUT_SECONDS),
        "retry_policy": {
            "retry_on": "connect-failure,refused-stream,reset-before-request,unavailable",
            "num_retries": 3,
            "retry_host_predicate": [
                {
                    "name": "envoy.retry_host_predicates.previous_hosts",
                    "typed_config": _typed("envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"),
                }
            ],
            "host_selection_retry_max_attempts": 5,
        },
    }
    routes += [{"match": {"prefix": f"/{name}/"}, "route": unary_route} for name in (*services.names, *PASS_THROUGH)]
    return routes  # anything else: 404


def _local_replies() -> dict:
    """Envoy's own answers (no route, bad JSON, no healthy replica) in the shape of the transcoded errors."""

    def body(code: int) -> dict:
        return {"json_format": {"code": code, "message": "%LOCAL_REPLY_BODY%", "details": []}}

    # /healthz answers {"status": "SERVING"} while a replica passes its health check, NOT_SERVING otherwise.
    healthz = {"header_filter": {"header": {"name": ":path", "string_match": {"exact": "/healthz"}}}}
    health = [
        {
            "filter": {"and_filter": {"filters": [healthz, _status_filter(http)]}},
            "body_format_override": {"json_format": {"status": status}},
        }
        for http, status in ((200, "SERVING"), (503, "NOT_SERVING"))
    ]
    errors = [
        {"filter": _status_filter(http), "body_format_override": body(code)} for http, code in LOCAL_REPLY_CODES.items()
    ]
    return {"mappers": [*health, *errors], "body_format": body(2)}


def _status_filter(http: int) -> dict:
    value = {"default_value": http, "runtime_key": f"workspace.local_reply.{http}"}
    return {"status_code_filter": {"comparison": {"op": "EQ", "value": value}}}


def _access_log() -> list[dict]:
    fields = {
        "time": "%START_TIME%",
        "method": "%REQ(:METHOD)%",
        "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
        "protocol": "%PROTOCOL%",
        "status": "%RESPONSE_CODE%",
        "grpc_status": "%GRPC_STATUS(NUMBER)%",
        "flags": "%RESPONSE_FLAGS%",
        "duration_ms": "%DURATION%",
        "upstream": "%UPSTREAM_HOST%",
        "request_id": "%REQ(X-REQUEST-ID)%",
    }
    return [
        {
            "name": "envoy.access_loggers.stdout",
            "typed_config": _typed(
                "envoy.extensions.access_loggers.stream.v3.StdoutAccessLog", log_format={"json_format": fields}
            ),
        }
    ]


#: Response types the gateway compresses (gzip) when the client accepts it: transcoded JSON and calendars.
#: Not PDF (already compressed), not gRPC or gRPC-Web (their own framing), not NDJSON streams (each event
#: must reach the client when it is sent, not when a compressor's block fills).
COMPRESSED_TYPES = ("application/json", "text/calendar")
#: Smaller responses are sent as they are: gzip's header and the CPU cost more than it saves.
COMPRESS_MIN_BYTES = 1024
COMPRESSOR_PER_ROUTE = "envoy.extensions.filters.http.compressor.v3.CompressorPerRoute"


def _compressor() -> dict:
    gzip = _typed("envoy.extensions.compression.gzip.compressor.v3.Gzip", compression_level="DEFAULT_COMPRESSION")
    types = "|".join(re.escape(media_type) for media_type in COMPRESSED_TYPES)
    return _typed(
        "envoy.extensions.filters.http.compressor.v3.Compressor",
        response_direction_config={
            "common_config": {
                "min_content_length": COMPRESS_MIN_BYTES,
                # The media type, with or without parameters (`application/json; charset=utf-8`).
                "content_type_matcher": {"safe_regex": {"regex": f"^({types})(;.*)?$"}},
            },
        },
        compressor_library={"name": "gzip", "typed_config": gzip},
    )


#: Only native gRPC clients may ask the server for compressed replies. Envoy's REST transcoder and gRPC-Web
#: filter cannot read a compressed gRPC frame (a REST client that sent ``grpc-accept-encoding: gzip`` got a
#: 502), so the header is dropped from every other request before those filters turn it into a gRPC call.
NATIVE_GRPC = r"^application/grpc(\+[a-z]+)?(;.*)?$"


def _only_grpc_accepts_compression() -> dict:
    """A header mutation skipped for native gRPC requests (a matcher on content-type: no script per request)."""
    remove = _typed(
        "envoy.extensions.filters.http.header_mutation.v3.HeaderMutation",
        mutations={"request_mutations": [{"remove": "grpc-accept-encoding"}]},
    )
    content_type = _typed("envoy.type.matcher.v3.HttpRequestHeaderMatchInput", header_name="content-type")
    native = {
        "single_predicate": {
            "input": {"name": "content-type", "typed_config": content_type},
            "value_match": {"safe_regex": {"google_re2": {}, "regex": NATIVE_GRPC}},
        }
    }
    skip = _typed("envoy.extensions.filters.common.matcher.action.v3.SkipFilter")
    return _typed(
        "envoy.extensions.common.matching.v3.ExtensionWithMatcher",
        extension_config={"name": "envoy.filters.http.header_mutation", "typed_config": remove},
        xds_matcher={
            "matcher_list": {
                "matchers": [{"predicate": native, "on_match": {"action": {"name": "skip", "typed_config": skip}}}]
            }
        },
    )


def _filters(settings: Settings, services: Services, descriptor_path: Path) -> list[dict]:
    health = _typed(
        "envoy.extensions.filters.http.health_check.v3.HealthCheck",
        pass_through_mode=False,
        headers=[{"name": ":path", "string_match": {"exact": "/healthz"}}],
        # 200 while at least one replica passes its gRPC health check, 503 otherwise.
        cluster_min_healthy_percentages={CLUSTER: {"value": 1.0}},
    )
    transcoder = _typed(
        "envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder",
        proto_descriptor=str(descriptor_path),
        services=list(services.names),
        print_options={
            "preserve_proto_field_names": True,
            "always_print_primitive_fields": True,
            "stream_newline_delimited": True,
        },
        convert_grpc_status=True,
        request_validation_options={"reject_unknown_method": True, "reject_unknown_query_parameters": True},
        max_request_body_size=settings.max_message_bytes,
        max_response_body_size=64 * 1024 * 1024,
    )
    named = [
        ("envoy.filters.http.header_mutation", _only_grpc_accepts_compression()),
        ("envoy.filters.http.health_check", health),
        ("envoy.filters.http.cors", _typed("envoy.extensions.filters.http.cors.v3.Cors")),
        # Before the transcoder, so that it compresses the JSON the transcoder wrote (responses go up the list).
        ("envoy.filters.http.compressor", _compressor()),
        ("envoy.filters.http.grpc_web", _typed("envoy.extensions.filters.http.grpc_web.v3.GrpcWeb")),
        ("envoy.filters.http.grpc_json_transcoder", transcoder),
        ("envoy.filters.http.router", _typed("envoy.extensions.filters.http.router.v3.Router")),
    ]
    return [{"name": name, "typed_config": config} for name, config in named]


def _tls_certificate(cert_file: str, key_file: str) -> dict:
    return {
        "certificate_chain": {"filename": str(Path(cert_file).absolute())},
        "private_key": {"filename": str(Path(key_file).absolute())},
    }


def _downstream_tls(settings: Settings) -> dict:
    """HTTPS and gRPC over TLS on the listener: HTTP/2 (gRPC) or HTTP/1.1 (browsers, curl) chosen by ALPN."""
    context = _typed(
        "envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
        common_tls_context={
            "tls_certificates": [_tls_certificate(settings.gateway_tls_cert_file, settings.gateway_tls_key_file)],
            "alpn_protocols": ["h2", "http/1.1"],
            "tls_params": {"tls_minimum_protocol_version": "TLSv1_2"},
        },
    )
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _upstream_tls(settings: Settings) -> dict:
    """TLS to the replicas (calls and health checks), trusting WORKSPACE_GATEWAY_UPSTREAM_CA_FILE's CAs."""
    context = _typed(
        "envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        common_tls_context={
            "alpn_protocols": ["h2"],  # gRPC servers refuse TLS connections that do not agree on HTTP/2
            "validation_context": {"trusted_ca": {"filename": str(Path(settings.gateway_upstream_ca_file).absolute())}},
        },
    )
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _cluster(settings: Settings) -> dict:
    hosts = upstreams(settings)
    endpoints = [{"endpoint": {"address": {"socket_address": {"address": h, "port_value": p}}}} for h, p in hosts]
    http2 = {
        # The server refuses pings more often than every 10 s on a connection without calls.
        "connection_keepalive": {"interval": "30s", "timeout": _seconds(settings.keepalive_timeout_seconds)},
    }
    interval = _seconds(settings.gateway_health_seconds)
    cluster = {
        "name": CLUSTER,
        # Addresses are static. Host names (compose services) are resolved again every few seconds; Envoy
        # 1.40 was seen to keep sending calls to such a replica after it failed its health check, until it
        # refused them (which are then retried on another): DEPLOYMENT.md says so.
        "type": "STATIC" if all(_is_address(host) for host, _ in hosts) else "STRICT_DNS",
        "dns_lookup_family": "V4_PREFERRED",
        "connect_timeout": "2s",
        "lb_policy": "LEAST_REQUEST",  # streams are long: balance what is open, not what was opened
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": _typed(
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                explicit_http_config={"http2_protocol_options": http2},
            )
        },
        "load_assignment": {"cluster_name": CLUSTER, "endpoints": [{"lb_endpoints": endpoints}]},
        "health_checks": [
            {
                "timeout": "1s",
                "interval": interval,
                "no_traffic_interval": interval,
                "unhealthy_threshold": 1,
                "healthy_threshold": 1,
                "grpc_health_check": {"service_name": ""},
            }
        ],
        # When a replica stops, every call in its way is retried at once: Envoy's default of 3 retries in
        # flight per cluster would fail most of them. Half of the calls in flight, at least 32, may be retries.
        "circuit_breakers": {
            "thresholds": [{"retry_budget": {"budget_percent": {"value": 50.0}, "min_retry_concurrency": 32}}]
        },
        # A replica that refuses a connection is set aside at once, before its next health check, so that
        # the retries of the calls it failed go elsewhere (least-request would otherwise favour it: idle).
        "outlier_detection": {
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": 1,
            "enforcing_consecutive_local_origin_failure": 100,
            "consecutive_5xx": 1000,  # calls that fail on the server's side say nothing about its health
            "consecutive_gateway_failure": 1000,
            "base_ejection_time": "5s",
            "max_ejection_percent": 50,
        },
        # Never send calls to replicas known to be unhealthy, even when none is healthy: answer 503.
        "common_lb_config": {"healthy_panic_threshold": {"value": 0.0}},
    }
    if settings.gateway_upstream_ca_file:  # health checks go through the same transport socket
        cluster["transport_socket"] = _upstream_tls(settings)
    return cluster


def render(settings: Settings, descriptor_path: Path = DESCRIPTOR_PATH) -> dict:
    """The whole Envoy bootstrap configuration, as a JSON-ready dict."""
    services = read_services(descriptor_path)
    virtual_host: dict = {"name": "workspace", "domains": ["*"], "routes": _routes(settings, services)}
    cors = _cors_policy(settings)
    if cors is not None:
        virtual_host["typed_per_filter_config"] = {"envoy.filters.http.cors": cors}
    connection_manager = _typed(
        "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        stat_prefix="workspace",
        codec_type="AUTO",  # HTTP/1.1 (curl, browsers) and HTTP/2 (gRPC clients, with or without TLS) on one port
        generate_request_id=True,
        # The peer's own address is appended to x-forwarded-for, whatever the client sent in it: the servers
        # take the last entry as the client's address for their rate limits (WORKSPACE_RATE_TRUSTED_PROXIES).
        use_remote_address=True,
        stream_idle_timeout=_seconds(max(60.0, 3 * settings.stream_heartbeat_seconds)),
        # Clients that vanish without closing are found as the server finds them: by an unanswered ping.
        http2_protocol_options={
            "connection_keepalive": {
                "interval": _seconds(settings.keepalive_seconds),
                "timeout": _seconds(settings.keepalive_timeout_seconds),
            }
        },
        access_log=_access_log(),
        local_reply_config=_local_replies(),
        route_config={
            "name": "workspace",
            "virtual_hosts": [virtual_host],
        },
        http_filters=_filters(settings, services, descriptor_path),
    )
    chain: dict = {
        "filters": [{"name": "envoy.filters.network.http_connection_manager", "typed_config": connection_manager}]
    }
    if settings.gateway_tls_cert_file:
        chain["transport_socket"] = _downstream_tls(settings)
    listener = {
        "name": "workspace",
        "address": {"socket_address": {"address": settings.host, "port_value": settings.http_port}},
        "filter_chains": [chain],
    }
    # Envoy's own limit on open connections (it warns without one); far above what one gateway serves.
    connections_limit = {
        "name": "envoy.resource_monitors.global_downstream_max_connections",
        "typed_config": _typed(
            "envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig",
            max_active_downstream_connections=MAX_CONNECTIONS,
        ),
    }
    return {
        "overload_manager": {"resource_monitors": [connections_limit]},
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": settings.gateway_admin_port}}},
        "static_resources": {"listeners": [listener], "clusters": [_cluster(settings)]},
    }
