"""The imperative shell: Faust agents, tables and web views around stream.core."""
