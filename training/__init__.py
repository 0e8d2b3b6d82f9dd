"""Training of the analysis's beat network (not part of the product; see training/README.md)."""
