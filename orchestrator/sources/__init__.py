"""Database sources (issue 18): their credentials for client programs and their checks."""
