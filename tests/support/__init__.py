"""Test helpers shared by several test modules (plain modules, no fixtures)."""
