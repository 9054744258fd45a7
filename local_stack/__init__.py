"""The whole system on one machine: broker, moto, rule emulator, bridge and operator API."""
