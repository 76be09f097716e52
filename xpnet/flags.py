"""The settings of ``xpnet.settings`` as argparse flags, for the command line's parsers (``xpnet
train``, ``walkthrough``, ``evaluate``, ``sweep run``, ...): type, choices, metavar and help
come from the one table."""

from __future__ import annotations

from xpnet import settings
from xpnet.errors import flag
from xpnet.settings import SETTINGS


def int_list(flag: str):
    """The argparse type of a sizes flag: "784,100,10" -> (784, 100, 10), "" -> ()."""
    return lambda text: settings.parse_sizes(text, flag)


def path_type(name: str, required: bool = False):
    """The argparse type of the path flag or argument ``name``: the text, refused when empty
    (an empty path would quietly mean the current folder or the default). train's paths are
    refused with its other settings (TrainConfig.check), from flags, files or checkpoints."""

    def parse(text: str) -> str:
        return settings.nonempty(name, text, required)

    return parse


def setting_flags(p, chosen, **defaults) -> None:
    """The flags of the settings ``chosen`` (Setting objects of the table in ``xpnet.settings``) on parser or
    group ``p``: type, choices, metavar and help from the table. ``defaults``: a command's own
    default per setting name (train's parser suppresses them: only the flags given override
    presets and files)."""
    for s in chosen:
        extra = {"default": defaults[s.name]} if s.name in defaults else {}
        if s.kind is bool:
            p.add_argument(
                s.flag(), dest=s.name, action="store_false" if s.off_flag else "store_true", help=s.help, **extra
            )
            continue
        text = path_type(flag(s.name)) if s.path else None
        kind = {tuple: int_list(flag(s.name)), int: int, float: float}.get(s.kind, text)
        p.add_argument(
            s.flag(), dest=s.name, type=kind, choices=s.choices or None, metavar=s.metavar, help=s.help, **extra
        )


def device_flags(p, tf32: bool = True, **defaults) -> None:
    """--backend and --device (and --tf32) of a command that computes outside ``xpnet train``;
    ``defaults``: the command's own (by default no backend and device auto)."""
    names = ("backend", "device", "tf32") if tf32 else ("backend", "device")
    setting_flags(p, [SETTINGS[name] for name in names], **({"backend": None, "device": "auto"} | defaults))
