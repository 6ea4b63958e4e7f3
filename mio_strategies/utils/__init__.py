"""Bottom-layer helpers shared by every other layer (random streams, argument checks, output folders).

Nothing here imports any other part of the package except :mod:`mio_strategies.tasks`.
"""
