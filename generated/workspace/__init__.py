"""Generated from protos/ by scripts/generate.py; do not edit."""
