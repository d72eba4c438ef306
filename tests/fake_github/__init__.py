"""A local fake of the GitHub REST API (and of its git smart-HTTP endpoint), for push tests."""

from .server import FakeGitHub

__all__ = ["FakeGitHub"]
