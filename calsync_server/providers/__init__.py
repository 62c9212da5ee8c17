"""Calendar providers: what calsync needs of one, and the Google implementation."""
