"""The stream_monitor actor: stops VMs whose streams stopped paying, starts them again."""

from .actor import MonitorTick, StreamMonitor

__all__ = ["MonitorTick", "StreamMonitor"]
