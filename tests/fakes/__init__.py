"""Local imitations of upstream services, for tests, benchmarks and the offline demo. Loopback only."""
