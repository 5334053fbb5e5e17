"""Configuration: YAML defaults beside this file and the typed schema that validates them."""
