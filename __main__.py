"""The LLM-Marketplace platform for one region; the stack's config says which."""

import pulumi

from components import settings
from components.platform import RegionalPlatform, RegionalPlatformArgs

config = settings.load()
platform = RegionalPlatform(config.role, RegionalPlatformArgs(settings=config))
for key, value in platform.outputs.items():
    pulumi.export(key, value)
