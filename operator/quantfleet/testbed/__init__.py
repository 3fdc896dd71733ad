"""A local Kubernetes control plane built from upstream components, with kwok simulating a GPU
fleet: what the integration tests, benchmarks and `quantfleet dev up` run against."""
