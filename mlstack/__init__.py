"""The entry points: the ``mlstack`` console script, ``make demo`` and the replay client.

The only package that may import all three others (``pipeline``, ``serving``,
``monitoring``); nothing imports it back.
"""
