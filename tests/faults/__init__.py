"""Fault-injection tests: the node killed, its guests killed, its actors crashed."""
