"""One module per dataset: each reads its records and checks them, returning plain tables."""
