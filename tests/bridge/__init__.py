"""Tests of fargate_bridge."""
