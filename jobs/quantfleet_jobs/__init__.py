"""Programs that run inside quantfleet's Jobs: quantize, evaluate, benchmark. No Kubernetes here."""
