"""One emulator's state bundle: store, stats, faults, quota, push, and the API over them."""

from __future__ import annotations

from calsync_server.emulators.common.faults import Faults, Stats
from calsync_server.emulators.google.calendar_api import CalendarApi
from calsync_server.emulators.google.config import EmulatorConfig
from calsync_server.emulators.google.push import PushManager
from calsync_server.emulators.google.quota import Quota
from calsync_server.emulators.google.store import Store


class Emulator:
    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self.store = Store(config)
        self.stats = Stats()
        self.faults = Faults()
        self.quota = Quota(config.rate_limit_per_minute, config.rate_limit_window_s)
        self.push = PushManager(config)
        # Changes made through the API and by the admin or scenario all wake push channels.
        self.store.listeners.append(self.push.on_change)
        self.api = CalendarApi(self.store, self.stats, self.faults, self.quota, self.push)
