"""Small helpers every wing may use: atomic files, locks, thread counts, descriptions.

Nothing here imports another part of the package.
"""
