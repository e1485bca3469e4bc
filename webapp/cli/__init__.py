"""The ``replyguard`` command: one module per command group (webapp/cli/*.py), each adding
its commands to the one group of webapp/cli/base.py when it is imported here."""

from webapp.cli import backup
from webapp.cli import bank
from webapp.cli import data
from webapp.cli import db
from webapp.cli import generation
from webapp.cli import intents
from webapp.cli import keys
from webapp.cli import models
from webapp.cli import notify
from webapp.cli import reservoir
from webapp.cli import serve
from webapp.cli import simulate
from webapp.cli.base import main

__all__ = [
    "backup",
    "bank",
    "data",
    "db",
    "generation",
    "intents",
    "keys",
    "main",
    "models",
    "notify",
    "reservoir",
    "serve",
    "simulate",
]
