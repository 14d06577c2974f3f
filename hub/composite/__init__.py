"""Virtual collections made of other hub collections: linked (joined on a key) and union."""
