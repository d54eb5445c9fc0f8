"""Reading model files without loading them: signatures and headers."""
