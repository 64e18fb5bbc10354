"""Past one machine on an existing engine: `--executor ray` runs bench and sync as Ray tasks on the nodes of a Ray
cluster (Ray places them by resources and retries what a lost node was running); each node works in its own mirror
root, sharing the site's store and catalog records through the bucket. Nothing here is imported without
`--executor ray`, and ray itself is an optional extra (`hubmirror[ray]`)."""
