"""The image cache's life cycle after the boot: list it, age unused bases
out of it as each release's image cache manager did, delete instances."""
