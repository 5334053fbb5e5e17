"""Where things live: work directory, warehouse, registry, tracking, config, errors."""
