"""The ground floor: errors, the manifest, the contract strings, atomic files, signals, quiet native output.

Imports nothing else of the project.
"""
