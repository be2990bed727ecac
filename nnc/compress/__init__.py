"""Model compression outside the pass pipeline: the ``--compress`` spec and the ``nncz``
compressed model file (Huffman-coded codebook indices and sparse index gaps)."""
