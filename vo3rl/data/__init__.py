"""Samples: the schema every reader produces, readers for the published formats, and the synthetic set."""
