"""``rounds/SWE-v0``: repository repair in a sandbox (see docs/swe.md)."""
