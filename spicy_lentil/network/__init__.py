"""Layer 1, the network: the encoder, the gate, the pathways' fusion, the heads and their losses.

Imports only the shared bottom of the package (errors, documents, slots, results, io, runtime) and `pathways`.
"""
