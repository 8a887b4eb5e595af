"""Innovation numbers: one per connection (in, out) for the whole run, node ids per split.

The paper keeps a list of the structural innovations of the current generation, so that the
same mutation made twice in one generation gets one number. Here the (in, out) -> number table
is kept for the whole run instead (as neat-python before 1.0 and SharpNEAT do): a connection
is then the same gene wherever and whenever it appears, so a crossover child can never hold
two genes for one (in, out) pair. Splits follow the paper: genomes that split the same
connection in the same generation get the same new node id (and so the same two new genes);
the same split in a later generation makes a new node. Lookups are binary searches over one
sorted key tensor; nothing loops over genomes.
"""
from __future__ import annotations

import torch

STRIDE = 1 << 31  # key = in * STRIDE + out


class InnovationTable:
    def __init__(self, next_node: int):
        self.keys = torch.zeros(0, dtype=torch.long)      # sorted (in, out) keys
        self.numbers = torch.zeros(0, dtype=torch.long)   # their innovation numbers
        self.next_innovation = 0
        self.next_node = next_node

    def __len__(self) -> int:
        return self.next_innovation

    def connections(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Innovation numbers of (src, dst) connections (any shape), new numbers for new ones
        (numbered in key order, so the result does not depend on the order they came in)."""
        q = (src.long() * STRIDE + dst.long()).reshape(-1)
        pos = torch.searchsorted(self.keys, q).clamp(max=max(len(self.keys) - 1, 0))
        found = (self.keys[pos] == q) if len(self.keys) else torch.zeros_like(q, dtype=torch.bool)
        new = torch.unique(q[~found])
        if len(new):
            self._insert(new)
        pos = torch.searchsorted(self.keys, q)
        return self.numbers[pos].reshape(src.shape)

    def new_connections(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """`connections` for pairs known to be new (each touches a node id that split_nodes has
        just made, so the table cannot hold it): the same numbers in the same order, without
        the look-ups that would only find nothing."""
        q = (src.long() * STRIDE + dst.long()).reshape(-1)
        new, inverse = torch.unique(q, return_inverse=True)
        first = self.next_innovation
        self._insert(new)
        return (first + inverse).reshape(src.shape)

    def _insert(self, new: torch.Tensor) -> None:
        """Sorted keys not in the table yet, numbered on from next_innovation in key order."""
        numbers = torch.arange(self.next_innovation, self.next_innovation + len(new))
        self.next_innovation += len(new)
        keys, order = torch.cat([self.keys, new]).sort()
        self.keys, self.numbers = keys, torch.cat([self.numbers, numbers])[order]

    def split_nodes(self, split_innovations: torch.Tensor) -> torch.Tensor:
        """New node ids for the connections split this generation: one id per distinct split
        connection (call once per generation with all of its splits)."""
        unique, inverse = torch.unique(split_innovations, return_inverse=True)
        ids = torch.arange(self.next_node, self.next_node + len(unique))
        self.next_node += len(unique)
        return ids[inverse]

    def state(self) -> dict:
        return {"keys": self.keys.clone(), "numbers": self.numbers.clone(),
                "next_innovation": self.next_innovation, "next_node": self.next_node}

    @staticmethod
    def from_state(state: dict) -> InnovationTable:
        table = InnovationTable(int(state["next_node"]))
        table.keys, table.numbers = state["keys"].clone(), state["numbers"].clone()
        table.next_innovation = int(state["next_innovation"])
        return table
