"""placeholder"""
def generate(app):
    """Nothing yet."""
