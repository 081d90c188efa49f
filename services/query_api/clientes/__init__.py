"""Customer lookups: document types, the customer list, detail, search and batch search."""
