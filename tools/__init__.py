"""The book's build tools (each module says what it does); run from the repository root."""
