"""Whole-system tests: a real control plane, agents and flows, with AWS stood in for by LocalStack."""
