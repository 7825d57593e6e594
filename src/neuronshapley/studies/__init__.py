"""The paper's studies, each a function returning a plain result and writing its files."""
