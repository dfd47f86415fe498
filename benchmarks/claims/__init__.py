"""Scripts that put the source post's claims to the test; each writes its figure and table next to itself."""
