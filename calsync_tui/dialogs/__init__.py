"""The dashboard's modal dialogs, one per file."""
