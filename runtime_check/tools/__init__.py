"""Tools that run models but judge nothing: predict, benchmark, inspect."""
