"""The example app served by flash.toml.example."""
