"""The studio's engine: no Qt here, only plain Python over the ML libraries."""
