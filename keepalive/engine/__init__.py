"""The engine: schedules checks, turns results into alerts, persists state, builds snapshots."""
