"""Contracts every Mamori service shares.

Settings models, message models, topic builders and validators, the error tree and
logging setup. Nothing in here opens a socket or a database connection, so that a field
device can install it without the server stack.
"""
