"""hubmirror's built-in source plugins, registered through the `hubmirror` entry-point group like any other."""
