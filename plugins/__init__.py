"""hubmirror's built-in plugins (sources and benchmark loaders), installed as `hubmirror.plugins` and loaded by name
(hubmirror.plugin_manager.DEFAULT_PLUGINS); third-party plugins use the `hubmirror` entry-point group."""
