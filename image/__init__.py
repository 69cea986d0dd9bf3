"""The container image: its spec (spec.toml) and its daemonless build (build.py)."""
