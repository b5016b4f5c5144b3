"""Where the bytes live: feature store, run folders, results."""
