"""The probe: one check of one target -> a CheckResult (never raises)."""
