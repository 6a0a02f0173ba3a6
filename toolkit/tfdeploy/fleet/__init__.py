"""The fleet: many cells at once (selection, schedule, runner, release)."""
