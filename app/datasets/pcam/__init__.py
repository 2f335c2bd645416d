"""PatchCamelyon (PCam): 96×96 H&E patches in HDF5 x/y files per split, with a meta CSV."""
