"""Tasks and their attempts: submission, listing, trace, cancel."""
