"""One module per corpus family; each registers itself with :func:`hwlat.corpus.register_family`."""
