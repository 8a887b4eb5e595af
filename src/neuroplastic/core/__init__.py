"""The network and its only edit path: GraphNet, Edits, optimizer surgery, export, checkpoints.

Nothing here imports any other part of the package except `errors`.
"""
