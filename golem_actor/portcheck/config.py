"""Settings of the port-check server, checked once at start.

Why: every limit that keeps the server from becoming a port-scan relay is here with a
safe default, so a deployment cannot forget one: the number of ports per request, the
request rate and in-flight requests per source, the global number of simultaneous
probes, and the time bounds of one probe and of one request. `trusted_proxies` lists the
networks whose `X-Forwarded-For` is believed (a reverse proxy in front of the server);
everyone else is identified by the TCP peer address alone.
"""

from __future__ import annotations

import ipaddress

import msgspec

__all__ = ["IpNetwork", "ServerConfig", "parse_networks"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "0.0.0.0"
    port: int = 9000
    trusted_proxies: tuple[IpNetwork, ...] = ()
    max_ports: int = 128  # distinct ports in one request
    per_ip_rate: float = 30.0  # requests per minute and source, on average
    burst: int = 10  # requests a source may make at once
    max_inflight_per_source: int = 2  # simultaneous requests of one source
    concurrency: int = 64  # simultaneous probes, all requests together
    probe_timeout: float = 5.0  # one TCP connect
    request_timeout: float = 20.0  # all probes of one request
    max_body: int = 64 * 1024
    max_sources: int = 10_000  # rate-limit buckets kept in memory

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        positive = {
            "max_ports": self.max_ports,
            "per_ip_rate": self.per_ip_rate,
            "burst": self.burst,
            "max_inflight_per_source": self.max_inflight_per_source,
            "concurrency": self.concurrency,
            "probe_timeout": self.probe_timeout,
            "request_timeout": self.request_timeout,
            "max_body": self.max_body,
            "max_sources": self.max_sources,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if self.max_ports > 65535:
            raise ValueError(f"max_ports must be at most 65535, got {self.max_ports}")


def parse_networks(values: list[str] | tuple[str, ...]) -> tuple[IpNetwork, ...]:
    """CIDRs (or single addresses) as networks; a bad value raises ValueError naming it."""
    networks: list[IpNetwork] = []
    for value in values:
        try:
            network = ipaddress.ip_network(value.strip(), strict=False)
        except ValueError as exc:
            raise ValueError(f"not a network (CIDR) or address: {value!r}") from exc
        if network.prefixlen == 0:
            # Everyone could then name any target in X-Forwarded-For: an open relay.
            raise ValueError(f"refusing to trust every address ({value!r}) as a proxy")
        networks.append(network)
    return tuple(networks)
