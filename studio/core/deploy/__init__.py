"""Devices: inventory, host-key trust, transports (SSH and a local demo folder), push, rollback, fleet, bench."""
