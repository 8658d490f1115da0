"""Deployment checks: the vendored CRDs' validator, structural checks for files no real
validator covers, and ``mlstack deploy check`` over all of ``deploy/``."""
