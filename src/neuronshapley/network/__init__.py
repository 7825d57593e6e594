"""The torch side: removable units, their removal, the model game, metrics, repair."""
