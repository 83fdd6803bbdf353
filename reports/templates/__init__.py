"""Jinja templates of the HTML report; a package only so that the wheel ships them as package data."""
