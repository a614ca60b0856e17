"""The user's own `runtime` package (flash's worker package once had this name)."""

MARK = "users-runtime"
