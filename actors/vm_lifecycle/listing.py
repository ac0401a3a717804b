"""`VmListing`: the VMs as the lifecycle last left them, for readers that must not call it.

Why: `GET /vms` is the API's most frequent question, and answering it with a call costs a
round trip through the lifecycle's inbox (two task switches, a reply channel) per
request, which made the listing slower than the service it replaces. The lifecycle
publishes an immutable snapshot here after every message it handled (and once its start
reconciled the registry), so a reader sees exactly what a `ListVms` call made at that
moment would have answered, without asking.

Rules that keep it an actor-safe publication, not shared state:
- one writer: the lifecycle, from its handlers (a restart keeps the cell: the tree owns
  it, and the next incarnation publishes once its own start reconciled);
- the published value is a tuple of frozen views: a reader can keep it as long as it
  likes, nothing in it changes;
- `version` grows with every change, so a reader may cache what it derives from a
  snapshot (the API caches encoded answers) and knows when to drop it.
"""

from __future__ import annotations

from golem_actor.domain.tenancy import Caller, lists

from .messages import VmView

Entry = tuple[str | None, VmView]  # (owner's token digest, what clients see)


class VmListing:
    """The latest published snapshot; read `visible(caller)` or `entries`."""

    def __init__(self) -> None:
        self.entries: tuple[Entry, ...] = ()
        self.version = 0

    def publish(self, entries: tuple[Entry, ...]) -> None:
        """The writer's side: a new snapshot, if it differs from the current one."""
        if entries != self.entries:
            self.entries = entries
            self.version += 1

    def visible(self, caller: Caller) -> list[VmView]:
        """What `ListVms(caller)` answers: the VMs `caller` may list, in registry order."""
        return [view for owner, view in self.entries if lists(caller, owner)]
