"""The gate: does each target's artifact meet its budgets, and beat production?"""
