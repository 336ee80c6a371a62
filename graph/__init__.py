"""``bss2.graph`` — signal-flow graphs (placeholder exports; completed below)."""
