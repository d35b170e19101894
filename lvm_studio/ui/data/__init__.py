"""Datasets in the app: File › Open dataset… (the import dialog), the cache and the recent list."""
