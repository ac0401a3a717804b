"""Pure rules of the product: no IO, no trio."""
