"""When things are computed: one module per stage, each exposing `run(config, ...)`."""
