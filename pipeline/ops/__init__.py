"""Between and after crawls: retry, prune and copy-store (`admin`), reparse, show, search
and parse (`read`), export and Datasette metadata (`export`, `datasette`).
"""
