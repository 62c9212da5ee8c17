"""One Graph emulator's state bundle: store, stats, faults, throttle, subscriptions, API."""

from __future__ import annotations

from calsync_server.emulators.common.faults import Faults, Stats
from calsync_server.emulators.microsoft.config import GraphEmulatorConfig
from calsync_server.emulators.microsoft.graph_api import GraphApi
from calsync_server.emulators.microsoft.store import Store
from calsync_server.emulators.microsoft.subscriptions import Subscriptions
from calsync_server.emulators.microsoft.throttle import Throttle


class GraphEmulator:
    def __init__(self, config: GraphEmulatorConfig) -> None:
        self.config = config
        self.clock = config.clock
        self.store = Store(config)
        # Fault rules and call counts: the same admin routes as every emulator's.
        self.stats = Stats()
        self.faults = Faults()
        self.throttle = Throttle(config, config.clock)
        self.subscriptions = Subscriptions(self.store, config)
        self.store.listeners.append(self.subscriptions.on_change)
        self.api = GraphApi(
            self.store, self.stats, self.faults, self.throttle, self.subscriptions, config.sleep
        )
