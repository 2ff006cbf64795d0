"""The Graph-shaped HTTP adapter: parse, call an operation, render Graph JSON."""
