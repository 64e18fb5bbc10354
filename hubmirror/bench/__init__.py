"""The smoke-test and benchmark runner: every model loaded from the store in its own process, timed on synthetic
input, results recorded in the catalog."""
