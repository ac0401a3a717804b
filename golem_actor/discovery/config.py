"""Settings of the discovery server, checked once at start.

Why: every bound that keeps the service honest and cheap to run has a safe default here,
so a deployment cannot forget one: how long an advert lives without a refresh (TTL, 5
min as upstream) and how often expired rows are removed, the request rates per source
(reads and signed writes apart: a write costs a signature recovery), the body cap, how
many adverts are kept at most, how far a signed timestamp may be from our clock,
and whether unsigned legacy adverts are admitted at all (off by default).
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from golem_actor.portcheck.config import IpNetwork

__all__ = ["DEFAULT_DB", "DiscoveryConfig"]

DEFAULT_DB = Path.home() / ".golem" / "discovery" / "discovery.sqlite3"


class DiscoveryConfig(msgspec.Struct, frozen=True, kw_only=True):
    host: str = "0.0.0.0"
    port: int = 9001  # upstream's default port
    db_path: Path = DEFAULT_DB
    allow_unsigned: bool = False  # admit legacy adverts signed with the literal "signature"
    trusted_proxies: tuple[IpNetwork, ...] = ()
    ttl: float = 300.0  # an advert not refreshed for this long is no longer listed
    cleanup_interval: float = 60.0  # how often expired rows are deleted
    read_rate: float = 600.0  # GET requests per minute and source, on average
    read_burst: int = 60
    write_rate: float = 30.0  # POST/DELETE requests per minute and source
    write_burst: int = 5
    max_body: int = 16 * 1024
    max_adverts: int = 50_000
    max_sources: int = 10_000  # rate-limit buckets kept in memory
    clock_skew: float = 300.0  # a signed timestamp may be this far from our clock
    verify_threads: int = 2  # signature recoveries at once (each ~10 ms of pure Python)

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        positive = {
            "ttl": self.ttl,
            "cleanup_interval": self.cleanup_interval,
            "read_rate": self.read_rate,
            "read_burst": self.read_burst,
            "write_rate": self.write_rate,
            "write_burst": self.write_burst,
            "max_body": self.max_body,
            "max_adverts": self.max_adverts,
            "max_sources": self.max_sources,
            "clock_skew": self.clock_skew,
            "verify_threads": self.verify_threads,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value}")
