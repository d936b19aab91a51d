"""Errors that reach the user as one line.

Every problem a user can cause (a missing file, a mask of the wrong size, a bad option value)
raises :class:`ShredError` with a message that names the problem and the fix. The CLI prints the
message on one line and exits with status 2; the Python API lets it propagate.
"""


class ShredError(Exception):
    """A problem with the user's input or set-up, explained in one line."""


class CheckpointError(ShredError):
    """A model file that cannot be read, or does not match any known architecture."""


class DownloadError(ShredError):
    """A model file that could not be fetched or failed its checksum."""


class ShredWarning(UserWarning):
    """Something shred assumed or changed on the user's behalf (a default kernel, a crop, a dropped
    alpha channel), said in one line. The CLI prints it as ``shred-ir: warning: ...``."""


class SettingsWarning(ShredWarning):
    """A setting that does nothing, or less than asked, in this run (named as the library's keyword,
    ``coarse_iterations=12``; the CLI's ``restore`` says the flag, ``--coarse-iterations 12``)."""
