"""peft-hub's built-in plugins. Each module is one plugin, declared as an entry point of the
``peft_hub`` group in pyproject.toml and written against the public API only (``import peft_hub``),
exactly as a third-party ``peft-hub-<name>`` package would be."""
