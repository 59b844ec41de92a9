"""photoproc."""
