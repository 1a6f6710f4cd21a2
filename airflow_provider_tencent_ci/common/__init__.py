"""Small shared facts of the provider: its config section, safe XML parsing, CI/HTTP time formats."""
