"""End-to-end tests: the operator, run with its own RBAC, on the real control plane."""
