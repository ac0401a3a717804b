"""The stream_monitor actor: stops VMs whose streams stopped paying, starts them again."""

from .actor import StreamMonitor
from .messages import MonitorMsg, MonitorTick, RoundDone

__all__ = ["MonitorMsg", "MonitorTick", "RoundDone", "StreamMonitor"]
