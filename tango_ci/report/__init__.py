"""Report helpers: the plots every stage and task draws with."""
