"""Stages: each reads and writes the warehouse for one step of the cycle."""
