"""Sample captures bundled with streamtap (used by `streamtap demo`)."""
