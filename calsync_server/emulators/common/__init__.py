"""What every provider emulator shares: request and answer shapes, the HTTP transport that can
drop a connection, injected faults, call counts and the common part of the admin API."""
