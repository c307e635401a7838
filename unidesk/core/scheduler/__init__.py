"""The scheduler: places pending tasks on nodes that fit them."""
