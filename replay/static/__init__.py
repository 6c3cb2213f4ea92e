"""The dashboard's static files (a package only so that wheels carry them as package data)."""
