"""A tampered model file for the tests that check a model store is not trusted blindly.

One copy of the payload, shared by the tracking tests, the champion-follower tests and the
integration test of a tampered model (a helper module, so no test module imports another).
"""

from __future__ import annotations

# A pickle whose loading runs `touch <marker>`: what an attacker with write access to the
# model store (or the MLflow artifact store) would leave there. Run it as
# ``python -c MARKER_PICKLE <pickle file> <marker file>``.
MARKER_PICKLE = """
import os, pickle, sys

class Payload:
    def __reduce__(self):
        return (os.system, (f"touch {sys.argv[2]}",))

with open(sys.argv[1], "wb") as handle:
    pickle.dump(Payload(), handle)
"""
